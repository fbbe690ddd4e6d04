// The stats of containers and pods for the CRI stats RPCs: cgroup files and /proc/<pid>/net/dev
// read on each call (a few small reads per container, all in parallel), writable layer usage
// from a cache containerd refreshes in the background. Nothing on the request path waits on
// containerd, except ContainerStats of one container whose layer was never measured.
import type {
  ContainerStats,
  ContainerStatsFilter,
  MetricDescriptor,
  PodSandboxMetrics,
  PodSandboxStats,
  PodSandboxStatsFilter,
} from "../gen/cri/runtime/v1/api.js";
import { NotFoundError, messageOf } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import { withTimeout } from "../util/timeout.js";
import { cgroupFiles, detectCgroupLayout, readCgroup, resolveCgroupPath, sumCgroupStats, type CgroupLayout, type CgroupQuery, type CgroupStats } from "./cgroup.js";
import { CpuRateTracker, type CpuRateOptions } from "./cpu-rate.js";
import { findById, matchContainer, matchSandbox } from "./filters.js";
import { LayerUsageCache, type LayerUsage, type SnapshotUsageSource } from "./layer-usage.js";
import { containerMetrics, metricDescriptors, sandboxMetrics } from "./metrics.js";
import { readNetDev, type InterfaceCounters } from "./net.js";
import { CachedPseudoFileReader, keptFilesBudget, parseOpenFilesLimit, readPseudoFile } from "./read.js";
import { toCriContainerStats, toCriPodSandboxStats, type ContainerSample, type SandboxSample } from "./stats-builder.js";
import type { StatsApi, StatsContainer, StatsSandbox, StatsSource } from "./types.js";
import { nowUnixNanos } from "../util/clock.js";

export interface StatsServiceOptions {
  source: StatsSource;
  /** containerd's snapshots service (src/containerd/snapshots.ts). */
  snapshots: SnapshotUsageSource;
  logger: Logger;
  /** The snapshotter's root directory, reported as the writable layer's filesystem (the
   * kubelet looks its capacity up there). A function is called once, at start. */
  fsMountpoint?: string | (() => Promise<string>);
  /** How often writable layer usage is re-measured; containerd's CRI plugin uses 10 s. */
  layerRefreshMs?: number;
  /** How long ContainerStats waits for a layer never measured before answering without it. */
  layerWaitMs?: number;
  /** Given for tests; null means a host without cgroups. Detected from mountinfo otherwise. */
  cgroupLayout?: CgroupLayout | null;
  /** Given for tests. */
  procRoot?: string;
  cpuRate?: CpuRateOptions;
}

function wallNs(): bigint {
  return nowUnixNanos();
}

/** The rate tracker's key of a pod (container ids and sandbox ids share one id space). */
function podKey(id: string): string {
  return `pod/${id}`;
}

interface CgroupRead {
  cgroup: CgroupStats | undefined;
  timestampNs: bigint;
  monoNs: bigint;
}

export class StatsService implements StatsApi {
  private readonly layers: LayerUsageCache;
  private readonly rates: CpuRateTracker;
  private readonly files = new CachedPseudoFileReader();
  private layout: Promise<CgroupLayout | undefined> | undefined;
  private mountpoint = "";
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: StatsServiceOptions) {
    this.layers = new LayerUsageCache({ snapshots: opts.snapshots, logger: opts.logger });
    this.rates = new CpuRateTracker(opts.cpuRate);
    if (typeof opts.fsMountpoint === "string") this.mountpoint = opts.fsMountpoint;
    if (opts.cgroupLayout !== undefined) this.layout = Promise.resolve(opts.cgroupLayout ?? undefined);
  }

  /** Starts the background layer refresh (first round at once) and resolves the mountpoint. */
  start(): void {
    if (this.timer) return;
    const period = this.opts.layerRefreshMs ?? 10_000;
    this.timer = setInterval(() => {
      this.files.closeIdle();
      void this.refreshLayers();
    }, period);
    this.timer.unref();
    void this.refreshLayers();
    const mp = this.opts.fsMountpoint;
    if (typeof mp === "function") {
      mp().then(
        (dir) => { this.mountpoint = dir; },
        (err: unknown) => this.opts.logger.warn({ err: messageOf(err) }, "stats: snapshotter root unknown; writable layers report no mountpoint"),
      );
    }
  }

  /** Stops the refresh and closes the cgroup files kept open. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.files.closeAll();
  }

  /** One round of writable layer measurements for every known container. */
  async refreshLayers(): Promise<void> {
    const keys = this.opts.source.containers().map((c) => c.snapshotKey).filter((k) => k !== "");
    try {
      await this.layers.refresh(keys);
    } catch (err) {
      this.opts.logger.debug({ err: messageOf(err) }, "stats: writable layer refresh failed");
    }
  }

  // -------------------------------------------------------------------------------------
  // CRI stats

  /** Unknown (or an ambiguous prefix) is NOT_FOUND. */
  async containerStats(id: string): Promise<ContainerStats> {
    const c = findById(this.opts.source.containers(), id);
    if (!c) throw new NotFoundError(`container "${id}" not found`);
    let layer = this.layers.peek(c.snapshotKey);
    if (!layer && c.snapshotKey) {
      // One container: a single round trip is fine, and crictl stats right after create
      // then shows the layer instead of nothing.
      layer = await withTimeout("writable layer usage", this.opts.layerWaitMs ?? 2000, this.layers.measure(c.snapshotKey)).catch(() => undefined);
    }
    const sample = await this.sampleContainer(c, {}, layer);
    return toCriContainerStats(c, sample, this.mountpoint);
  }

  async listContainerStats(filter?: ContainerStatsFilter): Promise<ContainerStats[]> {
    const containers = this.opts.source.containers().filter((c) => matchContainer(c, filter));
    const samples = await Promise.all(containers.map((c) => this.sampleContainer(c, {}, this.layerOf(c))));
    return containers.map((c, i) => toCriContainerStats(c, samples[i]!, this.mountpoint));
  }

  async podSandboxStats(id: string): Promise<PodSandboxStats> {
    const sb = findById(this.opts.source.sandboxes(), id);
    if (!sb) throw new NotFoundError(`pod sandbox "${id}" not found`);
    const containers = this.opts.source.containers().filter((c) => c.sandboxId === sb.id);
    return this.sandboxStats(sb, containers);
  }

  async listPodSandboxStats(filter?: PodSandboxStatsFilter): Promise<PodSandboxStats[]> {
    const sandboxes = this.opts.source.sandboxes().filter((s) => matchSandbox(s, filter));
    const bySandbox = this.containersBySandbox();
    return Promise.all(sandboxes.map((sb) => this.sandboxStats(sb, bySandbox.get(sb.id) ?? [])));
  }

  // -------------------------------------------------------------------------------------
  // Metrics

  metricDescriptors(): MetricDescriptor[] {
    return metricDescriptors();
  }

  async podSandboxMetrics(): Promise<PodSandboxMetrics[]> {
    const bySandbox = this.containersBySandbox();
    const query: CgroupQuery = { detail: true, pids: true };
    return Promise.all(this.opts.source.sandboxes().map(async (sb) => {
      const containers = bySandbox.get(sb.id) ?? [];
      const readsP = Promise.all(containers.map((c) => this.readContainerCgroup(c, query)));
      const [reads, pod] = await Promise.all([readsP, this.readSandbox(sb, query, readsP)]);
      return {
        podSandboxId: sb.id,
        metrics: sandboxMetrics([sb.id, sb.metadata?.name ?? "", ""], pod.timestampNs, pod.cgroup, pod.interfaces),
        containerMetrics: containers.map((c, i) => ({
          containerId: c.id,
          metrics: containerMetrics([c.id, c.metadata?.name ?? "", c.image], reads[i]!.timestampNs, reads[i]!.cgroup, this.layerOf(c), this.mountpoint),
        })),
      };
    }));
  }

  // -------------------------------------------------------------------------------------
  // Sampling

  /** The cgroup layout, detected on first use unless given; the budget of kept files is set
   * then too, from this process's limit on open files. */
  private layoutNow(): Promise<CgroupLayout | undefined> {
    this.layout ??= (async () => {
      const limits = await readPseudoFile("/proc/self/limits");
      this.files.setMaxOpen(keptFilesBudget(limits === undefined ? 1024 : parseOpenFilesLimit(limits)));
      return detectCgroupLayout();
    })().catch((err: unknown) => {
      this.opts.logger.warn({ err: messageOf(err) }, "stats: cgroup layout not detected; no CPU or memory stats");
      return undefined;
    });
    return this.layout;
  }

  /** The cached writable layer usage; a miss queues a measurement and is absent this time. */
  private layerOf(c: StatsContainer): LayerUsage | undefined {
    return c.snapshotKey === "" ? undefined : this.layers.get(c.snapshotKey);
  }

  private containersBySandbox(): Map<string, StatsContainer[]> {
    const out = new Map<string, StatsContainer[]>();
    for (const c of this.opts.source.containers()) {
      const list = out.get(c.sandboxId);
      if (list) list.push(c);
      else out.set(c.sandboxId, [c]);
    }
    return out;
  }

  private async readCgroupAt(spec: string, query: CgroupQuery): Promise<CgroupRead> {
    const layout = await this.layoutNow();
    const path = resolveCgroupPath(spec);
    const cgroup = layout && path !== undefined ? await readCgroup(layout, path, query, this.files.read) : undefined;
    return { cgroup, timestampNs: wallNs(), monoNs: process.hrtime.bigint() };
  }

  /**
   * A container that is not running has no cgroup worth reading (none yet, or gone); files
   * kept open from when it ran are closed, so they do not pin its removed cgroup.
   */
  private readContainerCgroup(c: StatsContainer, query: CgroupQuery): Promise<CgroupRead> {
    if (!c.running) {
      void this.forgetCgroup(c.cgroupsPath);
      return Promise.resolve({ cgroup: undefined, timestampNs: wallNs(), monoNs: process.hrtime.bigint() });
    }
    return this.readCgroupAt(c.cgroupsPath, query);
  }

  private async forgetCgroup(spec: string): Promise<void> {
    const layout = await this.layoutNow();
    const path = resolveCgroupPath(spec);
    if (layout && path !== undefined) this.files.forget(Object.values(cgroupFiles(layout, path, { detail: true, pids: true })));
  }

  private async sampleContainer(c: StatsContainer, query: CgroupQuery, layer: LayerUsage | undefined): Promise<ContainerSample> {
    const r = await this.readContainerCgroup(c, query);
    return this.toContainerSample(c, r, layer);
  }

  private toContainerSample(c: StatsContainer, r: CgroupRead, layer: LayerUsage | undefined): ContainerSample {
    const cpu = r.cgroup?.cpu;
    const cpuRate = cpu ? this.rates.rate(c.id, cpu.usageNs, r.monoNs) : undefined;
    return { timestampNs: r.timestampNs, cgroup: r.cgroup, cpuRate, layer };
  }

  /**
   * The pod's own numbers: the pod cgroup (the kubelet's cgroup parent) when there is one;
   * without one (crictl, critest) the sum of the pause container's and the running containers'
   * cgroups (the containers' reads are the caller's, shared with their own stats). Network from
   * the pause process, unless the pod is on the host network or not ready.
   */
  private async readSandbox(sb: StatsSandbox, query: CgroupQuery, containerReads: Promise<CgroupRead[]>): Promise<SandboxSample> {
    const wantNet = sb.ready && !sb.hostNetwork && sb.pid > 0;
    const netP: Promise<InterfaceCounters[] | undefined> = wantNet ? readNetDev(sb.pid, this.opts.procRoot) : Promise.resolve(undefined);
    let read: CgroupRead;
    if (sb.cgroupParent !== "") {
      read = await this.readCgroupAt(sb.cgroupParent, query);
    } else {
      const [pause, reads] = await Promise.all([sb.ready ? this.readCgroupAt(sb.cgroupsPath, query) : undefined, containerReads]);
      const parts = [pause, ...reads].flatMap((r) => (r?.cgroup ? [r.cgroup] : []));
      read = { cgroup: sumCgroupStats(parts), timestampNs: wallNs(), monoNs: process.hrtime.bigint() };
    }
    const interfaces = await netP;
    const cpu = read.cgroup?.cpu;
    const cpuRate = cpu ? this.rates.rate(podKey(sb.id), cpu.usageNs, read.monoNs) : undefined;
    return { timestampNs: read.timestampNs, cgroup: read.cgroup, cpuRate, interfaces };
  }

  private async sandboxStats(sb: StatsSandbox, containers: StatsContainer[]): Promise<PodSandboxStats> {
    // Without a pod cgroup the pod's task count is the sum of its cgroups', so read them too.
    const query: CgroupQuery = { pids: sb.cgroupParent === "" };
    const readsP = Promise.all(containers.map((c) => this.readContainerCgroup(c, query)));
    const [reads, pod] = await Promise.all([readsP, this.readSandbox(sb, { pids: true }, readsP)]);
    const stats = containers.map((c, i) => toCriContainerStats(c, this.toContainerSample(c, reads[i]!, this.layerOf(c)), this.mountpoint));
    return toCriPodSandboxStats(sb, pod, stats);
  }
}
