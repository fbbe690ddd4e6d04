// usage_nano_cores: the CPU a container (or pod) used lately, in billionths of a core, from
// two samples of its cumulative usage. The CRI leaves it to the runtime to keep the previous
// sample, as containerd's CRI plugin and cAdvisor do.

interface Entry {
  /** The sample rates are measured from. */
  baseUsageNs: bigint;
  baseAtNs: bigint;
  /** The rate last computed, handed out again until the window is long enough for a new one. */
  rate: bigint | undefined;
  lastSeenNs: bigint;
}

export interface CpuRateOptions {
  /** A rate needs samples at least this far apart; closer calls get the last rate again. */
  minIntervalNs?: bigint;
  /** A key not sampled for this long is forgotten (a removed container). */
  evictAfterNs?: bigint;
}

const SECOND = 1_000_000_000n;

/**
 * Rates per key (container id, or "pod/<id>"). Unlike containerd, which divides by whatever
 * time passed since the previous call, a new window starts only once the last one is at least
 * `minIntervalNs` long: the kubelet, metrics-server and crictl polling within milliseconds
 * of each other would otherwise get rates over a few ms of scheduler noise.
 *
 * The first sample of a key yields no rate (undefined: leave usage_nano_cores out). The
 * kubelet computes one itself when the field is absent, whereas a 0 would be taken as idle.
 */
export class CpuRateTracker {
  private readonly entries = new Map<string, Entry>();
  private readonly minIntervalNs: bigint;
  private readonly evictAfterNs: bigint;
  private lastSweepNs = 0n;

  constructor(opts: CpuRateOptions = {}) {
    this.minIntervalNs = opts.minIntervalNs ?? SECOND;
    this.evictAfterNs = opts.evictAfterNs ?? 300n * SECOND;
  }

  /**
   * Records a sample and returns the rate in nano-cores. `atNs` must come from a monotonic
   * clock (process.hrtime.bigint()): wall-clock steps would make rates jump.
   */
  rate(key: string, usageNs: bigint, atNs: bigint): bigint | undefined {
    this.maybeSweep(atNs);
    const e = this.entries.get(key);
    if (!e || usageNs < e.baseUsageNs || atNs < e.baseAtNs) {
      // New key, or a counter that went back (the cgroup was recreated under the same
      // name): start over.
      this.entries.set(key, { baseUsageNs: usageNs, baseAtNs: atNs, rate: undefined, lastSeenNs: atNs });
      return undefined;
    }
    e.lastSeenNs = atNs;
    const elapsed = atNs - e.baseAtNs;
    if (elapsed < this.minIntervalNs) return e.rate;
    e.rate = ((usageNs - e.baseUsageNs) * SECOND) / elapsed;
    e.baseUsageNs = usageNs;
    e.baseAtNs = atNs;
    return e.rate;
  }

  forget(key: string): void {
    this.entries.delete(key);
  }

  /** Drops keys not sampled within the eviction window. */
  sweep(nowNs: bigint): void {
    this.lastSweepNs = nowNs;
    for (const [k, e] of this.entries) if (nowNs - e.lastSeenNs > this.evictAfterNs) this.entries.delete(k);
  }

  get size(): number {
    return this.entries.size;
  }

  private maybeSweep(nowNs: bigint): void {
    if (nowNs - this.lastSweepNs > this.evictAfterNs / 2n) this.sweep(nowNs);
  }
}
