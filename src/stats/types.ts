// What the stats code needs to know about podshim's containers and sandboxes, and what the
// stats RPC handlers need of the stats service. Narrow on purpose: stats read the indexes the
// container and sandbox services keep and never reach into them.
import type {
  ContainerMetadata,
  ContainerStats,
  ContainerStatsFilter,
  MetricDescriptor,
  PodSandboxMetadata,
  PodSandboxMetrics,
  PodSandboxStats,
  PodSandboxStatsFilter,
} from "../gen/cri/runtime/v1/api.js";

export interface StatsContainer {
  id: string;
  sandboxId: string;
  metadata: ContainerMetadata | undefined;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** The image as reported in ContainerStatus (a metric label). */
  image: string;
  /** The cgroupsPath of its OCI spec: "/parent/.../<id>" (cgroupfs) or "slice:prefix:id" (systemd). */
  cgroupsPath: string;
  /** Its rootfs snapshot's key (the writable layer). */
  snapshotKey: string;
  /** Its task runs: only then are its cgroup's CPU and memory read. */
  running: boolean;
}

export interface StatsSandbox {
  id: string;
  metadata: PodSandboxMetadata | undefined;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** The kubelet's cgroup parent (the pod cgroup, a path with either driver, or a bare
   * systemd slice name); "" when none was given: the pod's stats are then the sum of its
   * pause container's and containers' cgroups. */
  cgroupParent: string;
  /** The pause container's cgroupsPath, in the same form as a container's. */
  cgroupsPath: string;
  /** The pause process: its /proc/<pid>/net/dev shows the pod's network namespace. 0 when
   * it is not running. */
  pid: number;
  /** The pod shares the node's network namespace: no pod network stats then (they would be
   * the node's). */
  hostNetwork: boolean;
  ready: boolean;
}

/** The composition root implements this over the container and sandbox indexes. Both calls
 * are made once per stats RPC and must not wait on anything. */
export interface StatsSource {
  containers(): StatsContainer[];
  sandboxes(): StatsSandbox[];
}

/** What the stats RPC handlers call; StatsService implements it. */
export interface StatsApi {
  containerStats(id: string): Promise<ContainerStats>;
  listContainerStats(filter?: ContainerStatsFilter): Promise<ContainerStats[]>;
  podSandboxStats(id: string): Promise<PodSandboxStats>;
  listPodSandboxStats(filter?: PodSandboxStatsFilter): Promise<PodSandboxStats[]>;
  metricDescriptors(): MetricDescriptor[];
  podSandboxMetrics(): Promise<PodSandboxMetrics[]>;
}

/** The dependencies of the src/cri/stats-*.ts handlers. */
export interface StatsDeps {
  stats: StatsApi;
}
