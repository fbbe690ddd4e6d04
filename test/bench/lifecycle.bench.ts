// The upstream CRI benchmark's shape (`critest -benchmark`), podshim and containerd's own CRI
// plugin side by side on the SAME containerd, CNI network and images, in one run:
//   - 40 pods, 4 in parallel: RunPodSandbox, PodSandboxStatus, StopPodSandbox, RemovePodSandbox;
//   - 40 containers, 4 in parallel (one live pod per worker): CreateContainer, StartContainer,
//     ContainerStatus, StopContainer, RemoveContainer;
//   - while both run, the status and list calls a kubelet makes on every relist (PodSandboxStatus,
//     ContainerStatus, ListPodSandbox, ListContainers, ImageStatus, ListImages), timed by a lean
//     client in a process of its own (status-prober.mjs);
//   - image ops: PullImage of a small busybox image from the local registry (a fresh image each
//     time, so every pull downloads and unpacks its layer), ImageStatus, ListImages, RemoveImage;
//   - ExecSync `true` in a running container, 100 sequential calls.
// The machine has 2 cores shared with other work: every round runs both runtimes one after the
// other, the order alternating between rounds, and the ratios are what to read.
// PODSHIM_BENCH_BASELINE=/path/to/other/dist/main.js adds a third runtime, that build of
// podshim on the same daemon, in the same rounds: a before/after under the same load.
import { afterAll, beforeAll, inject, it } from "vitest";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { CriClient } from "../support/cri-client.js";
import { startPodshim, type PodshimHandle } from "../support/podshim.js";
import { testNetwork, type TestNetwork } from "../support/cni.js";
import { benchPodConfig, freshImage, startBuiltinCri, timed, type BuiltinCri } from "./builtin-cri.js";
import { podshimMemory, runtimeCpu, type RuntimeCpu } from "./measure.js";
import { DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from "../../src/oci/defaults.js";

const bed = inject("bed");
const base = mkdtempSync(join(bed.tmpDir, "bench-lifecycle-"));
const PODS = 40;
const CONTAINERS = 40;
const CONCURRENCY = Number(process.env.PODSHIM_BENCH_CONCURRENCY ?? 4);
const PULLS = 8;
const EXECS = 100;
const ROUNDS = Number(process.env.PODSHIM_BENCH_ROUNDS ?? 2);
const BASELINE = process.env.PODSHIM_BENCH_BASELINE;
/** The prober's pace: one status call every 5 ms, each of the six every ~30 ms. */
const PROBE_PACE_MS = 5;
const OUT_DIR = fileURLToPath(new URL("../../.tmp/bench/", import.meta.url));
const PROBER = fileURLToPath(new URL("./status-prober.mjs", import.meta.url));

let net: TestNetwork;
let builtin: BuiltinCri;
let podshim: PodshimHandle;
let baseline: PodshimHandle | undefined;

interface Target {
  label: "podshim" | "containerd" | "baseline";
  cri: CriClient;
  socket: string;
  /** A pod with a running container that stays up: the prober's and ExecSync's target. */
  anchor: { pod: string; container: string };
}
const targets: Target[] = [];

type Samples = Record<string, number[]>;
const samples: Record<Target["label"], { ops: Samples; underLoad: Samples; idle: Samples }> = {
  podshim: { ops: {}, underLoad: {}, idle: {} },
  containerd: { ops: {}, underLoad: {}, idle: {} },
  baseline: { ops: {}, underLoad: {}, idle: {} },
};
const bucket = (s: Samples, op: string) => (s[op] ??= []);
/** podshim's resident memory and its helper processes' (the spawner), MB, after each round. */
const rss: Array<{ podshim: number; helpers: number }> = [];
/**
 * CPU ms each runtime cost per round (pods, containers, image ops, execs, and the prober's
 * calls during the load): containerd's own time and that of the children it waited for (its
 * CRI plugin runs the CNI plugins); for podshim, its own time, its spawner's with the programs
 * it ran, and containerd's. Shims and runc are in neither: both runtimes start the same shim
 * for the same work.
 */
const cpu: Record<Target["label"], RuntimeCpu[]> = { podshim: [], containerd: [], baseline: [] };

beforeAll(async () => {
  net = testNetwork(base);
  builtin = await startBuiltinCri(bed, base, net);
  podshim = await startPodshim({ containerdSocket: builtin.containerd.socket, baseDir: base, cniConfDir: net.confDir, extraArgs: ["--log-level", "info", "--pause-image", bed.images.pause] });
  const both: Array<Omit<Target, "anchor">> = [
    { label: "podshim", cri: podshim.cri, socket: podshim.socket },
    { label: "containerd", cri: builtin.cri, socket: builtin.containerd.socket },
  ];
  if (BASELINE) {
    baseline = await startPodshim({ main: BASELINE, containerdSocket: builtin.containerd.socket, baseDir: base, cniConfDir: net.confDir, extraArgs: ["--log-level", "info", "--pause-image", bed.images.pause] });
    both.push({ label: "baseline", cri: baseline.cri, socket: baseline.socket });
  }
  for (const t of both) {
    for (const image of [bed.images.pause, bed.images.busybox]) await t.cri.image("PullImage", { image: { image } }, 60_000);
    const config = benchPodConfig(bed, base, 999);
    const { pod_sandbox_id: pod } = await t.cri.runtime("RunPodSandbox", { config }, 120_000);
    const { container_id: container } = await t.cri.runtime("CreateContainer", { pod_sandbox_id: pod, sandbox_config: config, config: containerConfig("anchor") }, 60_000);
    await t.cri.runtime("StartContainer", { container_id: container }, 60_000);
    targets.push({ ...t, anchor: { pod, container } });
  }
}, 300_000);

afterAll(async () => {
  for (const t of targets) {
    await t.cri.runtime("StopPodSandbox", { pod_sandbox_id: t.anchor.pod }, 60_000).catch(() => undefined);
    await t.cri.runtime("RemovePodSandbox", { pod_sandbox_id: t.anchor.pod }, 60_000).catch(() => undefined);
  }
  // A graceful stop, so a podshim run with --cpu-prof (PODSHIM_NODE_ARGS) writes its profile.
  await podshim?.stop();
  await podshim?.cleanup();
  await baseline?.cleanup();
  await builtin?.cleanup();
  await net?.cleanup();
  rmSync(base, { recursive: true, force: true });
}, 300_000);

function containerConfig(name: string) {
  return {
    metadata: { name, attempt: 0 }, image: { image: bed.images.busybox }, command: ["sleep", "3600"], log_path: `${name}.log`,
    // What the kubelet sends for every container: without it containerd 1.6 masks nothing
    // while podshim applies its defaults, and the two would not do the same work.
    linux: { security_context: { masked_paths: DEFAULT_MASKED_PATHS, readonly_paths: DEFAULT_READONLY_PATHS } },
  };
}

/** Starts the prober against t; the returned stop() ends it and files its samples in `into`. */
function probe(t: Target, into: Samples): { stop(): Promise<void> } {
  const child = spawn(process.execPath, [PROBER, t.socket, String(PROBE_PACE_MS), t.anchor.pod, t.anchor.container, bed.images.busybox], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "", err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  const done = new Promise<void>((resolve, reject) => child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`status prober exited ${code}: ${err}`)))));
  return {
    async stop() {
      child.stdin.end();
      await done;
      for (const [op, ms] of Object.entries(JSON.parse(out) as Samples)) bucket(into, op).push(...ms);
    },
  };
}

async function pods(t: Target, s: Samples): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < PODS) {
      const i = next++;
      const { pod_sandbox_id: id }: { pod_sandbox_id: string } = await timed(bucket(s, "RunPodSandbox"), () => t.cri.runtime("RunPodSandbox", { config: benchPodConfig(bed, base, i) }, 120_000));
      await timed(bucket(s, "PodSandboxStatus"), () => t.cri.runtime("PodSandboxStatus", { pod_sandbox_id: id }));
      await timed(bucket(s, "StopPodSandbox"), () => t.cri.runtime("StopPodSandbox", { pod_sandbox_id: id }, 60_000));
      await timed(bucket(s, "RemovePodSandbox"), () => t.cri.runtime("RemovePodSandbox", { pod_sandbox_id: id }, 60_000));
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

async function containers(t: Target, s: Samples): Promise<void> {
  // One pod per worker, as critest's benchmark does: containers come and go in a live pod.
  const live = await Promise.all(Array.from({ length: CONCURRENCY }, async (_, i) => {
    const config = benchPodConfig(bed, base, 100 + i);
    const { pod_sandbox_id: id } = await t.cri.runtime("RunPodSandbox", { config }, 120_000);
    return { id: id as string, config };
  }));
  let next = 0;
  const worker = async (w: number) => {
    const pod = live[w]!;
    while (next < CONTAINERS) {
      const i = next++;
      const { container_id: id }: { container_id: string } = await timed(bucket(s, "CreateContainer"), () => t.cri.runtime("CreateContainer", { pod_sandbox_id: pod.id, config: containerConfig(`c-${i}`), sandbox_config: pod.config }, 60_000));
      await timed(bucket(s, "StartContainer"), () => t.cri.runtime("StartContainer", { container_id: id }, 60_000));
      await timed(bucket(s, "ContainerStatus"), () => t.cri.runtime("ContainerStatus", { container_id: id }));
      // sleep as PID 1 ignores SIGTERM: timeout 0 kills at once, the same for both runtimes.
      await timed(bucket(s, "StopContainer"), () => t.cri.runtime("StopContainer", { container_id: id, timeout: 0 }, 60_000));
      await timed(bucket(s, "RemoveContainer"), () => t.cri.runtime("RemoveContainer", { container_id: id }, 60_000));
    }
  };
  await Promise.all(live.map((_, w) => worker(w)));
  for (const pod of live) {
    await t.cri.runtime("StopPodSandbox", { pod_sandbox_id: pod.id }, 60_000);
    await t.cri.runtime("RemovePodSandbox", { pod_sandbox_id: pod.id }, 60_000);
  }
}

async function images(t: Target, s: Samples, refs: string[]): Promise<void> {
  for (const image of refs) {
    await timed(bucket(s, "PullImage"), () => t.cri.image("PullImage", { image: { image } }, 60_000));
    await timed(bucket(s, "ImageStatus"), () => t.cri.image("ImageStatus", { image: { image } }));
    await timed(bucket(s, "ListImages"), () => t.cri.image("ListImages", {}));
    await timed(bucket(s, "RemoveImage"), () => t.cri.image("RemoveImage", { image: { image } }, 60_000));
  }
}

async function execs(t: Target, s: Samples): Promise<void> {
  for (let i = 0; i < EXECS; i++) {
    const res = await timed(bucket(s, "ExecSync"), () => t.cri.runtime("ExecSync", { container_id: t.anchor.container, cmd: ["true"], timeout: 10 }));
    if (res.exit_code !== 0) throw new Error(`${t.label}: ExecSync true exited ${res.exit_code}`);
  }
}

/** The CPU ms so far of the runtime t stands for (see `cpu`). */
function cpuOf(t: Target): RuntimeCpu {
  const shim = t.label === "podshim" ? podshim : t.label === "baseline" ? baseline : undefined;
  return runtimeCpu(builtin.containerd.pid, shim?.process.pid);
}

async function round(t: Target, pullRefs: string[]): Promise<void> {
  const s = samples[t.label];
  const idle = probe(t, s.idle);
  await new Promise((r) => setTimeout(r, 2000));
  await idle.stop();
  const before = cpuOf(t);
  const loaded = probe(t, s.underLoad);
  await pods(t, s.ops);
  await containers(t, s.ops);
  await loaded.stop();
  await images(t, s.ops, pullRefs);
  await execs(t, s.ops);
  const after = cpuOf(t);
  cpu[t.label].push({ own: after.own - before.own, programs: after.programs - before.programs, containerd: after.containerd - before.containerd });
  if (t.label === "podshim") {
    const pid = podshim.process.pid!;
    rss.push(podshimMemory(pid));
  }
}

const pct = (ms: number[], q: number) => {
  const s = [...ms].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const ratio = (a: number, b: number) => (a / b).toFixed(2);

const OPS = ["RunPodSandbox", "PodSandboxStatus", "StopPodSandbox", "RemovePodSandbox", "CreateContainer", "StartContainer", "ContainerStatus", "StopContainer", "RemoveContainer", "PullImage", "ImageStatus", "ListImages", "RemoveImage", "ExecSync"];
const STATUS = ["PodSandboxStatus", "ContainerStatus", "ListPodSandbox", "ListContainers", "ImageStatus", "ListImages"];

function table(): string {
  const p = samples.podshim, c = samples.containerd;
  const lines = [
    `\nlifecycle (critest -benchmark shape), ${ROUNDS} round(s), ms`,
    `| op | n | podshim p50 / p95 | containerd p50 / p95 | ratio p50 | ratio p95 |`,
    `|---|---|---|---|---|---|`,
    ...OPS.map((op) => {
      const a = p.ops[op] ?? [], b = c.ops[op] ?? [];
      return `| ${op} | ${a.length} | ${fmt(pct(a, 0.5))} / ${fmt(pct(a, 0.95))} | ${fmt(pct(b, 0.5))} / ${fmt(pct(b, 0.95))} | ${ratio(pct(a, 0.5), pct(b, 0.5))} | ${ratio(pct(a, 0.95), pct(b, 0.95))} |`;
    }),
    `\nstatus and list calls while the pod and container lifecycle runs (one call every ${PROBE_PACE_MS} ms), ms`,
    `| call | n | podshim p50 / p99 | containerd p50 / p99 | ratio p50 | ratio p99 | idle podshim p50 / containerd p50 |`,
    `|---|---|---|---|---|---|---|`,
    ...STATUS.map((op) => {
      const a = p.underLoad[op] ?? [], b = c.underLoad[op] ?? [];
      return `| ${op} | ${a.length}/${b.length} | ${fmt(pct(a, 0.5))} / ${fmt(pct(a, 0.99))} | ${fmt(pct(b, 0.5))} / ${fmt(pct(b, 0.99))} | ${ratio(pct(a, 0.5), pct(b, 0.5))} | ${ratio(pct(a, 0.99), pct(b, 0.99))} | ${fmt(pct(p.idle[op] ?? [], 0.5))} / ${fmt(pct(c.idle[op] ?? [], 0.5))} |`;
    }),
  ];
  if (BASELINE) {
    const b = samples.baseline;
    lines.push(
      `\nbaseline build (${BASELINE}) in the same rounds, ms`,
      `| op | baseline p50 / p95 | podshim p50 / p95 | containerd p50 / p95 | baseline/containerd p50 | podshim/containerd p50 |`,
      `|---|---|---|---|---|---|`,
      ...OPS.map((op) => {
        const x = b.ops[op] ?? [], a = p.ops[op] ?? [], y = c.ops[op] ?? [];
        return `| ${op} | ${fmt(pct(x, 0.5))} / ${fmt(pct(x, 0.95))} | ${fmt(pct(a, 0.5))} / ${fmt(pct(a, 0.95))} | ${fmt(pct(y, 0.5))} / ${fmt(pct(y, 0.95))} | ${ratio(pct(x, 0.5), pct(y, 0.5))} | ${ratio(pct(a, 0.5), pct(y, 0.5))} |`;
      }),
      `\nbaseline build, status and list calls under load, ms`,
      `| call | baseline p50 / p99 | podshim p50 / p99 | containerd p50 / p99 | baseline/containerd p50 / p99 | podshim/containerd p50 / p99 |`,
      `|---|---|---|---|---|---|`,
      ...STATUS.map((op) => {
        const x = b.underLoad[op] ?? [], a = p.underLoad[op] ?? [], y = c.underLoad[op] ?? [];
        return `| ${op} | ${fmt(pct(x, 0.5))} / ${fmt(pct(x, 0.99))} | ${fmt(pct(a, 0.5))} / ${fmt(pct(a, 0.99))} | ${fmt(pct(y, 0.5))} / ${fmt(pct(y, 0.99))} | ${ratio(pct(x, 0.5), pct(y, 0.5))} / ${ratio(pct(x, 0.99), pct(y, 0.99))} | ${ratio(pct(a, 0.5), pct(y, 0.5))} / ${ratio(pct(a, 0.99), pct(y, 0.99))} |`;
      }),
    );
  }
  lines.push(`\npodshim RSS after each round (MB, podshim + helper processes): ${rss.map((r) => `${r.podshim} + ${r.helpers}`).join(", ")}`);
  const secs = (ms: number) => (ms / 1000).toFixed(1);
  const perRound = (label: Target["label"]) => cpu[label].map((c) => (label === "containerd" ? secs(c.containerd) : `${secs(c.own)} + ${secs(c.programs)} + ${secs(c.containerd)} = ${secs(c.own + c.programs + c.containerd)}`)).join(", ");
  lines.push(`CPU s per round: podshim + its spawner and the programs it ran + containerd: ${perRound("podshim")}; containerd with its CRI plugin and the CNI plugins it ran: ${perRound("containerd")}`);
  if (BASELINE) lines.push(`CPU s per round, baseline build (same parts): ${perRound("baseline")}`);
  return lines.join("\n");
}

it("critest -benchmark shape: podshim vs containerd's CRI plugin", async () => {
  // A warm-up of each (not counted): first pulls, first CNI runs, JIT.
  for (const t of targets) await pods(t, {});
  for (let r = 0; r < ROUNDS; r++) {
    // Rotate who goes first (and, with two, alternate), so drift in the machine's load hits all alike.
    const order = targets.map((_, i) => targets[(i + r) % targets.length]!);
    for (const t of order) {
      const refs: string[] = [];
      for (let i = 0; i < PULLS; i++) refs.push(await freshImage(bed));
      await round(t, refs);
    }
  }
  const text = table();
  console.log(text);
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(join(OUT_DIR, "lifecycle.md"), `${new Date().toISOString()}\n${text}\n`);
  writeFileSync(join(OUT_DIR, "lifecycle.json"), JSON.stringify({ at: new Date().toISOString(), rounds: ROUNDS, rss, cpu, samples }, null, 1));
  writeFileSync(join(OUT_DIR, "lifecycle-podshim.log"), podshim.output());
}, 900_000);
