// The pod lifecycle (RunPodSandbox, PodSandboxStatus, StopPodSandbox, RemovePodSandbox), 4
// pods in parallel, for podshim and for containerd's own CRI plugin on the SAME containerd
// (a private one with its CRI plugin enabled), the same CNI bridge network and pause image.
import { afterAll, beforeAll, inject, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { CriClient } from "../support/cri-client.js";
import { benchPodConfig, latencyOf, startBuiltinCri, timed, type BuiltinCri } from "./builtin-cri.js";
import { startPodshim, type PodshimHandle } from "../support/podshim.js";
import { testNetwork, type TestNetwork } from "../support/cni.js";
import { report, type Latency } from "./measure.js";

const bed = inject("bed");
const base = mkdtempSync(join(bed.tmpDir, "bench-sandbox-"));
const PODS = 24;
const CONCURRENCY = 4;
let net: TestNetwork;
let builtinCri: BuiltinCri;
let podshim: PodshimHandle;
let builtin: CriClient;

beforeAll(async () => {
  net = testNetwork(base);
  builtinCri = await startBuiltinCri(bed, base, net);
  builtin = builtinCri.cri;
  podshim = await startPodshim({ containerdSocket: builtinCri.containerd.socket, baseDir: base, cniConfDir: net.confDir, extraArgs: ["--log-level", "info", "--pause-image", bed.images.pause] });
  await podshim.cri.image("PullImage", { image: { image: bed.images.pause } }, 60_000);
  await builtin.image("PullImage", { image: { image: bed.images.pause } }, 60_000);
}, 300_000);

afterAll(async () => {
  await podshim?.cleanup();
  await builtinCri?.cleanup();
  await net?.cleanup();
  rmSync(base, { recursive: true, force: true });
});

async function lifecycle(label: string, cri: CriClient): Promise<Latency[]> {
  const times = { run: [] as number[], status: [] as number[], stop: [] as number[], remove: [] as number[] };
  let next = 0;
  const worker = async () => {
    while (next < PODS) {
      const i = next++;
      const { pod_sandbox_id: id }: { pod_sandbox_id: string } = await timed(times.run, () => cri.runtime("RunPodSandbox", { config: benchPodConfig(bed, base, i) }, 120_000));
      await timed(times.status, () => cri.runtime("PodSandboxStatus", { pod_sandbox_id: id }));
      await timed(times.stop, () => cri.runtime("StopPodSandbox", { pod_sandbox_id: id }, 60_000));
      await timed(times.remove, () => cri.runtime("RemovePodSandbox", { pod_sandbox_id: id }, 60_000));
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return [
    latencyOf(`${label} RunPodSandbox`, CONCURRENCY, times.run),
    latencyOf(`${label} PodSandboxStatus`, CONCURRENCY, times.status),
    latencyOf(`${label} StopPodSandbox`, CONCURRENCY, times.stop),
    latencyOf(`${label} RemovePodSandbox`, CONCURRENCY, times.remove),
  ];
}

it("pod lifecycle: podshim vs containerd's CRI plugin", async () => {
  // A warm-up round each, then the measured ones, alternating so drift hits both alike.
  await lifecycle("warm-up", podshim.cri);
  await lifecycle("warm-up", builtin);
  const ours = await lifecycle("podshim", podshim.cri);
  const theirs = await lifecycle("containerd-cri", builtin);
  report("sandbox", [...ours, ...theirs], { pods: PODS, concurrency: CONCURRENCY, containerd: "1.6 (Debian), same daemon, same CNI network and pause image" });
});
