// 1,000 pod lifecycles on one podshim, 4 at a time, each as the kubelet drives it: run the
// pod, create and start a container, stop and remove both. After every 100, podshim's resident
// memory (and its helpers'), its V8 heap in use, and its open file descriptors:
// all three should stay flat. PODSHIM_SOAK_LIFECYCLES changes the count.
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { metricsUrl, startPodshim, type PodshimHandle } from "../support/podshim.js";
import { testNetwork, type TestNetwork } from "../support/cni.js";
import { benchPodConfig } from "./builtin-cri.js";
import { podshimMemory, report } from "./measure.js";

const bed = inject("bed");
const base = mkdtempSync(join(bed.tmpDir, "bench-soak-"));
const LIFECYCLES = Number(process.env.PODSHIM_SOAK_LIFECYCLES ?? 1000);
const EVERY = Math.max(1, Math.floor(LIFECYCLES / 10));
const CONCURRENCY = 4;
let net: TestNetwork;
let podshim: PodshimHandle;

beforeAll(async () => {
  net = testNetwork(base);
  podshim = await startPodshim({
    containerdSocket: bed.containerdSocket, baseDir: base, cniConfDir: net.confDir,
    extraArgs: ["--log-level", "info", "--pause-image", bed.images.pause, "--metrics-address", "127.0.0.1:0"],
  });
  for (const image of [bed.images.pause, bed.images.busybox]) await podshim.cri.image("PullImage", { image: { image } }, 60_000);
}, 300_000);

afterAll(async () => {
  await podshim?.stop();
  await podshim?.cleanup();
  await net?.cleanup();
  rmSync(base, { recursive: true, force: true });
}, 300_000);

async function lifecycle(i: number): Promise<void> {
  const cri = podshim.cri;
  const config = benchPodConfig(bed, base, i);
  const { pod_sandbox_id: pod } = await cri.runtime("RunPodSandbox", { config }, 120_000);
  const { container_id: id } = await cri.runtime("CreateContainer", {
    pod_sandbox_id: pod, sandbox_config: config,
    config: { metadata: { name: "app", attempt: 0 }, image: { image: bed.images.busybox }, command: ["sleep", "3600"], log_path: "app.log" },
  }, 60_000);
  await cri.runtime("StartContainer", { container_id: id }, 60_000);
  await cri.runtime("StopContainer", { container_id: id, timeout: 0 }, 60_000);
  await cri.runtime("RemoveContainer", { container_id: id }, 60_000);
  await cri.runtime("StopPodSandbox", { pod_sandbox_id: pod }, 60_000);
  await cri.runtime("RemovePodSandbox", { pod_sandbox_id: pod }, 60_000);
}

interface Sample { done: number; rssMB: number; helpersMB: number; heapUsedMB: number; fds: number; seconds: number }

/** podshim's V8 heap in use, from its metrics (prom-client's nodejs_heap_size_used_bytes). */
async function heapUsedMB(): Promise<number> {
  const text = await (await fetch(`${metricsUrl(podshim)}/metrics`)).text();
  const bytes = Number(/^(?:podshim_)?nodejs_heap_size_used_bytes (\S+)$/m.exec(text)?.[1] ?? NaN);
  return Math.round(bytes / 1048576);
}

it(`${LIFECYCLES} pod lifecycles: memory and descriptors stay flat`, async () => {
  const pid = podshim.process.pid!;
  const samples: Sample[] = [];
  const started = performance.now();
  const take = async (done: number) => {
    const mem = podshimMemory(pid);
    samples.push({ done, rssMB: mem.podshim, helpersMB: mem.helpers, heapUsedMB: await heapUsedMB(), fds: readdirSync(`/proc/${pid}/fd`).length, seconds: Math.round((performance.now() - started) / 100) / 10 });
  };
  await take(0);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < LIFECYCLES) {
      const i = next++;
      await lifecycle(i);
      done++;
      if (done % EVERY === 0) await take(done);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const { items } = await podshim.cri.runtime("ListPodSandbox", {});
  expect(items).toEqual([]);
  console.log(`soak: ${LIFECYCLES} lifecycles, ${CONCURRENCY} at a time\n| done | s | podshim RSS MB | helpers RSS MB | heap used MB | fds |\n|---|---|---|---|---|---|\n${samples.map((s) => `| ${s.done} | ${s.seconds} | ${s.rssMB} | ${s.helpersMB} | ${s.heapUsedMB} | ${s.fds} |`).join("\n")}`);
  report("soak", [], { lifecycles: LIFECYCLES, concurrency: CONCURRENCY, samples });
}, 3_600_000);
