// Writable layer usage (bytes and inodes of each container's active snapshot), measured by
// containerd's Snapshots.Usage and cached.
//
// Why containerd and not a walk of the overlay upperdir from here: the snapshotter owns its
// directory layout (overlayfs today, maybe another snapshotter tomorrow), and the walk costs
// the same wherever it runs. Why cached: for an active snapshot the overlayfs snapshotter
// walks the whole upperdir on every call, so asking per container per ListContainerStats
// would make stats cost a round trip and a tree walk per container. containerd's CRI plugin
// does the same: a background syncer every 10 s, stats served from the cache.
import type { Logger } from "../logger/logger.js";
import { isNotFound, messageOf } from "../errors/errors.js";
import { nowUnixNanos } from "../util/clock.js";

/** What the cache needs of containerd's snapshots service (src/containerd/snapshots.ts fits). */
export interface SnapshotUsageSource {
  usage(key: string, opts?: { timeoutMs?: number; signal?: AbortSignal }): Promise<{ size: bigint; inodes: bigint }>;
}

export interface LayerUsage {
  bytes: bigint;
  inodes: bigint;
  /** When it was measured, ns since the epoch. */
  timestampNs: bigint;
}

export interface LayerUsageOptions {
  snapshots: SnapshotUsageSource;
  logger?: Logger;
  /** Usage calls in flight at once: each walks a directory tree in containerd. */
  concurrency?: number;
  callTimeoutMs?: number;
  nowNs?: () => bigint;
}

function wallNs(): bigint {
  return nowUnixNanos();
}

/**
 * Usage by snapshot key. `get` never waits: a key not measured yet is queued for a
 * measurement and reported absent meanwhile. `refresh` re-measures a set of keys (the
 * service calls it on a timer) and forgets the rest.
 */
export class LayerUsageCache {
  private readonly values = new Map<string, LayerUsage>();
  private readonly inFlight = new Map<string, Promise<LayerUsage | undefined>>();
  private readonly waiting: (() => void)[] = [];
  private running = 0;
  private refreshing: Promise<void> | undefined;
  private readonly concurrency: number;
  private readonly callTimeoutMs: number;
  private readonly nowNs: () => bigint;

  constructor(private readonly opts: LayerUsageOptions) {
    this.concurrency = Math.max(1, opts.concurrency ?? 4);
    this.callTimeoutMs = opts.callTimeoutMs ?? 10_000;
    this.nowNs = opts.nowNs ?? wallNs;
  }

  /** The cached usage; on a miss, a measurement is queued and undefined returned. */
  get(key: string): LayerUsage | undefined {
    const v = this.values.get(key);
    if (!v) void this.measure(key);
    return v;
  }

  /** Only the cache, nothing queued. */
  peek(key: string): LayerUsage | undefined {
    return this.values.get(key);
  }

  /**
   * Measures one key now (joining a measurement already under way). Resolves undefined when
   * the snapshot is gone or containerd failed; a failure keeps the previous value.
   */
  measure(key: string): Promise<LayerUsage | undefined> {
    const running = this.inFlight.get(key);
    if (running) return running;
    const p = this.limited(async () => {
      try {
        const u = await this.opts.snapshots.usage(key, { timeoutMs: this.callTimeoutMs });
        const v = { bytes: u.size, inodes: u.inodes, timestampNs: this.nowNs() };
        this.values.set(key, v);
        return v;
      } catch (err) {
        if (isNotFound(err)) {
          this.values.delete(key);
          return undefined;
        }
        this.opts.logger?.debug({ snapshot: key, err: messageOf(err) }, "writable layer usage not measured");
        return this.values.get(key);
      }
    }).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }

  /**
   * Re-measures every key given and forgets every other one. A refresh still under way when
   * the next is asked for is joined, not doubled: with many big layers a round can outlast
   * the timer period.
   */
  refresh(keys: Iterable<string>): Promise<void> {
    if (this.refreshing) return this.refreshing;
    const wanted = new Set(keys);
    for (const k of this.values.keys()) if (!wanted.has(k)) this.values.delete(k);
    this.refreshing = Promise.all([...wanted].map((k) => this.measure(k)))
      .then(() => undefined)
      .finally(() => { this.refreshing = undefined; });
    return this.refreshing;
  }

  forget(key: string): void {
    this.values.delete(key);
  }

  get size(): number {
    return this.values.size;
  }

  private async limited<T>(work: () => Promise<T>): Promise<T> {
    // A finishing call hands its slot straight to the next waiter, so a newcomer arriving in
    // between cannot take it as well.
    if (this.running >= this.concurrency) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
