import { readdir, readFile, rm, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import type { ContainerdClient } from "../containerd/client.js";
import type { ContainerRecords } from "../containerd/containers.js";
import { deleteLease, listLeases } from "../containerd/leases.js";
import { killShim, listShims } from "../containerd/shims.js";
import { Tasks } from "../containerd/tasks.js";
import type { Snapshots } from "../containerd/snapshots.js";
import type { ContainerService } from "../container/container-service.js";
import { messageOf } from "../errors/errors.js";
import { Kind } from "../gen/containerd/services/snapshots/v1/snapshots.js";
import type { Logger } from "../logger/logger.js";
import { deleteNetns, NETNS_RUN_DIR } from "../network/netns.js";
import type { NetworkService } from "../network/network-service.js";
import { SANDBOX_INTENT_FILE, type SandboxIntent, type SandboxService } from "../sandbox/sandbox-service.js";

export interface SweepDeps {
  client: ContainerdClient;
  records: ContainerRecords;
  snapshots: Snapshots;
  sandboxes: SandboxService;
  containers: ContainerService;
  network: NetworkService;
  logger: Logger;
  /** podshim's root and state dirs: temp files of atomic writes a crash cut off are swept there. */
  dirs: readonly string[];
}

/** What one sweep reclaimed, by kind, for the log line and the tests. */
export type SweepReport = Record<string, number>;

const ID = /^[0-9a-f]{64}$/;

/**
 * After the indexes are loaded: everything podshim owns that no record explains is what a
 * crash left half-made, and is reclaimed, with a log line per item. Owned means: created by
 * podshim in its own namespace (leases, snapshots, containers of pods that are gone), or under
 * its own root and state dirs (per-sandbox and per-container dirs, the CNI cache), or named
 * in those (the network namespace a half-made sandbox's intent file names). A failure to
 * reclaim one item is logged and left for the next start; it never stops the daemon.
 */
export async function sweepOrphans(d: SweepDeps): Promise<SweepReport> {
  const report: SweepReport = {};
  const log = d.logger;
  const reclaimed = (kind: string, id: string, extra: Record<string, unknown> = {}) => {
    report[kind] = (report[kind] ?? 0) + 1;
    log.info({ kind, id, ...extra }, "reclaimed an orphan");
  };
  const attempt = async (kind: string, id: string, work: () => Promise<void>) => {
    try {
      await work();
      reclaimed(kind, id);
    } catch (err) {
      log.warn({ kind, id, err: messageOf(err) }, "could not reclaim an orphan; the next start tries again");
    }
  };

  const sandboxIds = new Set(d.sandboxes.store.all().map((r) => r.id));
  const containerIds = new Set(d.containers.store.all().map((r) => r.id));

  // Containers whose pod is gone (a create that raced a removal in an older podshim).
  for (const c of d.containers.store.all()) {
    if (!sandboxIds.has(c.sandboxId)) await attempt("container-of-removed-pod", c.id, () => d.containers.remove(c.id));
  }

  // Leases: each guards one operation of a podshim process; none of those survived it.
  for (const id of await listLeases(d.client)) {
    if (id.startsWith("podshim-")) await attempt("lease", id, () => deleteLease(d.client, id));
  }

  // Shims of tasks containerd does not know, with nothing below them: a Tasks.Create that a
  // containerd restart cut off. (A shim of a pod's live task, or one still holding a child, stays.)
  const tasks = new Set((await new Tasks(d.client).list({ timeoutMs: 30_000 })).map((t) => t.id));
  for (const shim of await listShims(d.client.namespace, d.client.socket)) {
    if (tasks.has(shim.id) || shim.children > 0) continue;
    await attempt("shim", `${shim.id} (pid ${shim.pid})`, async () => killShim(shim.pid));
  }

  // Active snapshots no containerd container uses: prepared by a create that died.
  const used = new Set((await d.records.list([])).map((c) => c.snapshotKey));
  for (const s of await d.snapshots.list()) {
    if ((s.kind === Kind.ACTIVE || s.kind === Kind.VIEW) && !used.has(s.name)) {
      await attempt("snapshot", s.name, () => d.snapshots.remove(s.name));
    }
  }

  // Sandboxes that never got a record: CNI DEL from the cache, the netns their intent names,
  // the shm mount and the dirs.
  const cniCached = new Set((await entries(d.network.cniCache.dir)).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -5)));
  const halfMade = new Set([...(await entries(d.sandboxes.sandboxesDir)), ...(await entries(d.sandboxes.stateSandboxesDir)), ...cniCached]);
  for (const id of halfMade) {
    if (!ID.test(id) || sandboxIds.has(id)) continue;
    await attempt("sandbox", id, async () => {
      const intent = await readIntent(join(d.sandboxes.sandboxesDir, id, SANDBOX_INTENT_FILE));
      const cached = cniCached.has(id) ? await d.network.cniCache.load(id).catch(() => undefined) : undefined;
      const netns = ownNetns(id, intent?.netns ? join(NETNS_RUN_DIR, intent.netns) : cached?.runtime.netns);
      if (cniCached.has(id)) await d.network.tearDownPod(id, netns ?? "");
      if (netns) await deleteNetns(netns);
      await d.sandboxes.releaseStateDir(id);
      await rm(join(d.sandboxes.sandboxesDir, id), { recursive: true, force: true });
    });
  }

  // Container dirs with no record: a create that died before or after its containerd record.
  for (const dir of [d.containers.containersDir, d.containers.stateContainersDir]) {
    for (const id of await entries(dir)) {
      if (!ID.test(id) || containerIds.has(id)) continue;
      await attempt("container-dir", id, () => rm(join(dir, id), { recursive: true, force: true }));
    }
  }
  // Temp files of atomic writes (`<file>.tmp-<hex>`) that a crash cut off before their
  // rename; only ones older than this process, so a write under way now is never touched.
  const startedAt = Date.now() - process.uptime() * 1000;
  for (const root of d.dirs) {
    for (const path of await tempFilesUnder(root, TEMP_FILE_DEPTH)) {
      const st = await stat(path).catch(() => undefined);
      if (st && st.mtimeMs < startedAt) await attempt("temp-file", path, () => rm(path, { force: true }));
    }
  }
  return report;
}

/** How deep below root and state atomic writes happen (e.g. root/sandboxes/<id>/<file>). */
const TEMP_FILE_DEPTH = 4;
const TEMP_FILE = /\.tmp-[0-9a-f]{8}$/;

async function tempFilesUnder(dir: string, depth: number): Promise<string[]> {
  let dirents;
  try {
    dirents = await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const found: string[] = [];
  for (const e of dirents) {
    const path = join(dir, e.name);
    if (e.isFile() && TEMP_FILE.test(e.name)) found.push(path);
    else if (e.isDirectory() && depth > 1) found.push(...(await tempFilesUnder(path, depth - 1)));
  }
  return found;
}

/** A netns path only when it is one podshim would have made for this pod. */
function ownNetns(podId: string, path: string | undefined): string | undefined {
  if (!path || !path.startsWith(`${NETNS_RUN_DIR}/`)) return undefined;
  return basename(path).startsWith(`podshim-${podId.slice(0, 12)}-`) ? path : undefined;
}

async function readIntent(path: string): Promise<SandboxIntent | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as SandboxIntent;
  } catch {
    return undefined;
  }
}

async function entries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}
