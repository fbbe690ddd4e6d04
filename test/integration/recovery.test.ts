// Crash safety around the calls and the daemons: a kubelet's retry after its deadline, a
// containerd that is down while podshim starts or that restarts under it, and SIGTERM while
// work is in flight (calls, queued log lines).
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { status as Status } from "@grpc/grpc-js";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { startContainerd, type ContainerdHandle } from "../bed/containerd.js";
import { sleep, waitGone } from "../bed/proc.js";
import { startPodshim, type PodshimHandle, type PodshimOptions } from "../support/podshim.js";
import { statusOf } from "../support/cri-client.js";
import { testNetwork, type TestNetwork } from "../support/cni.js";
import { Inventory, nonEmpty, waitClean } from "../support/leaks.js";

const bed = inject("bed");
const base = mkdtempSync(join(bed.tmpDir, "recovery-"));
let net: TestNetwork;

beforeAll(() => {
  net = testNetwork(base);
});
afterAll(async () => {
  await net?.cleanup();
  rmSync(base, { recursive: true, force: true });
});

function podConfig(name: string) {
  const uid = randomBytes(8).toString("hex");
  return {
    metadata: { name, uid, namespace: "recovery", attempt: 0 },
    hostname: name,
    log_directory: join(base, "logs", uid),
    linux: { cgroup_parent: `${bed.cgroupParent}/pod-${uid.slice(0, 8)}`, security_context: { namespace_options: { network: "POD", pid: "CONTAINER", ipc: "POD" } } },
  };
}
type PodConfig = ReturnType<typeof podConfig>;

function containerConfig(name: string, command: string[], extra: Record<string, unknown> = {}) {
  return { metadata: { name, attempt: 0 }, image: { image: bed.images.busybox }, command, log_path: `${name}.log`, ...extra };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ""}`);
    await sleep(100);
  }
}

function condition(res: any, type: string) {
  return res.status.conditions.find((c: any) => c.type === type);
}

/** The pods of one identity (by uid) podshim lists. */
async function podsOf(p: PodshimHandle, config: PodConfig): Promise<any[]> {
  return (await p.cri.runtime("ListPodSandbox", {})).items.filter((s: any) => s.metadata.uid === config.metadata.uid);
}

async function removePod(p: PodshimHandle, id: string): Promise<void> {
  await p.cri.runtime("StopPodSandbox", { pod_sandbox_id: id }, 60_000);
  await p.cri.runtime("RemovePodSandbox", { pod_sandbox_id: id }, 60_000);
}

/** Best effort: stops and removes every pod the instance lists. */
async function removeAll(p: PodshimHandle): Promise<void> {
  const { items } = await p.cri.runtime("ListPodSandbox", {}, 10_000).catch(() => ({ items: [] }));
  for (const s of items) await removePod(p, s.id).catch(() => undefined);
}

/** Resolves with the first entry of dir not in `before` (the call's sandbox dir appearing). */
async function firstNewEntry(dir: string, before: Set<string>, give: Promise<unknown>): Promise<string | undefined> {
  let done = false;
  void give.finally(() => (done = true));
  while (!done) {
    const fresh = existsSync(dir) ? readdirSync(dir).find((e) => !before.has(e)) : undefined;
    if (fresh) return fresh;
    await sleep(2);
  }
  return undefined;
}

const entriesOf = (dir: string) => new Set(existsSync(dir) ? readdirSync(dir) : []);

interface LogRecord {
  stream: string;
  tag: string;
  content: string;
}

function logRecords(path: string): LogRecord[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8").split("\n").filter((l) => l !== "").map((line) => {
    const m = /^(\S+) (stdout|stderr) ([PF])(?::\S+)? (.*)$/s.exec(line);
    if (!m) throw new Error(`not a CRI log line: ${JSON.stringify(line.slice(0, 200))}`);
    return { stream: m[2]!, tag: m[3]!, content: m[4]! };
  });
}

/** Lines as a reader reassembles them (P records join the next), with a torn last one kept. */
function logLines(path: string): string[] {
  const text = logRecords(path).map((r) => (r.tag === "P" ? r.content : `${r.content}\n`)).join("");
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

describe("on the bed's containerd", () => {
  let podshim: PodshimHandle;
  let inv: Inventory;
  const opts = (): PodshimOptions => ({ containerdSocket: bed.containerdSocket, baseDir: base, cniConfDir: net.confDir, extraArgs: ["--pause-image", bed.images.pause], ...(podshim ? { dir: podshim.dir } : {}) });
  const running = (p?: PodshimHandle) => !!p && p.process.exitCode === null && p.process.signalCode === null;
  /** Stops the current instance if it runs, and starts another on the same dir. */
  const restart = async (extra: Partial<PodshimOptions> = {}) => {
    if (running(podshim)) await podshim.stop();
    podshim.cri.close();
    podshim = await startPodshim({ ...opts(), ...extra });
  };
  // A test that failed half-way may leave no instance running for the next one.
  const ensureRunning = async () => {
    if (!running(podshim)) await restart();
  };

  beforeAll(async () => {
    podshim = await startPodshim(opts());
    inv = new Inventory({ dir: podshim.dir, namespace: podshim.namespace, containerdSocket: bed.containerdSocket, containerdDir: bed.containerdDir, net });
    for (const image of [bed.images.busybox, bed.images.pause]) await podshim.cri.image("PullImage", { image: { image } }, 120_000);
  });
  // A failed test's pods must not show up as the next test's leftovers.
  afterEach(async () => {
    await ensureRunning().catch(() => undefined);
    if (running(podshim)) await removeAll(podshim);
  });
  afterAll(async () => {
    await podshim?.cleanup();
  });

  it("gives a RunPodSandbox retried after a 30 ms deadline the first call's ready sandbox", async () => {
    await ensureRunning();
    const config = podConfig("retry");
    const first = await statusOf(podshim.cri.runtime("RunPodSandbox", { config }, 30));
    expect(first.code).toBe(Status.DEADLINE_EXCEEDED);
    const cutOff = performance.now();
    const id: string = (await podshim.cri.runtime("RunPodSandbox", { config }, 120_000)).pod_sandbox_id;
    const ms = Math.round(performance.now() - cutOff);
    inv.learnIds([id]);
    const listed = await podsOf(podshim, config);
    console.log(`RunPodSandbox retry: answered ${ms} ms after the 30 ms cut-off with ${id}; listed: ${listed.map((s) => `${s.id} ${s.state}`).join(", ")}`);
    expect(listed.map((s) => [s.id, s.state])).toEqual([[id, "SANDBOX_READY"]]);
    // Once the first call is done, the same identity still answers with the ready sandbox.
    expect((await podshim.cri.runtime("RunPodSandbox", { config }, 120_000)).pod_sandbox_id).toBe(id);
    expect(await podsOf(podshim, config)).toHaveLength(1);

    // The same for CreateContainer in that pod.
    const cconfig = containerConfig("retried", ["sleep", "3600"]);
    const cfirst = await statusOf(podshim.cri.runtime("CreateContainer", { pod_sandbox_id: id, sandbox_config: config, config: cconfig }, 5)).catch(() => ({ code: Status.OK, details: "" }));
    expect([Status.DEADLINE_EXCEEDED, Status.OK]).toContain(cfirst.code);
    const cid: string = (await podshim.cri.runtime("CreateContainer", { pod_sandbox_id: id, sandbox_config: config, config: cconfig }, 60_000)).container_id;
    const { containers } = await podshim.cri.runtime("ListContainers", { filter: { pod_sandbox_id: id } });
    expect(containers.map((c: any) => [c.id, c.metadata.name, c.state])).toEqual([[cid, "retried", "CONTAINER_CREATED"]]);

    await removePod(podshim, id);
    expect(nonEmpty(await waitClean(inv))).toEqual({});
  });

  it("SIGTERM during RunPodSandbox lets the call finish: the pod is complete after the restart, or absent with nothing left", async () => {
    for (const grace of ["30", "0"]) {
      await restart({ extraArgs: ["--pause-image", bed.images.pause, "--shutdown-grace", grace] });
      const config = podConfig(`term-${grace}`);
      const leftBefore = await inv.take();
      const sandboxes = join(podshim.dir, "root", "sandboxes");
      const before = entriesOf(sandboxes);
      const call = podshim.cri.runtime("RunPodSandbox", { config }, 120_000).then((r) => ({ id: r.pod_sandbox_id as string }), (e) => ({ error: e as { code: number; details: string } }));
      // Mid-call: once its sandbox dir exists.
      await firstNewEntry(sandboxes, before, call);
      podshim.process.kill("SIGTERM");
      const [answer, exit] = await Promise.all([call, podshim.exit]);
      expect(exit, `podshim's exit after SIGTERM (grace ${grace} s)`).toEqual({ code: 0, signal: null });
      await inv.learn(podshim.output());
      await restart({ extraArgs: ["--pause-image", bed.images.pause] });
      const listed = await podsOf(podshim, config);
      console.log(`SIGTERM mid-RunPodSandbox, grace ${grace} s: the call answered ${"id" in answer ? `OK ${answer.id}` : `${answer.error.code} ${answer.error.details}`}; after restart ${listed.length ? listed.map((s) => s.state).join(",") : "absent"}`);
      if ("id" in answer) {
        inv.learnIds([answer.id]);
        expect(listed.map((s) => [s.id, s.state])).toEqual([[answer.id, "SANDBOX_READY"]]);
      } else {
        // Cut off: undone, so nothing of it is listed.
        expect(listed).toEqual([]);
      }
      for (const s of listed) await removePod(podshim, s.id);
      expect(nonEmpty(await waitClean(inv, 20_000, leftBefore)), `left after SIGTERM with grace ${grace}`).toEqual({});
    }
  });

  it("keeps every queued log line across a SIGTERM: each line once, in order, none torn", async () => {
    await ensureRunning();
    const config = podConfig("logs");
    const id: string = (await podshim.cri.runtime("RunPodSandbox", { config }, 120_000)).pod_sandbox_id;
    inv.learnIds([id]);
    const total = 20_000;
    const pad = "x".repeat(60);
    const cid: string = (await podshim.cri.runtime("CreateContainer", {
      pod_sandbox_id: id, sandbox_config: config,
      config: containerConfig("counter", ["sh", "-c", `i=1; while [ $i -le ${total} ]; do echo "line $i ${pad}"; i=$((i+1)); done; exec sleep 3600`]),
    }, 60_000)).container_id;
    const path = join(config.log_directory, "counter.log");
    await podshim.cri.runtime("StartContainer", { container_id: cid }, 60_000);
    await waitFor("the first lines in the log", () => logRecords(path).length > 0);
    const atStop = logRecords(path).length;
    expect(await podshim.stop("SIGTERM")).toBe(0);
    const afterStop = logRecords(path).length;
    await restart();
    // Not a throwing wait: on a shortfall the comparison below names the first missing line.
    await waitFor(`all ${total} lines in the log`, () => logLines(path).length >= total, 45_000).catch(() => undefined);
    console.log(`log lines: ${atStop} at SIGTERM, ${afterStop} when podshim had exited, ${logLines(path).length} in the end`);
    const lines = logLines(path);
    const expected = Array.from({ length: total }, (_, i) => `line ${i + 1} ${pad}`);
    const firstBad = lines.findIndex((l, i) => l !== expected[i]);
    const around = (i: number) => JSON.stringify(lines.slice(Math.max(0, i - 1), i + 2).map((l) => l.slice(0, 40)));
    expect(firstBad, `first wrong line at index ${firstBad}, want ${JSON.stringify(expected[firstBad]?.slice(0, 40))}, got ${around(firstBad)}`).toBe(-1);
    expect(lines).toHaveLength(total);
    expect(logRecords(path).every((r) => r.stream === "stdout")).toBe(true);
    await removePod(podshim, id);
    expect(nonEmpty(await waitClean(inv))).toEqual({});
  }, 120_000);
});

describe("on a containerd of its own", () => {
  let containerd: ContainerdHandle;
  let podshim: PodshimHandle | undefined;
  let dir: string | undefined;
  let inv: Inventory;
  /** Stops the current instance if it runs, and starts another on the same dir. */
  const start = async (extra: Partial<PodshimOptions> = {}) => {
    if (podshim && podshim.process.exitCode === null && podshim.process.signalCode === null) await podshim.stop();
    podshim?.cri.close();
    podshim = await startPodshim({ containerdSocket: containerd.socket, baseDir: base, cniConfDir: net.confDir, extraArgs: ["--pause-image", bed.images.pause], ...(dir ? { dir } : {}), ...extra });
    dir = podshim.dir;
    return podshim;
  };

  beforeAll(async () => {
    containerd = await startContainerd({ dir: join(base, "own-containerd") });
    const p = await start();
    inv = new Inventory({ dir: p.dir, namespace: p.namespace, containerdSocket: containerd.socket, containerdDir: containerd.dir, net });
    for (const image of [bed.images.busybox, bed.images.pause]) await p.cri.image("PullImage", { image: { image } }, 120_000);
  });
  // A failed test may leave containerd stopped, podshim down or pods behind: not for the next.
  afterEach(async () => {
    if (containerd.pid === 0) await containerd.restart();
    if (!podshim || podshim.process.exitCode !== null || podshim.process.signalCode !== null) await start().catch(() => undefined);
    if (podshim) await waitFor("podshim serving", () => podshim!.cri.runtime("ListPodSandbox", {}), 20_000).then(() => removeAll(podshim!)).catch(() => undefined);
  });
  afterAll(async () => {
    await podshim?.cleanup();
    await containerd?.cleanup();
  });

  it("fails closed while containerd is down at start, and serves the earlier pods once it is back", async () => {
    const p = await start();
    const config = podConfig("before-outage");
    const id: string = (await p.cri.runtime("RunPodSandbox", { config }, 120_000)).pod_sandbox_id;
    inv.learnIds([id]);
    const cid: string = (await p.cri.runtime("CreateContainer", { pod_sandbox_id: id, sandbox_config: config, config: containerConfig("kept", ["sleep", "3600"]) }, 60_000)).container_id;
    await p.cri.runtime("StartContainer", { container_id: cid }, 60_000);
    expect(await p.stop()).toBe(0);
    await containerd.stop();

    const q = await start({ waitFor: "listening" });
    expect(q.output()).toContain("podshim is listening; recovering state");
    await expect(q.cri.runtime("Version", {})).resolves.toMatchObject({ runtime_name: "podshim" });
    const st = await q.cri.runtime("Status", {});
    expect(condition(st, "RuntimeReady")).toMatchObject({ status: false, reason: "RecoveringState" });
    expect(condition(st, "RuntimeReady").message, "Status says why it is not ready").not.toBe("");
    for (const [svc, method, req] of [
      ["runtime", "ListPodSandbox", {}],
      ["runtime", "RunPodSandbox", { config: podConfig("during-outage") }],
      ["runtime", "ContainerStatus", { container_id: cid }],
      ["image", "ListImages", {}],
    ] as const) {
      const res = await statusOf(q.cri[svc](method, req, 10_000));
      expect([method, res.code]).toEqual([method, Status.UNAVAILABLE]);
      expect(res.details).toContain("recovering state");
    }

    await containerd.restart();
    const listed = await waitFor("the pod listed after containerd is back", async () => {
      const items = await podsOf(q, config);
      return items.length > 0 ? items : undefined;
    });
    expect(listed.map((s) => [s.id, s.state])).toEqual([[id, "SANDBOX_READY"]]);
    expect((await q.cri.runtime("ContainerStatus", { container_id: cid })).status.state).toBe("CONTAINER_RUNNING");
    expect(q.output()).toContain("podshim is serving CRI");
    expect(condition(await q.cri.runtime("Status", {}), "RuntimeReady").status).toBe(true);
    await removePod(q, id);
    expect(nonEmpty(await waitClean(inv))).toEqual({});
  });

  it("records an exit that happens while containerd restarts, and later exits too", async () => {
    const p = await start();
    const config = podConfig("exit-during-restart");
    const id: string = (await p.cri.runtime("RunPodSandbox", { config }, 120_000)).pod_sandbox_id;
    inv.learnIds([id]);
    const trigger = join(base, `trigger-${randomBytes(4).toString("hex")}`);
    mkdirSync(trigger);
    const waiter = (name: string, code: number) => containerConfig(name, ["sh", "-c", `while [ ! -e /trigger/${name} ]; do sleep 0.1; done; exit ${code}`], { mounts: [{ container_path: "/trigger", host_path: trigger }] });
    const ids: Record<string, string> = {};
    for (const [name, code] of [["during", 7], ["after", 9]] as const) {
      ids[name] = (await p.cri.runtime("CreateContainer", { pod_sandbox_id: id, sandbox_config: config, config: waiter(name, code) }, 60_000)).container_id;
      await p.cri.runtime("StartContainer", { container_id: ids[name] }, 60_000);
    }
    const pid = JSON.parse((await p.cri.runtime("ContainerStatus", { container_id: ids.during, verbose: true })).info.info).pid as number;
    expect(pid).toBeGreaterThan(0);

    await containerd.stop();
    writeFileSync(join(trigger, "during"), "");
    expect(await waitGone([pid], 10_000), "the container's process exits while containerd is down").toEqual([]);
    await containerd.restart();
    const during = await waitFor("the exit during the restart to be recorded", async () => {
      const s = (await p.cri.runtime("ContainerStatus", { container_id: ids.during })).status;
      return s.state === "CONTAINER_EXITED" ? s : undefined;
    });
    expect([during.exit_code, during.reason]).toEqual([7, "Error"]);
    // Events flow again after the restart.
    writeFileSync(join(trigger, "after"), "");
    const after = await waitFor("the exit after the restart to be recorded", async () => {
      const s = (await p.cri.runtime("ContainerStatus", { container_id: ids.after })).status;
      return s.state === "CONTAINER_EXITED" ? s : undefined;
    });
    expect(after.exit_code).toBe(9);
    expect(p.process.exitCode).toBeNull();
    await removePod(p, id);
    expect(nonEmpty(await waitClean(inv))).toEqual({});
  });

  it("completes or cleanly undoes a RunPodSandbox during which containerd restarts", async () => {
    const p = await start();
    const outcomes: string[] = [];
    // Every moment is tried even when an earlier one leaks; the failures are reported together.
    const failures: string[] = [];
    // The restart lands at different moments: as soon as the sandbox dir exists, and later.
    for (const extraDelayMs of [0, 40, 150]) {
      const config = podConfig(`cd-restart-${extraDelayMs}`);
      const leftBefore = await inv.take();
      const sandboxes = join(p.dir, "root", "sandboxes");
      const before = entriesOf(sandboxes);
      const call = p.cri.runtime("RunPodSandbox", { config }, 120_000).then((r) => ({ id: r.pod_sandbox_id as string }), (e) => ({ error: e as { code: number; details: string } }));
      await firstNewEntry(sandboxes, before, call);
      await sleep(extraDelayMs);
      await containerd.restart();
      const answer = await call;
      await inv.learn(p.output());
      const listed = await waitFor("a ready podshim", async () => podsOf(p, config));
      outcomes.push(`+${extraDelayMs} ms: ${"id" in answer ? "completed" : `failed ${answer.error.code} (${answer.error.details})`}, ${listed.length ? listed.map((s) => s.state).join(",") : "absent"}`);
      console.log(`RunPodSandbox with containerd restarting: ${outcomes.at(-1)}`);
      if ("id" in answer) {
        inv.learnIds([answer.id]);
        expect(listed.map((s) => [s.id, s.state])).toEqual([[answer.id, "SANDBOX_READY"]]);
      } else {
        // A failed call is undone: nothing listed. (A kubelet would retry with the same config.)
        expect(listed).toEqual([]);
      }
      for (const s of listed) await removePod(p, s.id);
      const left = nonEmpty(await waitClean(inv, 20_000, leftBefore));
      if (Object.keys(left).length > 0) failures.push(`+${extraDelayMs} ms left ${JSON.stringify(left)}`);
    }
    expect(failures).toEqual([]);
    expect(p.process.exitCode).toBeNull();
  });
});
