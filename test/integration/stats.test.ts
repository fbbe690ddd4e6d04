// Container and pod stats through the CRI socket, read from the containers' real cgroups.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { status as Status } from "@grpc/grpc-js";
import type { PodshimHandle } from "../support/podshim.js";
import { startPodFixture, type PodFixture } from "../support/pod-fixture.js";
import { statusOf } from "../support/cri-client.js";

const bed = inject("bed");
let fx: PodFixture;
let podshim: PodshimHandle;
let pod: string;

beforeAll(async () => {
  fx = await startPodFixture(bed, "stats", [bed.images.busybox, bed.images.web]);
  ({ podshim, pod } = fx);
});
afterAll(async () => {
  
  await fx?.cleanup();
});

const container = (name: string, command: string[], image = bed.images.busybox) => fx.container(name, { image: { image }, command, labels: { role: name } });

const stats = async (id: string) => (await podshim.cri.runtime("ContainerStats", { container_id: id })).stats;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("container stats", () => {
  it("shows rising CPU usage and a non-zero rate for a container burning CPU", async () => {
    const id = await container("burner", ["sh", "-c", "while true; do :; done"]);
    const first = await stats(id);
    await sleep(1500);
    const second = await stats(id);
    expect(first.attributes.id).toBe(id);
    expect(BigInt(second.cpu.usage_core_nano_seconds.value)).toBeGreaterThan(BigInt(first.cpu.usage_core_nano_seconds.value));
    expect(BigInt(second.cpu.usage_nano_cores?.value ?? 0)).toBeGreaterThan(100_000_000n);
  });

  it("counts 50 MB a container holds in its working set", async () => {
    // tmpfs pages are charged to the cgroup of the process that writes them, and stay resident.
    const id = await container("hog", ["sh", "-c", "head -c 52428800 /dev/zero > /dev/shm/fill; sleep 3600"]);
    let ws = 0n;
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && ws < 50_000_000n) {
      ws = BigInt((await stats(id)).memory.working_set_bytes.value);
      await sleep(200);
    }
    expect(ws).toBeGreaterThanOrEqual(50_000_000n);
  });

  it("lists by label, reports an exited container and refuses an unknown one", async () => {
    const done = await container("done", ["true"]);
    await sleep(500);
    const exited = await stats(done);
    expect(exited.attributes.id).toBe(done);
    const { stats: listed } = await podshim.cri.runtime("ListContainerStats", { filter: { label_selector: { role: "burner" } } });
    expect(listed).toHaveLength(1);
    expect((await statusOf(stats("0".repeat(64)))).code).toBe(Status.NOT_FOUND);
  });
});

describe("pod stats", () => {
  it("shows the pod's network counters grow after traffic", async () => {
    await container("web", [], bed.images.web);
    const before = (await podshim.cri.runtime("PodSandboxStats", { pod_sandbox_id: pod })).stats;
    const ip = (await podshim.cri.runtime("PodSandboxStatus", { pod_sandbox_id: pod })).status.network.ip;
    for (let i = 0; i < 20; i++) await fetch(`http://${ip}:80/`, { signal: AbortSignal.timeout(5000) }).then((r) => r.text()).catch(() => "");
    const after = (await podshim.cri.runtime("PodSandboxStats", { pod_sandbox_id: pod })).stats;
    expect(after.linux.network.default_interface.name).toBe("eth0");
    expect(BigInt(after.linux.network.default_interface.rx_bytes.value)).toBeGreaterThan(BigInt(before.linux.network.default_interface.rx_bytes.value));
    expect(BigInt(after.linux.network.default_interface.tx_bytes.value)).toBeGreaterThan(BigInt(before.linux.network.default_interface.tx_bytes.value));
    expect(after.linux.containers.length).toBeGreaterThanOrEqual(4);
    expect(BigInt(after.linux.process.process_count.value)).toBeGreaterThan(0n);
  });
});
