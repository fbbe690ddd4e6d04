// PullImage of a ~100 MB five-layer image from the local registry: podshim against
// containerd's own client (`ctr images pull`, which also unpacks) on the same daemon, back to
// back. Between rounds both copies are removed with a synchronous GC, so every round downloads
// and unpacks everything (containerd shares blobs across namespaces otherwise). Each pull's CPU
// time is printed too: the client's (ctr, or podshim itself) and containerd's.
import { afterAll, beforeAll, inject, it } from "vitest";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { buildImage, pushImage } from "../bed/oci.js";
import { busyboxLayer } from "../bed/images.js";
import { run, runOk } from "../bed/proc.js";
import { startPodshim, type PodshimHandle } from "../support/podshim.js";
import { cpuMs, pidWithArg, report, type Latency } from "./measure.js";

const bed = inject("bed");
const base = mkdtempSync(join(bed.tmpDir, "bench-pull-"));
const ROUNDS = 5;
const LAYER_MB = 20;
let podshim: PodshimHandle;
let ref: string;

beforeAll(async () => {
  // Random bytes do not compress: the registry serves ~100 MB.
  const layers = [await busyboxLayer(), ...Array.from({ length: 5 }, (_, i) => [{ type: "file" as const, path: `/data/blob${i}`, content: randomBytes(LAYER_MB * 1024 * 1024) }])];
  const img = await buildImage({ layers, config: { Cmd: ["sh"] } });
  await pushImage(bed.registryHost, "bench/big", "latest", img);
  ref = `${bed.registryHost}/bench/big:latest`;
  podshim = await startPodshim({ containerdSocket: bed.containerdSocket, baseDir: base, extraArgs: ["--log-level", "info", "--pause-image", bed.images.pause] });
}, 300_000);

afterAll(async () => {
  await podshim?.cleanup();
  await run("ctr", ["--address", bed.containerdSocket, "-n", "bench-ctr", "images", "rm", "--sync", ref]);
  rmSync(base, { recursive: true, force: true });
});

function stats(name: string, ms: number[]): Latency {
  const s = [...ms].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x);
  return { name, n: s.length, concurrency: 1, p50: r(s[Math.floor(s.length / 2)]!), p90: r(s[s.length - 1]!), p99: r(s[s.length - 1]!), max: r(s[s.length - 1]!), rate: 0 };
}

it("pulls a 100 MB image: podshim vs ctr", async () => {
  const containerd = pidWithArg(join(bed.containerdDir, "config.toml"));
  const ctrMs: number[] = [];
  const podshimMs: number[] = [];
  const cpu = { ctr: [] as number[], ctrContainerd: [] as number[], podshim: [] as number[], podshimContainerd: [] as number[] };
  // ctr is this process's child: its CPU is what the children's total gained.
  const childrenCpu = () => cpuMs(process.pid, true) - cpuMs(process.pid);
  for (let i = 0; i < ROUNDS; i++) {
    let c0 = childrenCpu();
    let d0 = cpuMs(containerd, true);
    let t = performance.now();
    await runOk("ctr", ["--address", bed.containerdSocket, "-n", "bench-ctr", "images", "pull", "--plain-http", ref], { timeoutMs: 300_000 });
    ctrMs.push(performance.now() - t);
    cpu.ctr.push(childrenCpu() - c0);
    cpu.ctrContainerd.push(cpuMs(containerd, true) - d0);
    await runOk("ctr", ["--address", bed.containerdSocket, "-n", "bench-ctr", "images", "rm", "--sync", ref]);

    c0 = cpuMs(podshim.process.pid!);
    d0 = cpuMs(containerd, true);
    t = performance.now();
    await podshim.cri.image("PullImage", { image: { image: ref } }, 300_000);
    podshimMs.push(performance.now() - t);
    cpu.podshim.push(cpuMs(podshim.process.pid!) - c0);
    cpu.podshimContainerd.push(cpuMs(containerd, true) - d0);
    await podshim.cri.image("RemoveImage", { image: { image: ref } });
  }
  const ctr = stats("ctr images pull (ms)", ctrMs);
  const ours = stats("podshim PullImage (ms)", podshimMs);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  report("pull", [ctr, ours], {
    rounds: ROUNDS, imageMB: 5 * LAYER_MB + 1, ratioP50: Math.round((ours.p50 / ctr.p50) * 100) / 100, ctrMs: ctrMs.map(Math.round), podshimMs: podshimMs.map(Math.round),
    cpuMsMedian: `ctr ${median(cpu.ctr)} + containerd ${median(cpu.ctrContainerd)}; podshim ${median(cpu.podshim)} + containerd ${median(cpu.podshimContainerd)}`,
    podshimCpuMs: cpu.podshim,
  });
});
