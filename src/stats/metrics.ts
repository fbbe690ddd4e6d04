// ListMetricDescriptors / ListPodSandboxMetrics: cAdvisor-named metrics for the kubelet's
// /metrics/cadvisor when it takes pod and container stats from the runtime
// (PodAndContainerStatsFromCRI). Pure.
//
// Label keys: "id", "name", "image" first, then what a metric adds ("interface", "device",
// "failure_type" and "scope"). No "namespace", "pod" or "container": recent kubelets append
// those three themselves, and a descriptor that repeated them would be refused there.
//
// A CRI Metric carries a uint64, so second-valued counters are whole seconds (rounded down):
// the API has no way to send a fraction.
import { MetricType, type Metric, type MetricDescriptor } from "../gen/cri/runtime/v1/api.js";
import type { CgroupStats } from "./cgroup.js";
import type { LayerUsage } from "./layer-usage.js";
import type { InterfaceCounters } from "./net.js";

const BASE = ["id", "name", "image"] as const;

interface Def {
  name: string;
  help: string;
  type: MetricType;
  extra: readonly string[];
}

function def(name: string, help: string, type: MetricType, extra: readonly string[] = []): Def {
  return { name, help, type, extra };
}

const C = MetricType.COUNTER;
const G = MetricType.GAUGE;

export const METRICS = {
  cpuUsage: def("container_cpu_usage_seconds_total", "Cumulative CPU time consumed, in seconds.", C),
  cpuUser: def("container_cpu_user_seconds_total", "Cumulative CPU time consumed in user mode, in seconds.", C),
  cpuSystem: def("container_cpu_system_seconds_total", "Cumulative CPU time consumed in kernel mode, in seconds.", C),
  cfsPeriods: def("container_cpu_cfs_periods_total", "Number of CFS enforcement periods that have elapsed.", C),
  cfsThrottledPeriods: def("container_cpu_cfs_throttled_periods_total", "Number of CFS periods in which the cgroup was throttled.", C),
  cfsThrottledSeconds: def("container_cpu_cfs_throttled_seconds_total", "Total time the cgroup was throttled, in seconds.", C),
  memUsage: def("container_memory_usage_bytes", "Current memory usage in bytes, page cache included.", G),
  memWorkingSet: def("container_memory_working_set_bytes", "Current working set in bytes (usage minus inactive file cache).", G),
  memRss: def("container_memory_rss", "Anonymous memory (RSS) in bytes.", G),
  memCache: def("container_memory_cache", "Page cache memory in bytes.", G),
  memMappedFile: def("container_memory_mapped_file", "Memory-mapped file pages in bytes.", G),
  memSwap: def("container_memory_swap", "Swap usage in bytes.", G),
  memMaxUsage: def("container_memory_max_usage_bytes", "Highest memory usage recorded, in bytes.", G),
  memFailcnt: def("container_memory_failcnt", "Number of times memory usage hit the cgroup v1 limit.", C),
  memFailures: def("container_memory_failures_total", "Cumulative count of page faults by type.", C, ["failure_type", "scope"]),
  memLimit: def("container_spec_memory_limit_bytes", "Memory limit in bytes; 0 when unlimited.", G),
  threads: def("container_threads", "Number of tasks (threads) in the cgroup.", G),
  fsUsage: def("container_fs_usage_bytes", "Bytes used by the container's writable layer on this filesystem.", G, ["device"]),
  netRxBytes: def("container_network_receive_bytes_total", "Cumulative count of bytes received.", C, ["interface"]),
  netRxPackets: def("container_network_receive_packets_total", "Cumulative count of packets received.", C, ["interface"]),
  netRxDropped: def("container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", C, ["interface"]),
  netRxErrors: def("container_network_receive_errors_total", "Cumulative count of errors while receiving.", C, ["interface"]),
  netTxBytes: def("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", C, ["interface"]),
  netTxPackets: def("container_network_transmit_packets_total", "Cumulative count of packets transmitted.", C, ["interface"]),
  netTxDropped: def("container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", C, ["interface"]),
  netTxErrors: def("container_network_transmit_errors_total", "Cumulative count of errors while transmitting.", C, ["interface"]),
} as const satisfies Record<string, Def>;

/** Every metric podshim may send, for ListMetricDescriptors. */
export function metricDescriptors(): MetricDescriptor[] {
  return Object.values(METRICS).map((d) => ({ name: d.name, help: d.help, labelKeys: [...BASE, ...d.extra] }));
}

/** Values for the base label keys, in order. */
export type BaseLabels = readonly [id: string, name: string, image: string];

const NS_PER_S = 1_000_000_000n;

/** Collects metrics with one timestamp and one set of base labels. */
class MetricList {
  readonly out: Metric[] = [];
  constructor(private readonly base: BaseLabels, private readonly timestampNs: bigint) {}

  add(d: Def, value: bigint | undefined, extra: readonly string[] = []): void {
    if (value === undefined) return;
    this.out.push({ name: d.name, timestamp: this.timestampNs, metricType: d.type, labelValues: [...this.base, ...extra], value: { value: value < 0n ? 0n : value } });
  }
}

function seconds(ns: bigint | undefined): bigint | undefined {
  return ns === undefined ? undefined : ns / NS_PER_S;
}

function cgroupMetrics(m: MetricList, s: CgroupStats | undefined): void {
  if (s?.cpu) {
    const c = s.cpu;
    m.add(METRICS.cpuUsage, seconds(c.usageNs));
    m.add(METRICS.cpuUser, seconds(c.userNs));
    m.add(METRICS.cpuSystem, seconds(c.systemNs));
    m.add(METRICS.cfsPeriods, c.periods);
    m.add(METRICS.cfsThrottledPeriods, c.throttledPeriods);
    m.add(METRICS.cfsThrottledSeconds, seconds(c.throttledNs));
  }
  if (s?.memory) {
    const mem = s.memory;
    m.add(METRICS.memUsage, mem.usage);
    m.add(METRICS.memWorkingSet, mem.workingSet);
    m.add(METRICS.memRss, mem.rss);
    m.add(METRICS.memCache, mem.cache);
    m.add(METRICS.memMappedFile, mem.mappedFile);
    m.add(METRICS.memSwap, mem.swap);
    m.add(METRICS.memMaxUsage, mem.maxUsage);
    m.add(METRICS.memFailcnt, mem.failcnt);
    m.add(METRICS.memLimit, mem.limit ?? 0n);
    // podshim reads the hierarchical counters only; for a container's leaf cgroup they are
    // the container's own too, so both scopes cAdvisor reports carry the same number.
    for (const scope of ["container", "hierarchy"]) {
      m.add(METRICS.memFailures, mem.pgfault, ["pgfault", scope]);
      m.add(METRICS.memFailures, mem.pgmajfault, ["pgmajfault", scope]);
    }
  }
  m.add(METRICS.threads, s?.pids);
}

export function containerMetrics(base: BaseLabels, timestampNs: bigint, cgroup: CgroupStats | undefined, layer: LayerUsage | undefined, fsMountpoint: string): Metric[] {
  const m = new MetricList(base, timestampNs);
  cgroupMetrics(m, cgroup);
  if (layer) m.add(METRICS.fsUsage, layer.bytes, [fsMountpoint]);
  return m.out;
}

/** The pod cgroup's metrics and, per interface but loopback, its network counters. */
export function sandboxMetrics(base: BaseLabels, timestampNs: bigint, cgroup: CgroupStats | undefined, interfaces: readonly InterfaceCounters[] | undefined): Metric[] {
  const m = new MetricList(base, timestampNs);
  cgroupMetrics(m, cgroup);
  for (const i of interfaces ?? []) {
    if (i.name === "lo") continue;
    m.add(METRICS.netRxBytes, i.rxBytes, [i.name]);
    m.add(METRICS.netRxPackets, i.rxPackets, [i.name]);
    m.add(METRICS.netRxDropped, i.rxDropped, [i.name]);
    m.add(METRICS.netRxErrors, i.rxErrors, [i.name]);
    m.add(METRICS.netTxBytes, i.txBytes, [i.name]);
    m.add(METRICS.netTxPackets, i.txPackets, [i.name]);
    m.add(METRICS.netTxDropped, i.txDropped, [i.name]);
    m.add(METRICS.netTxErrors, i.txErrors, [i.name]);
  }
  return m.out;
}
