import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError, NotFoundError } from "../../src/errors/errors.js";
import type { RpcContext } from "../../src/rpc/handlers.js";
import { containerStats } from "../../src/cri/stats-container.js";
import { listContainerStats } from "../../src/cri/stats-container-list.js";
import { podSandboxStats } from "../../src/cri/stats-pod-sandbox.js";
import { listPodSandboxStats } from "../../src/cri/stats-pod-sandbox-list.js";
import { listMetricDescriptors } from "../../src/cri/stats-metric-descriptors.js";
import { listPodSandboxMetrics } from "../../src/cri/stats-pod-sandbox-metrics.js";
import type { CgroupLayout } from "../../src/stats/cgroup.js";
import type { SnapshotUsageSource } from "../../src/stats/layer-usage.js";
import { StatsService } from "../../src/stats/stats-service.js";
import type { StatsContainer, StatsSandbox, StatsSource } from "../../src/stats/types.js";

const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0:    1296      16    0    0    0     0          0         0      936      12    0    0    0     0       0          0
`;

const log = pino({ level: "silent" });
const ctx: RpcContext = { log, signal: new AbortController().signal };

function container(id: string, sandboxId: string, over: Partial<StatsContainer> = {}): StatsContainer {
  return {
    id, sandboxId, metadata: { name: `name-${id}`, attempt: 0 }, labels: { app: sandboxId }, annotations: {}, image: "busybox",
    cgroupsPath: `/kubepods/${sandboxId}/${id}`, snapshotKey: id, running: true, ...over,
  };
}

function sandbox(id: string, over: Partial<StatsSandbox> = {}): StatsSandbox {
  return {
    id, metadata: { name: `pod-${id}`, uid: id, namespace: "ns", attempt: 0 }, labels: { pod: id }, annotations: {},
    cgroupParent: `/kubepods/${id}`, cgroupsPath: `/kubepods/${id}/${id}`, pid: 100, hostNetwork: false, ready: true, ...over,
  };
}

class FakeSnapshots implements SnapshotUsageSource {
  calls = 0;
  async usage(key: string) {
    this.calls++;
    return { size: BigInt(key.length) * 1000n, inodes: 5n };
  }
}

describe("StatsService", () => {
  let root: string;
  let layout: CgroupLayout;
  let containers: StatsContainer[];
  let sandboxes: StatsSandbox[];
  const source: StatsSource = { containers: () => containers, sandboxes: () => sandboxes };

  async function cgroup(path: string, cpuNs: bigint, mem: number, pids = 1) {
    await mkdir(join(root, "cpuacct", path), { recursive: true });
    await mkdir(join(root, "memory", path), { recursive: true });
    await mkdir(join(root, "pids", path), { recursive: true });
    await writeFile(join(root, "cpuacct", path, "cpuacct.usage"), `${cpuNs}\n`);
    await writeFile(join(root, "memory", path, "memory.usage_in_bytes"), `${mem}\n`);
    await writeFile(join(root, "memory", path, "memory.limit_in_bytes"), "9223372036854771712\n");
    await writeFile(join(root, "memory", path, "memory.stat"), `total_rss ${mem / 2}\ntotal_inactive_file 10\ntotal_pgfault 3\ntotal_pgmajfault 0\n`);
    await writeFile(join(root, "pids", path, "pids.current"), `${pids}\n`);
  }

  function service(snapshots = new FakeSnapshots()) {
    return new StatsService({
      source, snapshots, logger: log, cgroupLayout: layout, procRoot: join(root, "proc"), fsMountpoint: "/snap",
      cpuRate: { minIntervalNs: 0n },
    });
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "podshim-stats-service-"));
    const m = (c: string) => ({ dir: join(root, c), root: "/" });
    layout = { version: 1, controllers: { cpuacct: m("cpuacct"), memory: m("memory"), pids: m("pids") } };
    await cgroup("/kubepods/sa", 3_000_000_000n, 3000, 5);
    await cgroup("/kubepods/sa/aaa1", 1_000_000_000n, 1000, 2);
    await cgroup("/kubepods/sa/aaa2", 2_000_000_000n, 2000, 2);
    await cgroup("/podshim/sb", 100n, 100, 1);
    await cgroup("/podshim/bbb1", 400n, 400, 3);
    await mkdir(join(root, "proc/100/net"), { recursive: true });
    await writeFile(join(root, "proc/100/net/dev"), NET_DEV);
    sandboxes = [
      sandbox("sa"),
      // No cgroup parent (crictl): the pod is the sum of its pause and container cgroups.
      sandbox("sb", { cgroupParent: "", cgroupsPath: "/podshim/sb", hostNetwork: true }),
    ];
    containers = [
      container("aaa1", "sa"),
      container("aaa2", "sa"),
      container("bbb1", "sb", { cgroupsPath: "/podshim/bbb1" }),
      container("bbb2", "sb", { cgroupsPath: "/podshim/bbb2", running: false }),
    ];
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("lists every container, cpu and memory for running ones, writable layer once measured", async () => {
    const snaps = new FakeSnapshots();
    const s = service(snaps);
    const first = await s.listContainerStats();
    expect(first.map((x) => x.attributes?.id)).toEqual(["aaa1", "aaa2", "bbb1", "bbb2"]);
    expect(first[0]!.cpu?.usageCoreNanoSeconds).toEqual({ value: 1_000_000_000n });
    expect(first[0]!.cpu?.usageNanoCores).toBeUndefined();
    expect(first[0]!.memory?.workingSetBytes).toEqual({ value: 990n });
    expect(first[0]!.memory?.availableBytes).toBeUndefined();
    expect(first[0]!.writableLayer).toBeUndefined();
    expect(first[3]!.cpu).toBeUndefined();
    expect(first[3]!.memory).toBeUndefined();
    // The misses were queued; the next list finds them without another call per container.
    await s.refreshLayers();
    const calls = snaps.calls;
    const second = await s.listContainerStats();
    expect(snaps.calls).toBe(calls);
    expect(second[0]!.writableLayer).toMatchObject({ fsId: { mountpoint: "/snap" }, usedBytes: { value: 4000n }, inodesUsed: { value: 5n } });
    expect(second[0]!.cpu?.usageNanoCores).toBeDefined();
  });

  it("computes usage_nano_cores from the previous sample", async () => {
    const s = service();
    await s.containerStats("aaa1");
    const t0 = process.hrtime.bigint();
    await writeFile(join(root, "cpuacct/kubepods/sa/aaa1/cpuacct.usage"), "1100000000\n");
    const r = await s.containerStats("aaa1");
    const elapsed = process.hrtime.bigint() - t0;
    // 100 ms of CPU over at most `elapsed` wall time: at least that rate.
    expect(r.cpu?.usageNanoCores?.value).toBeGreaterThanOrEqual((100_000_000n * 1_000_000_000n) / (elapsed + 5_000_000_000n));
    await writeFile(join(root, "cpuacct/kubepods/sa/aaa1/cpuacct.usage"), "1000000000\n");
  });

  it("filters by id prefix, pod sandbox id and labels", async () => {
    const s = service();
    const ids = async (f: Parameters<StatsService["listContainerStats"]>[0]) => (await s.listContainerStats(f)).map((x) => x.attributes?.id);
    expect(await ids({ id: "aaa", podSandboxId: "", labelSelector: {} })).toEqual(["aaa1", "aaa2"]);
    expect(await ids({ id: "", podSandboxId: "sb", labelSelector: {} })).toEqual(["bbb1", "bbb2"]);
    expect(await ids({ id: "", podSandboxId: "", labelSelector: { app: "sa" } })).toEqual(["aaa1", "aaa2"]);
    expect(await ids({ id: "zzz", podSandboxId: "", labelSelector: {} })).toEqual([]);
  });

  it("ContainerStats: full id or unique prefix; unknown or ambiguous is NOT_FOUND; waits for an unmeasured layer", async () => {
    const s = service();
    const r = await s.containerStats("bbb1");
    expect(r.writableLayer?.usedBytes).toEqual({ value: 4000n });
    expect((await s.containerStats("aaa2")).attributes?.id).toBe("aaa2");
    await expect(s.containerStats("nope")).rejects.toBeInstanceOf(NotFoundError);
    await expect(s.containerStats("aaa")).rejects.toBeInstanceOf(NotFoundError);
  });

  it("PodSandboxStats: the pod cgroup, network from the pause process, task count, its containers", async () => {
    const s = service();
    const r = await s.podSandboxStats("sa");
    expect(r.attributes?.id).toBe("sa");
    expect(r.linux?.cpu?.usageCoreNanoSeconds).toEqual({ value: 3_000_000_000n });
    expect(r.linux?.memory?.usageBytes).toEqual({ value: 3000n });
    expect(r.linux?.process?.processCount).toEqual({ value: 5n });
    expect(r.linux?.network?.defaultInterface).toMatchObject({ name: "eth0", rxBytes: { value: 1296n }, txBytes: { value: 936n } });
    expect(r.linux?.network?.interfaces).toEqual([]);
    expect(r.linux?.containers.map((c) => c.attributes?.id)).toEqual(["aaa1", "aaa2"]);
    await expect(s.podSandboxStats("zz")).rejects.toBeInstanceOf(NotFoundError);
  });

  it("a pod without a cgroup parent sums its cgroups; host network has no pod network stats", async () => {
    const s = service();
    const r = await s.podSandboxStats("sb");
    expect(r.linux?.cpu?.usageCoreNanoSeconds).toEqual({ value: 500n });
    expect(r.linux?.memory?.usageBytes).toEqual({ value: 500n });
    expect(r.linux?.memory?.availableBytes).toBeUndefined();
    expect(r.linux?.process?.processCount).toEqual({ value: 4n });
    expect(r.linux?.network).toBeUndefined();
  });

  it("ListPodSandboxStats filters by id prefix and labels", async () => {
    const s = service();
    expect((await s.listPodSandboxStats()).map((x) => x.attributes?.id)).toEqual(["sa", "sb"]);
    expect((await s.listPodSandboxStats({ id: "", labelSelector: { pod: "sb" } })).map((x) => x.attributes?.id)).toEqual(["sb"]);
    expect(await s.listPodSandboxStats({ id: "x", labelSelector: {} })).toEqual([]);
  });

  it("ListPodSandboxMetrics: pod metrics with network, container metrics, labels as described", async () => {
    const s = service();
    await s.refreshLayers();
    const pods = await s.podSandboxMetrics();
    const keys = new Map(s.metricDescriptors().map((d) => [d.name, d.labelKeys.length]));
    expect(pods.map((p) => p.podSandboxId)).toEqual(["sa", "sb"]);
    const sa = pods[0]!;
    expect(sa.metrics.find((m) => m.name === "container_network_receive_bytes_total")?.labelValues).toEqual(["sa", "pod-sa", "", "eth0"]);
    expect(sa.metrics.find((m) => m.name === "container_threads")?.value).toEqual({ value: 5n });
    expect(sa.containerMetrics.map((c) => c.containerId)).toEqual(["aaa1", "aaa2"]);
    const cpu = sa.containerMetrics[0]!.metrics.find((m) => m.name === "container_cpu_usage_seconds_total");
    expect(cpu).toMatchObject({ labelValues: ["aaa1", "name-aaa1", "busybox"], value: { value: 1n } });
    for (const p of pods) for (const m of [...p.metrics, ...p.containerMetrics.flatMap((c) => c.metrics)]) expect(keys.get(m.name)).toBe(m.labelValues.length);
    // The exited container has only its writable layer.
    expect(pods[1]!.containerMetrics[1]!.metrics.map((m) => m.name)).toEqual(["container_fs_usage_bytes"]);
  });

  it("without cgroups (none mounted) answers with attributes and layers only", async () => {
    const s = new StatsService({ source, snapshots: new FakeSnapshots(), logger: log, cgroupLayout: null });
    const r = await s.listContainerStats();
    expect(r.every((x) => x.cpu === undefined && x.memory === undefined)).toBe(true);
  });

  it("start refreshes layers at once and on a timer; stop ends it", async () => {
    const snaps = new FakeSnapshots();
    const s = new StatsService({ source, snapshots: snaps, logger: log, cgroupLayout: layout, layerRefreshMs: 20, fsMountpoint: async () => "/resolved" });
    s.start();
    await new Promise((r) => setTimeout(r, 70));
    s.stop();
    const calls = snaps.calls;
    expect(calls).toBeGreaterThanOrEqual(2 * containers.length);
    await new Promise((r) => setTimeout(r, 50));
    expect(snaps.calls).toBe(calls);
    expect((await s.listContainerStats())[0]!.writableLayer?.fsId?.mountpoint).toBe("/resolved");
  });

  describe("handlers", () => {
    it("check the request and wrap the service's answer", async () => {
      const deps = { stats: service() };
      await expect(containerStats(deps)({ containerId: "" }, ctx)).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(podSandboxStats(deps)({ podSandboxId: "" }, ctx)).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(containerStats(deps)({ containerId: "gone" }, ctx)).rejects.toBeInstanceOf(NotFoundError);
      expect((await containerStats(deps)({ containerId: "aaa1" }, ctx)).stats?.attributes?.id).toBe("aaa1");
      expect((await listContainerStats(deps)({ filter: undefined }, ctx)).stats).toHaveLength(4);
      expect((await podSandboxStats(deps)({ podSandboxId: "sa" }, ctx)).stats?.linux?.containers).toHaveLength(2);
      expect((await listPodSandboxStats(deps)({ filter: { id: "sb", labelSelector: {} } }, ctx)).stats).toHaveLength(1);
      expect((await listMetricDescriptors(deps)({}, ctx)).descriptors.length).toBeGreaterThan(10);
      expect((await listPodSandboxMetrics(deps)({}, ctx)).podMetrics).toHaveLength(2);
    });
  });
});
