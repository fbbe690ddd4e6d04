// What each CRI operation costs in CPU, one at a time (no queueing, so the figures are the
// work itself): podshim's own CPU time per operation, plus containerd's (podshim's calls to it),
// against containerd's with its CRI plugin doing the same. CPU time is what a runtime takes
// from a busy node, and unlike latency on this shared 2-core VM it repeats run to run.
//   - ContainerStatus, PodSandboxStatus, ListContainers, ListPodSandbox, ImageStatus: 2000 calls;
//   - a pod's lifecycle (Run, Status, Stop, Remove): 20 pods;
//   - a container's lifecycle in a live pod (Create, Start, Status, Stop, Remove): 20;
//   - ExecSync `true`: 100 calls.
// CNI plugins containerd runs count in its figure (they are its children); the ones podshim
// runs count in podshim's spawner. Shims and runc count in neither.
import { afterAll, beforeAll, inject, it } from "vitest";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { CriClient } from "../support/cri-client.js";
import { startPodshim, type PodshimHandle } from "../support/podshim.js";
import { testNetwork, type TestNetwork } from "../support/cni.js";
import { benchPodConfig, startBuiltinCri, type BuiltinCri } from "./builtin-cri.js";
import { cpuMs, runtimeCpu } from "./measure.js";
import { DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from "../../src/oci/defaults.js";

const bed = inject("bed");
const base = mkdtempSync(join(bed.tmpDir, "bench-opcpu-"));
const OUT_DIR = fileURLToPath(new URL("../../.tmp/bench/", import.meta.url));
const BASELINE = process.env.PODSHIM_BENCH_BASELINE;
const READS = Number(process.env.PODSHIM_BENCH_READS ?? 2000);
const PODS = 20;
const CONTAINERS = 20;
const EXECS = Number(process.env.PODSHIM_BENCH_EXECS ?? 100);

interface Target {
  label: string;
  cri: CriClient;
  /** podshim's own pid and its spawner's; none for containerd's CRI. */
  pid?: number;
  anchor: { pod: string; container: string; config: ReturnType<typeof benchPodConfig> };
}
let net: TestNetwork;
let builtin: BuiltinCri;
const podshims: PodshimHandle[] = [];
const targets: Target[] = [];

function containerConfig(name: string) {
  return {
    metadata: { name, attempt: 0 }, image: { image: bed.images.busybox }, command: ["sleep", "3600"], log_path: `${name}.log`,
    linux: { security_context: { masked_paths: DEFAULT_MASKED_PATHS, readonly_paths: DEFAULT_READONLY_PATHS } },
  };
}

beforeAll(async () => {
  net = testNetwork(base);
  builtin = await startBuiltinCri(bed, base, net);
  const list: Array<Omit<Target, "anchor">> = [];
  for (const [label, main] of [["podshim", undefined], ...(BASELINE ? [["baseline", BASELINE]] : [])] as Array<[string, string | undefined]>) {
    const p = await startPodshim({ ...(main ? { main } : {}), containerdSocket: builtin.containerd.socket, baseDir: base, cniConfDir: net.confDir, extraArgs: ["--log-level", "info", "--pause-image", bed.images.pause] });
    podshims.push(p);
    list.push({ label, cri: p.cri, pid: p.process.pid! });
  }
  list.push({ label: "containerd", cri: builtin.cri });
  for (const t of list) {
    for (const image of [bed.images.pause, bed.images.busybox]) await t.cri.image("PullImage", { image: { image } }, 60_000);
    const config = benchPodConfig(bed, base, 900 + targets.length);
    const { pod_sandbox_id: pod } = await t.cri.runtime("RunPodSandbox", { config }, 120_000);
    const { container_id: container } = await t.cri.runtime("CreateContainer", { pod_sandbox_id: pod, sandbox_config: config, config: containerConfig("anchor") }, 60_000);
    await t.cri.runtime("StartContainer", { container_id: container }, 60_000);
    targets.push({ ...t, anchor: { pod, container, config } });
  }
}, 300_000);

afterAll(async () => {
  for (const t of targets) {
    await t.cri.runtime("StopPodSandbox", { pod_sandbox_id: t.anchor.pod }, 60_000).catch(() => undefined);
    await t.cri.runtime("RemovePodSandbox", { pod_sandbox_id: t.anchor.pod }, 60_000).catch(() => undefined);
  }
  // A graceful stop, so a podshim run with --cpu-prof (PODSHIM_NODE_ARGS) writes its profile.
  for (const p of podshims) {
    await p.stop();
    await p.cleanup();
  }
  await builtin?.cleanup();
  await net?.cleanup();
  rmSync(base, { recursive: true, force: true });
}, 300_000);


const allWorkloads: Array<{ name: string; n: number; run(t: Target, i: number): Promise<unknown> }> = [
  { name: "ContainerStatus", n: READS, run: (t) => t.cri.runtime("ContainerStatus", { container_id: t.anchor.container }) },
  { name: "PodSandboxStatus", n: READS, run: (t) => t.cri.runtime("PodSandboxStatus", { pod_sandbox_id: t.anchor.pod }) },
  { name: "ListContainers", n: READS, run: (t) => t.cri.runtime("ListContainers", {}) },
  { name: "ListPodSandbox", n: READS, run: (t) => t.cri.runtime("ListPodSandbox", {}) },
  { name: "ImageStatus", n: READS, run: (t) => t.cri.image("ImageStatus", { image: { image: bed.images.busybox } }) },
  {
    name: "pod lifecycle (Run, Status, Stop, Remove)", n: PODS,
    async run(t, i) {
      const { pod_sandbox_id: id } = await t.cri.runtime("RunPodSandbox", { config: benchPodConfig(bed, base, i) }, 120_000);
      await t.cri.runtime("PodSandboxStatus", { pod_sandbox_id: id });
      await t.cri.runtime("StopPodSandbox", { pod_sandbox_id: id }, 60_000);
      await t.cri.runtime("RemovePodSandbox", { pod_sandbox_id: id }, 60_000);
    },
  },
  {
    name: "container lifecycle (Create, Start, Status, Stop, Remove)", n: CONTAINERS,
    async run(t, i) {
      const { container_id: id } = await t.cri.runtime("CreateContainer", { pod_sandbox_id: t.anchor.pod, sandbox_config: t.anchor.config, config: containerConfig(`c-${i}`) }, 60_000);
      await t.cri.runtime("StartContainer", { container_id: id }, 60_000);
      await t.cri.runtime("ContainerStatus", { container_id: id });
      await t.cri.runtime("StopContainer", { container_id: id, timeout: 0 }, 60_000);
      await t.cri.runtime("RemoveContainer", { container_id: id }, 60_000);
    },
  },
  { name: "ExecSync true", n: EXECS, run: (t) => t.cri.runtime("ExecSync", { container_id: t.anchor.container, cmd: ["true"], timeout: 10 }) },
];

// PODSHIM_BENCH_ONLY=ExecSync runs the workloads whose name starts so (to profile one).
const only = process.env.PODSHIM_BENCH_ONLY;
const workloads = allWorkloads.filter((w) => !only || w.name.startsWith(only));

/** Waits until each podshim has gone quiet after its start-up and setup (compiling, collecting,
 * refilling its FIFO pool): under 20 ms of CPU in a second, for at most 30 s. */
async function settled(): Promise<void> {
  for (const t of targets.filter((x) => x.pid)) {
    for (let i = 0; i < 30; i++) {
      const before = cpuMs(t.pid!);
      await new Promise((r) => setTimeout(r, 1000));
      if (cpuMs(t.pid!) - before < 20) break;
    }
  }
}

it("CPU per operation: podshim vs containerd's CRI plugin", async () => {
  await settled();
  const rows: string[] = [];
  const data: Record<string, Record<string, { own: number; programs: number; containerd: number; wallMs: number }>> = {};
  for (const w of workloads) {
    for (const t of targets) {
      // Warm-up, not counted: a fresh podshim's first few thousand calls cost 3-4x the steady
      // state (V8 still compiling the serving path, on this thread and its own), which would
      // land on whichever workload came first.
      for (let i = 0; i < Math.min(w.n === READS ? 3000 : 5, w.n === READS ? 3000 : w.n); i++) await w.run(t, 10_000 + i);
      const before = runtimeCpu(builtin.containerd.pid, t.pid);
      const started = performance.now();
      for (let i = 0; i < w.n; i++) await w.run(t, i);
      const after = runtimeCpu(builtin.containerd.pid, t.pid);
      (data[w.name] ??= {})[t.label] = {
        own: (after.own - before.own) / w.n, programs: (after.programs - before.programs) / w.n,
        containerd: (after.containerd - before.containerd) / w.n, wallMs: (performance.now() - started) / w.n,
      };
    }
  }
  const f = (x: number) => (x >= 10 ? x.toFixed(1) : x.toFixed(2));
  const labels = targets.map((t) => t.label).filter((l) => l !== "containerd");
  rows.push(
    "\nCPU ms per operation, run one at a time (podshim: itself + its programs + containerd; containerd: with its CRI plugin and CNI plugins), and wall ms",
    `| operation | ${labels.map((l) => `${l} CPU (own + programs + containerd)`).join(" | ")} | containerd CRI CPU | ${labels.map((l) => `${l} / containerd`).join(" | ")} | wall ms ${[...labels, "containerd"].join(" / ")} |`,
    `|---|${labels.map(() => "---|").join("")}---|${labels.map(() => "---|").join("")}---|`,
  );
  for (const w of workloads) {
    const d = data[w.name]!;
    const c = d.containerd!.containerd;
    const total = (l: string) => d[l]!.own + d[l]!.programs + d[l]!.containerd;
    rows.push(`| ${w.name} (n=${w.n}) | ${labels.map((l) => `${f(total(l))} (${f(d[l]!.own)} + ${f(d[l]!.programs)} + ${f(d[l]!.containerd)})`).join(" | ")} | ${f(c)} | ${labels.map((l) => (total(l) / c).toFixed(2)).join(" | ")} | ${[...labels, "containerd"].map((l) => f(d[l]!.wallMs)).join(" / ")} |`);
  }
  const text = rows.join("\n");
  console.log(text);
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(join(OUT_DIR, "op-cpu.md"), `${new Date().toISOString()}\n${text}\n`);
  writeFileSync(join(OUT_DIR, "op-cpu.json"), JSON.stringify({ at: new Date().toISOString(), data }, null, 1));
  writeFileSync(join(OUT_DIR, "op-cpu-podshim.log"), podshims[0]!.output());
}, 1_800_000);
