import { describe, expect, it } from "vitest";
import { MetricType } from "../../src/gen/cri/runtime/v1/api.js";
import { v1Stats, v2Stats } from "../../src/stats/cgroup.js";
import { containerMetrics, metricDescriptors, sandboxMetrics } from "../../src/stats/metrics.js";
import { parseNetDev } from "../../src/stats/net.js";
import { toCriContainerStats, toCriMemory, toCriPodSandboxStats, toCriSwap } from "../../src/stats/stats-builder.js";
import type { StatsContainer, StatsSandbox } from "../../src/stats/types.js";

const TS = 1_700_000_000_000_000_000n;

const CONTAINER: StatsContainer = {
  id: "c1", sandboxId: "s1", metadata: { name: "app", attempt: 0 }, labels: { l: "1" }, annotations: { a: "2" },
  image: "busybox:latest", cgroupsPath: "/podshim/c1", snapshotKey: "c1", running: true,
};

const SANDBOX: StatsSandbox = {
  id: "s1", metadata: { name: "pod", uid: "u", namespace: "ns", attempt: 0 }, labels: {}, annotations: {},
  cgroupParent: "/kubepods/pod-u", cgroupsPath: "/kubepods/pod-u/s1", pid: 10, hostNetwork: false, ready: true,
};

const V1 = v1Stats({
  "cpuacct.usage": "2500000000\n",
  "cpuacct.usage_user": "2000000000\n",
  "cpuacct.usage_sys": "500000000\n",
  "memory.usage_in_bytes": "1000\n",
  "memory.limit_in_bytes": "4000\n",
  "memory.stat": "total_rss 600\ntotal_cache 400\ntotal_inactive_file 300\ntotal_pgfault 9\ntotal_pgmajfault 1\ntotal_swap 50\n",
  "pids.current": "3\n",
});

const NET = parseNetDev(`Inter-|
 face |
    lo:  1 1 0 0 0 0 0 0  1 1 0 0 0 0 0 0
  eth0: 100 5 1 2 0 0 0 0 200 6 3 4 0 0 0 0
  net1:  7 1 0 0 0 0 0 0  8 1 0 0 0 0 0 0
`);

describe("toCriContainerStats", () => {
  it("a running container: cpu, memory, swap and writable layer", () => {
    const s = toCriContainerStats(CONTAINER, { timestampNs: TS, cgroup: V1, cpuRate: 250_000_000n, layer: { bytes: 4096n, inodes: 3n, timestampNs: TS - 5n } }, "/var/lib/containerd/snap");
    expect(s).toEqual({
      attributes: { id: "c1", metadata: { name: "app", attempt: 0 }, labels: { l: "1" }, annotations: { a: "2" } },
      cpu: { timestamp: TS, usageCoreNanoSeconds: { value: 2500000000n }, usageNanoCores: { value: 250_000_000n }, psi: undefined },
      memory: {
        timestamp: TS, workingSetBytes: { value: 700n }, availableBytes: { value: 3300n }, usageBytes: { value: 1000n },
        rssBytes: { value: 600n }, pageFaults: { value: 9n }, majorPageFaults: { value: 1n }, psi: undefined,
      },
      writableLayer: { timestamp: TS - 5n, fsId: { mountpoint: "/var/lib/containerd/snap" }, usedBytes: { value: 4096n }, inodesUsed: { value: 3n } },
      swap: { timestamp: TS, swapUsageBytes: { value: 50n }, swapAvailableBytes: undefined },
      io: undefined,
    });
  });

  it("the first sample has no usage_nano_cores; an exited container only attributes", () => {
    const first = toCriContainerStats(CONTAINER, { timestampNs: TS, cgroup: V1 }, "");
    expect(first.cpu?.usageNanoCores).toBeUndefined();
    const exited = toCriContainerStats({ ...CONTAINER, running: false }, { timestampNs: TS }, "");
    expect(exited).toEqual({ attributes: first.attributes, cpu: undefined, memory: undefined, writableLayer: undefined, swap: undefined, io: undefined });
  });

  it("v2 pressure goes into cpu, memory and io, totals in nanoseconds", () => {
    const psi = "some avg10=1.50 avg60=0.00 avg300=0.00 total=7\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
    const s = toCriContainerStats(CONTAINER, { timestampNs: TS, cgroup: v2Stats({ "cpu.stat": "usage_usec 1\n", "cpu.pressure": psi, "io.pressure": psi }) }, "");
    expect(s.cpu?.psi).toEqual({ Some: { Total: 7000n, Avg10: 1.5, Avg60: 0, Avg300: 0 }, Full: { Total: 0n, Avg10: 0, Avg60: 0, Avg300: 0 } });
    expect(s.io?.psi?.Some?.Total).toBe(7000n);
  });
});

describe("memory and swap", () => {
  it("no available_bytes without a limit; never negative over one", () => {
    expect(toCriMemory({ usage: 10n, workingSet: 10n }, TS)?.availableBytes).toBeUndefined();
    expect(toCriMemory({ usage: 10n, workingSet: 10n, limit: 5n }, TS)?.availableBytes).toEqual({ value: 0n });
  });

  it("swap only where accounted; available under a swap limit", () => {
    expect(toCriSwap({ usage: 1n, workingSet: 1n }, TS)).toBeUndefined();
    expect(toCriSwap({ usage: 1n, workingSet: 1n, swap: 10n, swapLimit: 100n }, TS)).toEqual({ timestamp: TS, swapUsageBytes: { value: 10n }, swapAvailableBytes: { value: 90n } });
  });
});

describe("toCriPodSandboxStats", () => {
  it("pod cgroup, eth0 as the default interface, the rest besides loopback, process count", () => {
    const c = toCriContainerStats(CONTAINER, { timestampNs: TS, cgroup: V1 }, "");
    const s = toCriPodSandboxStats(SANDBOX, { timestampNs: TS, cgroup: V1, cpuRate: 1n, interfaces: NET }, [c]);
    expect(s.attributes).toEqual({ id: "s1", metadata: SANDBOX.metadata, labels: {}, annotations: {} });
    expect(s.linux?.cpu?.usageNanoCores).toEqual({ value: 1n });
    expect(s.linux?.memory?.workingSetBytes).toEqual({ value: 700n });
    expect(s.linux?.network).toEqual({
      timestamp: TS,
      defaultInterface: { name: "eth0", rxBytes: { value: 100n }, rxErrors: { value: 1n }, txBytes: { value: 200n }, txErrors: { value: 3n } },
      interfaces: [{ name: "net1", rxBytes: { value: 7n }, rxErrors: { value: 0n }, txBytes: { value: 8n }, txErrors: { value: 0n } }],
    });
    expect(s.linux?.process).toEqual({ timestamp: TS, processCount: { value: 3n } });
    expect(s.linux?.containers).toEqual([c]);
    expect(s.windows).toBeUndefined();
  });

  it("host network or a stopped pod: no network, no cgroup numbers", () => {
    const s = toCriPodSandboxStats(SANDBOX, { timestampNs: TS }, []);
    expect(s.linux).toEqual({ cpu: undefined, memory: undefined, network: undefined, process: undefined, containers: [], io: undefined });
  });
});

describe("metrics", () => {
  it("descriptors: cAdvisor names, unique, base labels first and no kubelet-added labels", () => {
    const d = metricDescriptors();
    const names = d.map((x) => x.name);
    expect(new Set(names).size).toBe(names.length);
    for (const want of [
      "container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "container_memory_usage_bytes", "container_memory_rss",
      "container_network_receive_bytes_total", "container_network_transmit_bytes_total",
      "container_network_receive_errors_total", "container_network_transmit_errors_total",
    ]) expect(names).toContain(want);
    for (const x of d) {
      expect(x.labelKeys.slice(0, 3)).toEqual(["id", "name", "image"]);
      expect(x.labelKeys).not.toContain("pod");
      expect(x.labelKeys).not.toContain("namespace");
      expect(x.labelKeys).not.toContain("container");
      expect(x.help).not.toBe("");
    }
    expect(d.find((x) => x.name === "container_network_receive_bytes_total")?.labelKeys).toEqual(["id", "name", "image", "interface"]);
  });

  it("every metric sent has a descriptor and as many label values as it has keys", () => {
    const keys = new Map(metricDescriptors().map((x) => [x.name, x.labelKeys.length]));
    const ms = [
      ...containerMetrics(["c1", "app", "busybox"], TS, V1, { bytes: 10n, inodes: 1n, timestampNs: TS }, "/snap"),
      ...sandboxMetrics(["s1", "pod", ""], TS, V1, NET),
    ];
    expect(ms.length).toBeGreaterThan(10);
    for (const m of ms) {
      expect(keys.get(m.name), m.name).toBe(m.labelValues.length);
      expect(m.timestamp).toBe(TS);
    }
  });

  it("values: whole seconds, counters and gauges, per-interface network without loopback", () => {
    const ms = [...containerMetrics(["c1", "app", "busybox"], TS, V1, { bytes: 10n, inodes: 1n, timestampNs: TS }, "/snap"), ...sandboxMetrics(["s1", "pod", ""], TS, undefined, NET)];
    const find = (name: string, ...extra: string[]) => ms.find((m) => m.name === name && extra.every((e) => m.labelValues.includes(e)));
    expect(find("container_cpu_usage_seconds_total")).toMatchObject({ metricType: MetricType.COUNTER, value: { value: 2n }, labelValues: ["c1", "app", "busybox"] });
    expect(find("container_memory_working_set_bytes")).toMatchObject({ metricType: MetricType.GAUGE, value: { value: 700n } });
    expect(find("container_spec_memory_limit_bytes")?.value).toEqual({ value: 4000n });
    expect(find("container_fs_usage_bytes")).toMatchObject({ value: { value: 10n }, labelValues: ["c1", "app", "busybox", "/snap"] });
    expect(find("container_memory_failures_total", "pgmajfault", "container")?.value).toEqual({ value: 1n });
    expect(find("container_network_receive_bytes_total", "eth0")).toMatchObject({ value: { value: 100n }, labelValues: ["s1", "pod", "", "eth0"] });
    expect(find("container_network_transmit_errors_total", "eth0")?.value).toEqual({ value: 3n });
    expect(find("container_network_receive_bytes_total", "lo")).toBeUndefined();
    expect(find("container_cpu_cfs_periods_total")).toBeUndefined();
  });
});
