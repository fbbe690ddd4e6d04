import type { ImageAdapters } from "./image-adapters.js";
import { CanceledError, messageOf } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import type { RegistryCredentials } from "../registry/auth.js";
import { ImageStore, repoTagsAndDigests, type ImageEntry } from "./image-store.js";
import { documentMediaType, isIndex, parseConfig, parseIndex, parseManifest, selectManifest } from "../distribution/manifest.js";
import type { PulledImage } from "./pull.js";
import { parseImageRef, refName, refString, type ImageRef } from "../distribution/reference.js";
import { hostPlatform, type Descriptor } from "../distribution/descriptor.js";
import { chainIds } from "./unpack.js";
import type { BuiltinImage } from "./builtin-pause.js";
import { nowUnixNanos } from "../util/clock.js";
import { allSettledOrThrow } from "../util/settle.js";

// Labels on podshim's image records. The pinned label marks images the kubelet's image
// garbage collector must keep (the pause image).
export const ImageLabel = {
  managed: "io.podshim.image",
  pinned: "io.podshim.pinned",
} as const;

export interface ImageServiceOptions {
  adapters: ImageAdapters;
  logger: Logger;
  pauseImage: string;
  /** podshim's own pause image, for nodes that cannot pull the configured one. */
  builtinPause?: () => Promise<BuiltinImage | undefined>;
}

export interface ImageFsUsage {
  mountpoint: string;
  usedBytes: bigint;
  inodesUsed: bigint;
  timestamp: bigint;
}

/**
 * Images as the CRI sees them, kept in containerd's image records (the truth) and an
 * in-memory index (a cache, rebuilt at start). Concurrent pulls of one reference share one
 * download.
 */
export class ImageService {
  readonly store = new ImageStore();
  private readonly records: ImageAdapters["records"];
  private readonly a: ImageAdapters;
  private readonly pulls = new Map<string, Promise<ImageEntry>>();
  private readonly pauseRef: ImageRef;

  constructor(private readonly opts: ImageServiceOptions) {
    this.a = opts.adapters;
    this.records = opts.adapters.records;
    this.pauseRef = parseImageRef(opts.pauseImage);
  }

  /** Rebuilds the index from containerd's records; a record whose content is broken is skipped. */
  async load(): Promise<void> {
    const byTarget = new Map<string, { target: Descriptor; names: string[]; pinned: boolean }>();
    for (const rec of await this.records.list()) {
      const group = byTarget.get(rec.target.digest) ?? { target: rec.target, names: [], pinned: false };
      group.names.push(rec.name);
      group.pinned ||= rec.labels[ImageLabel.pinned] === "pinned";
      byTarget.set(rec.target.digest, group);
    }
    for (const group of byTarget.values()) {
      try {
        const entry = await this.describe(group.target, group.names, group.pinned);
        this.store.put(entry);
      } catch (err) {
        this.opts.logger.warn({ target: group.target.digest, names: group.names, err: messageOf(err) }, "skipping an image whose content cannot be read");
      }
    }
    this.opts.logger.info({ images: this.store.all().length }, "image index loaded");
  }

  /** Reads an image's manifest and config back from the content store. */
  private async describe(target: Descriptor, names: string[], pinned: boolean): Promise<ImageEntry> {
    let manifestDesc = target;
    let bytes = await this.a.content.read(target.digest);
    if (isIndex(documentMediaType(bytes, target.mediaType))) {
      manifestDesc = selectManifest(parseIndex(bytes), hostPlatform(), `image ${names[0]}`);
      bytes = await this.a.content.read(manifestDesc.digest);
    }
    const manifest = parseManifest(bytes);
    const config = parseConfig(await this.a.content.read(manifest.config.digest), manifest.layers.length);
    const chain = chainIds(config.rootfs.diff_ids);
    return {
      id: manifest.config.digest,
      target,
      manifest: manifestDesc,
      layers: manifest.layers,
      config,
      chainId: chain[chain.length - 1] ?? "",
      size: manifestDesc.size + manifest.config.size + manifest.layers.reduce((n, l) => n + l.size, 0),
      names: new Set(names),
      pinned,
    };
  }

  /**
   * Pulls `input` (any normalisable reference). A second pull of the same reference while
   * one runs waits for it instead of downloading again.
   */
  async pull(input: string, creds?: RegistryCredentials, signal?: AbortSignal): Promise<ImageEntry> {
    const ref = parseImageRef(input);
    const key = `${refString(ref)}\u0000${creds ? JSON.stringify(creds) : ""}`;
    let running = this.pulls.get(key);
    if (!running) {
      // The shared pull is not tied to the first caller's cancellation: others may wait on it.
      running = this.a.puller.pull(ref, creds, (img) => this.register(img)).finally(() => this.pulls.delete(key));
      this.pulls.set(key, running);
    }
    if (!signal) return running;
    return Promise.race([running, aborted(signal)]);
  }

  /** The record names of a pulled image: the reference as given, repo@digest, and the ID. */
  private async register(img: PulledImage): Promise<ImageEntry> {
    const repo = refName(img.ref);
    const names = new Set<string>([`${repo}@${img.target.digest}`, img.configDescriptor.digest]);
    if (img.ref.tag) names.add(`${repo}:${img.ref.tag}`);
    const pinned = this.isPauseRef(img.ref);
    const labels: Record<string, string> = { [ImageLabel.managed]: "managed", ...(pinned ? { [ImageLabel.pinned]: "pinned" } : {}) };
    // Independent records: one round trip's wait for all three, not three in a row. All
    // settle before a failure is thrown, so none lands after the pull's lease is gone.
    await allSettledOrThrow([...names].map((name) => this.records.put({ name, target: img.target, labels })));
    return this.store.put({
      id: img.configDescriptor.digest,
      target: img.target,
      manifest: img.manifest,
      layers: img.layers,
      config: img.config,
      chainId: img.chainId,
      size: img.size,
      names,
      pinned,
    });
  }

  private isPauseRef(ref: ImageRef): boolean {
    return refName(ref) === refName(this.pauseRef) && (ref.tag ?? "") === (this.pauseRef.tag ?? "") && (ref.digest ?? "") === (this.pauseRef.digest ?? "");
  }

  status(input: string): ImageEntry | undefined {
    return this.store.resolve(input);
  }

  list(): ImageEntry[] {
    return this.store.all();
  }

  /**
   * Removes an image. Naming one of several tags only removes that tag; naming the last tag,
   * a digest or the ID removes the image with all its names. An unknown image is not an error.
   */
  async remove(input: string): Promise<void> {
    const entry = this.store.resolve(input);
    if (!entry) return;
    let name: string | undefined;
    try {
      name = refString(parseImageRef(input));
    } catch {
      name = undefined;
    }
    const { repoTags } = repoTagsAndDigests(entry);
    if (name && !name.includes("@") && entry.names.has(name) && repoTags.length > 1) {
      await this.records.delete(name, false);
      this.store.dropName(name);
      return;
    }
    // Every name but one goes at once (independent records: one round trip's wait, not one
    // each); the last goes after them with a synchronous collection, so the image's content
    // and snapshots are gone when the call returns. All settle before a failure is thrown.
    const names = [...entry.names];
    const last = names.pop()!;
    await allSettledOrThrow(names.map(async (n) => {
      await this.records.delete(n, false);
      this.store.dropName(n);
    }));
    await this.records.delete(last, true);
    this.store.dropName(last);
  }

  /** Usage of the snapshotter's filesystem by podshim's snapshots. */
  async fsInfo(): Promise<ImageFsUsage> {
    const snapshots = await this.a.snapshots.list();
    let usedBytes = 0n;
    let inodesUsed = 0n;
    await Promise.all(snapshots.map(async (s) => {
      try {
        const u = await this.a.snapshots.usage(s.name);
        usedBytes += u.size;
        inodesUsed += u.inodes;
      } catch {
        // removed meanwhile
      }
    }));
    return { mountpoint: await this.snapshotterRoot(), usedBytes, inodesUsed, timestamp: nowUnixNanos() };
  }

  private root: string | undefined;
  /** Where the snapshotter keeps its data (the filesystem image and writable layers live on). */
  async snapshotterRoot(): Promise<string> {
    if (this.root) return this.root;
    this.root = await this.a.snapshotterRoot(this.a.snapshots.snapshotter);
    return this.root;
  }

  /**
   * Makes sure the pause image is there: pulled when missing; when it cannot be pulled and
   * podshim has its built-in pause image, that one is loaded under the configured name.
   */
  async ensurePauseImage(signal?: AbortSignal): Promise<ImageEntry> {
    const have = this.store.resolve(this.opts.pauseImage);
    if (have) return have;
    try {
      return await this.pull(this.opts.pauseImage, undefined, signal);
    } catch (err) {
      const builtin = await this.opts.builtinPause?.();
      if (!builtin) throw err;
      this.opts.logger.warn({ pauseImage: this.opts.pauseImage, err: messageOf(err) }, "cannot pull the pause image; loading podshim's built-in pause image under its name");
      return this.a.puller.importImage(this.pauseRef, builtin, (img) => this.register(img));
    }
  }
}

function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () => reject(new CanceledError("the pull was cancelled by the client; it goes on for other callers and the next try"));
    if (signal.aborted) fail();
    else signal.addEventListener("abort", fail, { once: true });
  });
}
