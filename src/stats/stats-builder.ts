// Samples to CRI stats messages. Pure: the service reads, this shapes.
//
// A field podshim could not measure is left out (an absent UInt64Value), never sent as 0:
// the kubelet reads an absent value as "unknown" and a 0 as a measurement (an idle container,
// an empty memory cgroup).
import type {
  ContainerAttributes,
  ContainerStats,
  CpuUsage,
  FilesystemUsage,
  IoUsage,
  MemoryUsage,
  NetworkInterfaceUsage,
  NetworkUsage,
  PodSandboxAttributes,
  PodSandboxStats,
  ProcessUsage,
  PsiData,
  PsiStats,
  SwapUsage,
  UInt64Value,
} from "../gen/cri/runtime/v1/api.js";
import type { CgroupStats, CpuStats, MemoryStats, Psi, PsiLine } from "./cgroup.js";
import type { LayerUsage } from "./layer-usage.js";
import { splitInterfaces, type InterfaceCounters } from "./net.js";
import type { StatsContainer, StatsSandbox } from "./types.js";

/** One container's measurements at one moment. */
export interface ContainerSample {
  /** ns since the epoch. */
  timestampNs: bigint;
  /** Undefined: not running, or its cgroup was gone. */
  cgroup?: CgroupStats;
  /** usage_nano_cores; undefined on a key's first sample. */
  cpuRate?: bigint;
  layer?: LayerUsage;
}

/** One pod's measurements at one moment (its containers come separately). */
export interface SandboxSample {
  timestampNs: bigint;
  cgroup?: CgroupStats;
  cpuRate?: bigint;
  /** Undefined for host-network pods or when the pause process is gone. */
  interfaces?: InterfaceCounters[];
}

function u64(v: bigint | undefined): UInt64Value | undefined {
  return v === undefined ? undefined : { value: v < 0n ? 0n : v };
}

// The kernel counts stall time in microseconds; the CRI's PsiData.Total is in nanoseconds, as
// the kubelet's summary API documents it.
function psiData(line: PsiLine | undefined): PsiData | undefined {
  return line && { Total: line.total * 1000n, Avg10: line.avg10, Avg60: line.avg60, Avg300: line.avg300 };
}

export function toCriPsi(psi: Psi | undefined): PsiStats | undefined {
  return psi && { Full: psiData(psi.full), Some: psiData(psi.some) };
}

export function containerAttributes(c: StatsContainer): ContainerAttributes {
  return { id: c.id, metadata: c.metadata, labels: c.labels, annotations: c.annotations };
}

export function sandboxAttributes(s: StatsSandbox): PodSandboxAttributes {
  return { id: s.id, metadata: s.metadata, labels: s.labels, annotations: s.annotations };
}

export function toCriCpu(cpu: CpuStats | undefined, rate: bigint | undefined, timestampNs: bigint): CpuUsage | undefined {
  if (!cpu) return undefined;
  return { timestamp: timestampNs, usageCoreNanoSeconds: u64(cpu.usageNs), usageNanoCores: u64(rate), psi: toCriPsi(cpu.psi) };
}

/** available_bytes only under a limit: limit - working set, as cAdvisor and the kubelet define it. */
export function toCriMemory(mem: MemoryStats | undefined, timestampNs: bigint): MemoryUsage | undefined {
  if (!mem) return undefined;
  return {
    timestamp: timestampNs,
    workingSetBytes: u64(mem.workingSet),
    availableBytes: mem.limit === undefined ? undefined : u64(mem.limit > mem.workingSet ? mem.limit - mem.workingSet : 0n),
    usageBytes: u64(mem.usage),
    rssBytes: u64(mem.rss),
    pageFaults: u64(mem.pgfault),
    majorPageFaults: u64(mem.pgmajfault),
    psi: toCriPsi(mem.psi),
  };
}

/** Only where swap is accounted (v2, or v1 with swap accounting on). */
export function toCriSwap(mem: MemoryStats | undefined, timestampNs: bigint): SwapUsage | undefined {
  if (mem?.swap === undefined) return undefined;
  const avail = mem.swapLimit === undefined ? undefined : mem.swapLimit > mem.swap ? mem.swapLimit - mem.swap : 0n;
  return { timestamp: timestampNs, swapUsageBytes: u64(mem.swap), swapAvailableBytes: u64(avail) };
}

export function toCriIo(cgroup: CgroupStats | undefined, timestampNs: bigint): IoUsage | undefined {
  return cgroup?.ioPsi && { timestamp: timestampNs, psi: toCriPsi(cgroup.ioPsi) };
}

/** The writable layer as measured, stamped with when it was (the cache may be seconds old). */
export function toCriWritableLayer(layer: LayerUsage | undefined, mountpoint: string): FilesystemUsage | undefined {
  if (!layer) return undefined;
  return { timestamp: layer.timestampNs, fsId: { mountpoint }, usedBytes: u64(layer.bytes), inodesUsed: u64(layer.inodes) };
}

/**
 * A container's stats. Without a cgroup sample (not running, or it just exited) only the
 * attributes and the writable layer remain, as with containerd.
 */
export function toCriContainerStats(c: StatsContainer, s: ContainerSample, fsMountpoint: string): ContainerStats {
  return {
    attributes: containerAttributes(c),
    cpu: toCriCpu(s.cgroup?.cpu, s.cpuRate, s.timestampNs),
    memory: toCriMemory(s.cgroup?.memory, s.timestampNs),
    writableLayer: toCriWritableLayer(s.layer, fsMountpoint),
    swap: toCriSwap(s.cgroup?.memory, s.timestampNs),
    io: toCriIo(s.cgroup, s.timestampNs),
  };
}

function toCriInterface(i: InterfaceCounters): NetworkInterfaceUsage {
  return { name: i.name, rxBytes: u64(i.rxBytes), rxErrors: u64(i.rxErrors), txBytes: u64(i.txBytes), txErrors: u64(i.txErrors) };
}

export function toCriNetwork(interfaces: readonly InterfaceCounters[] | undefined, timestampNs: bigint): NetworkUsage | undefined {
  if (!interfaces) return undefined;
  const split = splitInterfaces(interfaces);
  return {
    timestamp: timestampNs,
    defaultInterface: split.default && toCriInterface(split.default),
    interfaces: split.others.map(toCriInterface),
  };
}

export function toCriProcess(pids: bigint | undefined, timestampNs: bigint): ProcessUsage | undefined {
  return pids === undefined ? undefined : { timestamp: timestampNs, processCount: u64(pids) };
}

export function toCriPodSandboxStats(sb: StatsSandbox, s: SandboxSample, containers: ContainerStats[]): PodSandboxStats {
  return {
    attributes: sandboxAttributes(sb),
    linux: {
      cpu: toCriCpu(s.cgroup?.cpu, s.cpuRate, s.timestampNs),
      memory: toCriMemory(s.cgroup?.memory, s.timestampNs),
      network: toCriNetwork(s.interfaces, s.timestampNs),
      process: toCriProcess(s.cgroup?.pids, s.timestampNs),
      containers,
      io: toCriIo(s.cgroup, s.timestampNs),
    },
    windows: undefined,
  };
}
