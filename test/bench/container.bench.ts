// The container lifecycle (CreateContainer, StartContainer, ContainerStatus, StopContainer,
// RemoveContainer), 4 in parallel, in pods that stay up, for podshim and for containerd's own
// CRI plugin on the SAME containerd, with the same image and CNI network.
import { afterAll, beforeAll, inject, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { CriClient } from "../support/cri-client.js";
import { startPodshim, type PodshimHandle } from "../support/podshim.js";
import { testNetwork, type TestNetwork } from "../support/cni.js";
import { benchPodConfig, latencyOf, startBuiltinCri, timed, type BuiltinCri } from "./builtin-cri.js";
import { report, type Latency } from "./measure.js";
import { DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from "../../src/oci/defaults.js";

const bed = inject("bed");
const base = mkdtempSync(join(bed.tmpDir, "bench-container-"));
const CONTAINERS = 40;
const CONCURRENCY = 4;
let net: TestNetwork;
let builtin: BuiltinCri;
let podshim: PodshimHandle;

beforeAll(async () => {
  net = testNetwork(base);
  builtin = await startBuiltinCri(bed, base, net);
  podshim = await startPodshim({ containerdSocket: builtin.containerd.socket, baseDir: base, cniConfDir: net.confDir, extraArgs: ["--log-level", "info", "--pause-image", bed.images.pause] });
  for (const cri of [podshim.cri, builtin.cri]) {
    for (const image of [bed.images.pause, bed.images.busybox]) await cri.image("PullImage", { image: { image } }, 60_000);
  }
}, 300_000);

afterAll(async () => {
  // Per-step timings of every create, start and remove, for whoever chases a slow step.
  if (podshim) writeFileSync(join(fileURLToPath(new URL("../../.tmp/bench/", import.meta.url)), "container-podshim.log"), podshim.output());
  // A graceful stop, so a podshim run with --cpu-prof (NODE_OPTIONS) writes its profile.
  await podshim?.stop();
  await podshim?.cleanup();
  await builtin?.cleanup();
  await net?.cleanup();
  rmSync(base, { recursive: true, force: true });
});

async function lifecycle(label: string, cri: CriClient): Promise<Latency[]> {
  // One pod per worker, as critest's benchmark does: containers come and go in a live pod.
  const pods = await Promise.all(Array.from({ length: CONCURRENCY }, async (_, i) => {
    const config = benchPodConfig(bed, base, i);
    const { pod_sandbox_id: id } = await cri.runtime("RunPodSandbox", { config }, 120_000);
    return { id: id as string, config };
  }));
  const times = { create: [] as number[], start: [] as number[], status: [] as number[], stop: [] as number[], remove: [] as number[] };
  let next = 0;
  const worker = async (w: number) => {
    const pod = pods[w]!;
    while (next < CONTAINERS) {
      const i = next++;
      const config = {
        metadata: { name: `c-${i}`, attempt: 0 }, image: { image: bed.images.busybox }, command: ["sleep", "3600"], log_path: `c-${i}.log`,
        // What the kubelet sends for every container: without it containerd 1.6 masks nothing
        // while podshim applies its defaults, and the two would not do the same work.
        linux: { security_context: { masked_paths: DEFAULT_MASKED_PATHS, readonly_paths: DEFAULT_READONLY_PATHS } },
      };
      const { container_id: id }: { container_id: string } = await timed(times.create, () => cri.runtime("CreateContainer", { pod_sandbox_id: pod.id, config, sandbox_config: pod.config }, 60_000));
      await timed(times.start, () => cri.runtime("StartContainer", { container_id: id }, 60_000));
      await timed(times.status, () => cri.runtime("ContainerStatus", { container_id: id }));
      // sleep as PID 1 ignores SIGTERM: timeout 0 kills at once, the same for both runtimes.
      await timed(times.stop, () => cri.runtime("StopContainer", { container_id: id, timeout: 0 }, 60_000));
      await timed(times.remove, () => cri.runtime("RemoveContainer", { container_id: id }, 60_000));
    }
  };
  await Promise.all(pods.map((_, w) => worker(w)));
  for (const pod of pods) {
    await cri.runtime("StopPodSandbox", { pod_sandbox_id: pod.id }, 60_000);
    await cri.runtime("RemovePodSandbox", { pod_sandbox_id: pod.id }, 60_000);
  }
  return [
    latencyOf(`${label} CreateContainer`, CONCURRENCY, times.create),
    latencyOf(`${label} StartContainer`, CONCURRENCY, times.start),
    latencyOf(`${label} ContainerStatus`, CONCURRENCY, times.status),
    latencyOf(`${label} StopContainer`, CONCURRENCY, times.stop),
    latencyOf(`${label} RemoveContainer`, CONCURRENCY, times.remove),
  ];
}

/** CPU time (user + system) a process has used, in ms. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  // utime and stime are fields 14 and 15 of stat, in clock ticks (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

it("container lifecycle: podshim vs containerd's CRI plugin", async () => {
  await lifecycle("warm-up", podshim.cri);
  await lifecycle("warm-up", builtin.cri);
  const pid = podshim.process.pid!;
  const cpuBefore = cpuMs(pid);
  const ours = await lifecycle("podshim", podshim.cri);
  const podshimCpu = cpuMs(pid) - cpuBefore;
  const theirs = await lifecycle("containerd-cri", builtin.cri);
  report("container", [...ours, ...theirs], {
    containers: CONTAINERS, concurrency: CONCURRENCY, containerd: "1.6 (Debian), same daemon, same image and CNI network",
    podshimCpuMsPerContainer: Math.round(podshimCpu / CONTAINERS),
  });
});
