// The rest of RuntimeService and ImageService: the Stream* variants of the list calls answer
// exactly what their unary twins answer, calls podshim does not support say so, the pod resize
// notification is accepted, Status tells the features podshim has, and a recursively
// read-only mount really is.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { startPodFixture, type PodFixture } from "../support/pod-fixture.js";
import { statusOf } from "../support/cri-client.js";

const bed = inject("bed");
let fx: PodFixture;
let containers: string[];
beforeAll(async () => {
  fx = await startPodFixture(bed, "calls", [bed.images.busybox]);
  containers = [await fx.container("one", { labels: { tier: "a" } }), await fx.container("two", { labels: { tier: "b" } })];
});
afterAll(async () => {
  await fx?.cleanup();
});

/** Every message of a server stream, in order, once it has ended. */
function collect(method: string, request: object = {}): Promise<any[]> {
  const stream = fx.podshim.cri.runtimeStream(method, request);
  const out: any[] = [];
  return new Promise((resolve, reject) => {
    stream.on("data", (m: unknown) => out.push(m));
    stream.on("error", reject);
    stream.on("end", () => resolve(out));
  });
}

function collectImages(request: object = {}): Promise<any[]> {
  const stream = fx.podshim.cri.imageStream("StreamImages", request);
  const out: any[] = [];
  return new Promise((resolve, reject) => {
    stream.on("data", (m: unknown) => out.push(m));
    stream.on("error", reject);
    stream.on("end", () => resolve(out));
  });
}

const ids = (xs: Array<{ id: string }>) => xs.map((x) => x.id).sort();

describe("Stream* list calls", () => {
  it("StreamContainers and StreamPodSandboxes answer what ListContainers and ListPodSandbox do, filters included", async () => {
    const cri = fx.podshim.cri;
    const listed = (await cri.runtime("ListContainers", {})).containers;
    const streamed = (await collect("StreamContainers", {})).flatMap((m) => m.containers);
    expect(ids(streamed)).toEqual(ids(listed));
    expect(ids(listed)).toEqual([...containers].sort());
    expect(streamed.find((c: any) => c.id === containers[0])).toEqual(listed.find((c: any) => c.id === containers[0]));

    const filtered = (await collect("StreamContainers", { filter: { label_selector: { tier: "b" } } })).flatMap((m) => m.containers);
    expect(ids(filtered)).toEqual([containers[1]]);

    const pods = (await cri.runtime("ListPodSandbox", {})).items;
    const streamedPods = (await collect("StreamPodSandboxes", {})).flatMap((m) => m.pod_sandboxes);
    expect(streamedPods).toEqual(pods);
    expect(ids(streamedPods)).toEqual([fx.pod]);
    expect(await collect("StreamPodSandboxes", { filter: { id: "ffffffffff" } })).toEqual([]);
  });

  it("StreamContainerStats, StreamPodSandboxStats, StreamPodSandboxMetrics and StreamImages cover the same items", async () => {
    const stats = (await collect("StreamContainerStats", {})).flatMap((m) => m.container_stats);
    expect(stats.map((s: any) => s.attributes.id).sort()).toEqual([...containers].sort());
    expect(stats.every((s: any) => BigInt(s.memory.working_set_bytes.value) > 0n)).toBe(true);

    const podStats = (await collect("StreamPodSandboxStats", {})).flatMap((m) => m.pod_sandbox_stats);
    expect(podStats.map((s: any) => s.attributes.id)).toEqual([fx.pod]);
    expect(podStats[0].linux.containers).toHaveLength(2);

    const metrics = (await collect("StreamPodSandboxMetrics", {})).flatMap((m) => m.pod_sandbox_metrics);
    expect(metrics.map((m: any) => m.pod_sandbox_id)).toEqual([fx.pod]);
    expect(metrics[0].metrics.length).toBeGreaterThan(0);

    const images = (await collectImages({})).flatMap((m) => m.images);
    const listedImages = (await fx.podshim.cri.image("ListImages", {})).images;
    expect(ids(images)).toEqual(ids(listedImages));
  });
});

describe("calls podshim does not support, or supports only as a notification", () => {
  it("checkpoint and restore answer UNIMPLEMENTED with the reason", async () => {
    const cri = fx.podshim.cri;
    for (const [method, req] of [
      ["CheckpointContainer", { container_id: containers[0], location: "/tmp/x.tar" }],
      ["CheckpointPod", { pod_sandbox_id: fx.pod, path: "/tmp/p.tar" }],
      ["RestorePod", { pod_sandbox_id: fx.pod, path: "/tmp/p.tar" }],
    ] as const) {
      const s = await statusOf(cri.runtime(method, req));
      expect(s.code, method).toBe(12); // UNIMPLEMENTED
      expect(s.details).toMatch(/not supported by podshim: .*CRIU/);
    }
  });

  it("UpdatePodSandboxResources accepts a known pod and refuses an unknown one", async () => {
    const cri = fx.podshim.cri;
    await cri.runtime("UpdatePodSandboxResources", { pod_sandbox_id: fx.pod, resources: { cpu_quota: 50000, cpu_period: 100000, memory_limit_in_bytes: 256 << 20 } });
    expect((await statusOf(cri.runtime("UpdatePodSandboxResources", { pod_sandbox_id: "nope" }))).code).toBe(5); // NOT_FOUND
    expect((await statusOf(cri.runtime("UpdatePodSandboxResources", {}))).code).toBe(3); // INVALID_ARGUMENT
  });
});

describe("Status features and recursive read-only mounts", () => {
  it("reports the handlers' features from the runtime binary and the supplemental groups policy", async () => {
    const res = await fx.podshim.cri.runtime("Status", {});
    expect(res.features.supplemental_groups_policy).toBe(true);
    const names = res.runtime_handlers.map((h: any) => h.name);
    expect(names).toContain("");
    const runcSays = JSON.parse(execFileSync("runc", ["features"], { encoding: "utf8" })).mountOptions as string[];
    for (const h of res.runtime_handlers) {
      expect(h.features.recursive_read_only_mounts).toBe(runcSays.includes("rro"));
      expect(h.features.user_namespaces).toBe(false);
    }
  });

  it("a recursively read-only volume keeps the mounts beneath it read-only too", async () => {
    const status = await fx.podshim.cri.runtime("Status", {});
    if (!status.runtime_handlers[0].features.recursive_read_only_mounts) return; // the runtime here cannot
    const host = mkdtempSync(join(bed.tmpDir, "rro-"));
    const sub = join(host, "sub");
    mkdirSync(sub);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "rro-test", sub]);
    try {
      const mount = (recursive: boolean) => ({ mounts: [{ container_path: "/data", host_path: host, readonly: true, recursive_read_only: recursive }] });
      const plain = await fx.container("ro", mount(false));
      const rro = await fx.container("rro", mount(true));
      const write = async (id: string) => (await fx.podshim.cri.runtime("ExecSync", { container_id: id, cmd: ["sh", "-c", "touch /data/sub/f && echo wrote"], timeout: 10 })).exit_code;
      expect(await write(plain)).toBe(0); // a plain read-only bind leaves the submount writable
      expect(await write(rro)).not.toBe(0);
      for (const id of [plain, rro]) await fx.podshim.cri.runtime("RemoveContainer", { container_id: id });
    } finally {
      execFileSync("umount", [sub]);
      rmSync(host, { recursive: true, force: true });
    }
  });
});
