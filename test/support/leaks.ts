// What one podshim instance owns on the node, counted per kind, so a fault test can prove that
// after a crash, a restart and the removal of what was listed, nothing of it is left. Every
// kind is attributed to this instance only (its dir, its containerd namespace, its CNI test
// network, the pod ids it is known to have made), never to other tests running meanwhile.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { descendants, listProcesses, mountsUnder, run, sleep } from "../bed/proc.js";
import { argAfter } from "../bed/containerd.js";

export const LEAK_KINDS = [
  "netns", "ipLease", "veth", "iptables", "mount",
  "container", "task", "snapshot", "lease", "shim",
  "rootSandboxes", "rootContainers", "stateSandboxes", "stateContainers", "cniCache",
] as const;
export type LeakKind = (typeof LEAK_KINDS)[number];
/** Per kind, the names of what is there (a netns name, a rule, a path, an id). */
export type Leftovers = Record<LeakKind, string[]>;

export interface InventoryTarget {
  /** The podshim instance dir (root/, state/ below it) and its containerd namespace. */
  dir: string;
  namespace: string;
  containerdSocket: string;
  /** The containerd's own dir: task rootfs mounts live under its state. */
  containerdDir: string;
  /** The CNI test network the instance's pods are wired to. */
  net: { name: string; bridge: string; leaseDir: string };
}

const NETNS = /^podshim-([0-9a-f]{12})-[0-9a-f]{4}$/;
const ID = /\b[0-9a-f]{64}\b/g;

async function entries(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

async function ctrList(t: InventoryTarget, args: string[]): Promise<string[]> {
  const res = await run("ctr", ["--address", t.containerdSocket, "-n", t.namespace, ...args], { timeoutMs: 20_000 });
  if (res.code !== 0) throw new Error(`ctr ${args.join(" ")}: ${res.stderr.trim()}`);
  return res.stdout.split("\n").map((l) => l.trim()).filter(Boolean);
}

/**
 * An inventory of one podshim instance. Pod ids it cannot read from the node (a netns name
 * carries only 12 characters of one) are learnt: from the ids a test got back, from podshim's
 * log, and from the instance's dirs, CNI cache and containerd records, which a test should
 * `learn` right after a crash, before a restart's sweep removes that evidence.
 */
export class Inventory {
  readonly podIds = new Set<string>();
  readonly ips = new Set<string>();

  constructor(readonly target: InventoryTarget) {}

  /** Ids the test knows of (answers of RunPodSandbox, CreateContainer; undefined is skipped). */
  learnIds(ids: Iterable<string | undefined>): void {
    for (const id of ids) if (id) this.podIds.add(id);
  }

  /** Every id found in podshim's log and on the node now. Container ids land in the set too:
   * harmless, they only ever match their own netns prefix, which no container has. */
  async learn(podshimOutput = ""): Promise<void> {
    this.learnIds(podshimOutput.match(ID) ?? []);
    const t = this.target;
    for (const d of [join(t.dir, "root", "sandboxes"), join(t.dir, "state", "sandboxes"), join(t.dir, "root", "containers"), join(t.dir, "state", "containers")]) {
      this.learnIds(await entries(d));
    }
    for (const d of [join(t.dir, "root", "cni"), join(t.dir, "state", "cni")]) {
      this.learnIds((await entries(d)).map((f) => f.replace(/\.json$/, "")));
    }
    this.learnIds(await ctrList(t, ["containers", "ls", "-q"]).catch(() => []));
    for (const lease of await this.leases()) {
      const id = (await readFile(join(t.net.leaseDir, t.net.name, lease), "utf8").catch(() => "")).split(/\s/)[0];
      this.learnIds([id]);
      this.ips.add(lease);
    }
  }

  private async leases(): Promise<string[]> {
    return (await entries(join(this.target.net.leaseDir, this.target.net.name))).filter((f) => f !== "lock" && !f.startsWith("last_reserved_ip"));
  }

  private ownsNetns(name: string): boolean {
    const m = NETNS.exec(name);
    if (!m) return false;
    for (const id of this.podIds) if (id.startsWith(m[1]!)) return true;
    return false;
  }

  /** What the instance owns on the node right now. */
  async take(): Promise<Leftovers> {
    const t = this.target;
    const [netns, leases, veths, iptables, mounts, containers, tasks, snapshots, ctrLeases, shims] = await Promise.all([
      entries("/run/netns").then((names) => names.filter((n) => this.ownsNetns(n))),
      this.leases(),
      run("ip", ["-o", "link", "show", "master", t.net.bridge]).then((r) => (r.code === 0 ? r.stdout.split("\n").filter(Boolean).map((l) => l.split(":")[1]!.trim()) : [])),
      this.iptablesRules(),
      Promise.all([mountsUnder(t.dir), mountsUnder(join(t.containerdDir, "state", "io.containerd.runtime.v2.task", t.namespace))]).then((m) => m.flat()),
      ctrList(t, ["containers", "ls", "-q"]),
      ctrList(t, ["tasks", "ls", "-q"]),
      // Only active snapshots belong to containers; committed ones are image layers.
      ctrList(t, ["snapshots", "ls"]).then((lines) => lines.slice(1).filter((l) => /\bActive$/.test(l)).map((l) => l.split(/\s+/)[0]!)),
      ctrList(t, ["leases", "ls", "-q"]),
      listProcesses().then((ps) => ps.filter((p) => p.argv[0]?.includes("containerd-shim") && argAfter(p.argv, "-namespace") === t.namespace)
        .map((p) => `pid ${p.pid} id ${argAfter(p.argv, "-id") ?? "?"} with ${descendants(ps, [p.pid]).length - 1} processes below`)),
    ]);
    const files = async (...parts: string[]) => (await entries(join(t.dir, ...parts))).map((e) => join(...parts, e));
    return {
      netns, ipLease: leases, veth: veths, iptables, mount: mounts,
      container: containers, task: tasks, snapshot: snapshots, lease: ctrLeases, shim: shims,
      rootSandboxes: await files("root", "sandboxes"),
      rootContainers: await files("root", "containers"),
      stateSandboxes: await files("state", "sandboxes"),
      stateContainers: await files("state", "containers"),
      cniCache: [...(await files("root", "cni")), ...(await files("state", "cni"))],
    };
  }

  /** Rules (and their chains' declarations) that name this network, a known pod id or IP. */
  private async iptablesRules(): Promise<string[]> {
    const res = await run("iptables-save", [], { timeoutMs: 20_000 });
    if (res.code !== 0) throw new Error(`iptables-save: ${res.stderr.trim()}`);
    const needles = [`"${this.target.net.name}"`, ...[...this.podIds].map((id) => id), ...[...this.ips].map((ip) => `${ip}/32`)];
    const lines = res.stdout.split("\n");
    const rules = lines.filter((l) => l.startsWith("-A ") && needles.some((n) => l.includes(n)));
    const chains = new Set(rules.flatMap((r) => [/^-A (CNI-[0-9a-f]{24})\b/.exec(r)?.[1], / -j (CNI-[0-9a-f]{24})\b/.exec(r)?.[1]]).filter((c): c is string => !!c));
    const ownChainRules = lines.filter((l) => [...chains].some((c) => l.startsWith(`:${c} `) || l.startsWith(`-A ${c} `)));
    return [...new Set([...rules, ...ownChainRules])];
  }
}

export function counts(l: Leftovers): Record<LeakKind, number> {
  return Object.fromEntries(LEAK_KINDS.map((k) => [k, l[k].length])) as Record<LeakKind, number>;
}

/** Only the kinds with something left, for a readable assertion message. */
export function nonEmpty(l: Leftovers): Partial<Leftovers> {
  return Object.fromEntries(LEAK_KINDS.filter((k) => l[k].length > 0).map((k) => [k, l[k]]));
}

/** What is in `now` and was not in `before`. */
export function added(now: Leftovers, before: Leftovers): Leftovers {
  return Object.fromEntries(LEAK_KINDS.map((k) => [k, now[k].filter((x) => !before[k].includes(x))])) as Leftovers;
}

/** Polls until nothing is left (a sweep or a lingering CNI plugin may still be at work), or
 * the timeout passes; returns the last inventory either way. With `since`, only what is not
 * in it counts, so a case that shares an instance dir reports what it left, not an earlier one. */
export async function waitClean(inv: Inventory, timeoutMs = 20_000, since?: Leftovers): Promise<Leftovers> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await inv.take();
    const left = since ? added(now, since) : now;
    if (Object.keys(nonEmpty(left)).length === 0 || Date.now() > deadline) return left;
    await sleep(250);
  }
}

/** A plain-text table: one row per label, one column per kind. */
export function leakTable(rows: ReadonlyArray<{ label: string; note?: string; left: Leftovers }>): string {
  const header = ["case", "outcome", ...LEAK_KINDS];
  const body = rows.map((r) => [r.label, r.note ?? "", ...LEAK_KINDS.map((k) => String(r.left[k].length))]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("-|-"), ...body.map(line)].join("\n");
}
