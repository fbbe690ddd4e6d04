// A full node: 100 pods x 2 running containers, then the calls the kubelet makes all the time
// (ListPodSandbox, ListContainers, ListContainerStats, ListPodSandboxStats, ContainerStatus),
// timed in-process, and the runtime's resident memory at that scale. The same workload runs on
// podshim and then on containerd's own CRI plugin, on the same containerd, network and images.
//
// Each call is timed by a lean client in a process of its own (wire-client.mjs: answers kept
// as bytes, a Go-like flow-control window), one call every 10 ms (fifty times the kubelet's
// relist rate) and back to back ("burst"). The "decoded" row goes through the tests' protobufjs
// client in this worker, for comparison. On the 2-vCPU development VM the floor is what a call
// that does nothing costs: the Version rows.
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { metricsUrl, startPodshim, type PodshimHandle } from "../support/podshim.js";
import type { CriClient } from "../support/cri-client.js";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { testNetwork, type TestNetwork } from "../support/cni.js";
import { benchPodConfig, startBuiltinCri, type BuiltinCri } from "./builtin-cri.js";
import { heapSpaces, podshimMemory, report, rssMB, rssParts, sample, type Latency } from "./measure.js";

const bed = inject("bed");
const base = mkdtempSync(join(bed.tmpDir, "bench-scale-"));
const PODS = 100;
const SETUP_CONCURRENCY = 8;
const PACE_MS = 10;
let net: TestNetwork;
let builtin: BuiltinCri;
let podshim: PodshimHandle;

beforeAll(async () => {
  net = testNetwork(base);
  builtin = await startBuiltinCri(bed, base, net);
  podshim = await startPodshim({ containerdSocket: builtin.containerd.socket, baseDir: base, cniConfDir: net.confDir, extraArgs: ["--log-level", "info", "--pause-image", bed.images.pause, "--metrics-address", "127.0.0.1:0"] });
  for (const cri of [podshim.cri, builtin.cri]) {
    for (const image of [bed.images.pause, bed.images.busybox]) await cri.image("PullImage", { image: { image } }, 60_000);
  }
}, 300_000);

afterAll(async () => {
  await podshim?.stop();
  await podshim?.cleanup();
  await builtin?.cleanup();
  await net?.cleanup();
  rmSync(base, { recursive: true, force: true });
}, 900_000);

async function populate(cri: CriClient): Promise<{ pods: string[]; containers: string[] }> {
  const pods: string[] = [];
  const containers: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < PODS) {
      const i = next++;
      const config = benchPodConfig(bed, base, i);
      const { pod_sandbox_id: pod } = await cri.runtime("RunPodSandbox", { config }, 120_000);
      pods.push(pod);
      for (const name of ["app", "sidecar"]) {
        const { container_id: id } = await cri.runtime("CreateContainer", {
          pod_sandbox_id: pod, sandbox_config: config,
          config: { metadata: { name }, image: { image: bed.images.busybox }, command: ["sleep", "3600"], log_path: `${name}.log`, labels: { app: `bench-${i}` } },
        }, 60_000);
        await cri.runtime("StartContainer", { container_id: id }, 60_000);
        containers.push(id);
      }
    }
  };
  await Promise.all(Array.from({ length: SETUP_CONCURRENCY }, worker));
  return { pods, containers };
}

async function depopulate(cri: CriClient, pods: string[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < pods.length) {
      const pod = pods[next++]!;
      await cri.runtime("StopPodSandbox", { pod_sandbox_id: pod }, 120_000).catch(() => undefined);
      await cri.runtime("RemovePodSandbox", { pod_sandbox_id: pod }, 120_000).catch(() => undefined);
    }
  };
  await Promise.all(Array.from({ length: SETUP_CONCURRENCY }, worker));
}

const WIRE_CLIENT = fileURLToPath(new URL("./wire-client.mjs", import.meta.url));

function wire(name: string, socket: string, method: string, n: number, paceMs: number, ids: string[] = []): Promise<Latency> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [WIRE_CLIENT, socket, method, String(n), String(paceMs), ids.join(",")], { timeout: 600_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${name}: ${stderr || err.message}`));
      else resolve({ name, n, concurrency: 1, ...(JSON.parse(stdout) as Omit<Latency, "name" | "n" | "concurrency">) });
    });
  });
}

async function measure(label: string, cri: CriClient, socket: string, containers: string[], pods: string[]): Promise<Latency[]> {
  // Warm the stats caches (layer usage, CPU rates) as a kubelet's first rounds would.
  await cri.runtime("ListContainerStats", {}, 60_000);
  await new Promise((r) => setTimeout(r, 2000));
  expect((await cri.runtime("ListContainers", {})).containers).toHaveLength(containers.length);
  expect((await cri.runtime("ListPodSandbox", {})).items).toHaveLength(pods.length);
  return [
    await wire(`${label} Version (floor)`, socket, "Version", 1000, PACE_MS),
    await wire(`${label} ListPodSandbox`, socket, "ListPodSandbox", 1000, PACE_MS),
    await wire(`${label} ListContainers`, socket, "ListContainers", 1000, PACE_MS),
    await wire(`${label} ListContainerStats`, socket, "ListContainerStats", 50, 100),
    await wire(`${label} ListPodSandboxStats`, socket, "ListPodSandboxStats", 50, 100),
    await wire(`${label} ContainerStatus`, socket, "ContainerStatus", 1000, PACE_MS, containers),
    await wire(`${label} Version burst (floor)`, socket, "Version", 1000, 0),
    await wire(`${label} ListPodSandbox burst`, socket, "ListPodSandbox", 1000, 0),
    await wire(`${label} ListContainers burst`, socket, "ListContainers", 1000, 0),
    await sample(`${label} ListContainers decoded`, 200, 1, () => cri.runtime("ListContainers", {}), PACE_MS),
  ];
}

it("a full node: 100 pods x 2 containers, podshim and containerd's CRI plugin", async () => {
  const mine = await populate(podshim.cri);
  const podshimRows = await measure("podshim", podshim.cri, podshim.socket, mine.containers, mine.pods);
  const podshimRss = podshimMemory(podshim.process.pid!);
  const podshimParts = rssParts(podshim.process.pid!);
  const podshimHeap = await heapSpaces(metricsUrl(podshim));
  await depopulate(podshim.cri, mine.pods);

  const theirs = await populate(builtin.cri);
  const builtinRows = await measure("containerd", builtin.cri, builtin.containerd.socket, theirs.containers, theirs.pods);
  const containerdRss = rssMB(builtin.containerd.pid);
  const containerdParts = rssParts(builtin.containerd.pid);
  await depopulate(builtin.cri, theirs.pods);

  report("scale", [...podshimRows, ...builtinRows], {
    pods: PODS, containers: mine.containers.length, paceMs: PACE_MS,
    podshimRssMB: podshimRss.podshim,
    podshimHelpersRssMB: podshimRss.helpers,
    podshimRssParts: podshimParts,
    podshimHeapMB: podshimHeap,
    containerdWithCriRssMB: containerdRss,
    containerdRssParts: containerdParts,
  });
}, 1_800_000);
