import type { Readable } from "node:stream";
import type { ContainerdClient } from "../containerd/client.js";
import type { ContentStore } from "../containerd/content.js";
import { withLease } from "../containerd/leases.js";
import { LeasesService } from "../gen/containerd/services/leases/v1/leases.js";
import type { Snapshots } from "../containerd/snapshots.js";
import { CanceledError, ErrorKind, isKind, messageOf } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import type { RegistryCredentials } from "../registry/auth.js";
import type { RegistryClient, RegistrySource } from "../registry/client.js";
import { checkLayerTypes, documentMediaType, isIndex, parseConfig, parseIndex, parseManifest, selectManifest, type ImageConfig } from "../distribution/manifest.js";
import { refName, refString, type ImageRef } from "../distribution/reference.js";
import { hostPlatform, type Descriptor, type Platform } from "../distribution/descriptor.js";
import { chainIds, unpackLayers } from "./unpack.js";
import { deferred } from "../util/deferred.js";
import type { BuiltinImage } from "./builtin-pause.js";
import { StepTimer } from "../util/step-timer.js";
import { countPullBytes, observePull } from "../metrics/metrics.js";
import { allSettledOrThrow } from "../util/settle.js";

/** What a pull leaves in containerd: content and snapshots, ready for image records. */
export interface PulledImage {
  ref: ImageRef;
  target: Descriptor;
  manifest: Descriptor;
  layers: Descriptor[];
  config: ImageConfig;
  configDescriptor: Descriptor;
  chainId: string;
  size: number;
}

/** Bytes a pull got, by where they came from. */
export interface SourceTally {
  upstream: number;
  peers: Record<string, number>;
}

/**
 * Where content comes from besides the registry (src/peer: other nodes). Every method falls
 * back to the `upstream` it is given; whatever it returns is verified against the digest.
 */
export interface ContentSources {
  /** A descriptor for a reference the registry could not resolve, or undefined. */
  resolve(repo: { domain: string; path: string }, reference: { digest?: string; tag?: string }, signal?: AbortSignal): Promise<Descriptor | undefined>;
  fetchBytes(repo: { domain: string; path: string }, desc: Descriptor, upstream: () => Promise<Buffer>, tally: SourceTally, signal?: AbortSignal): Promise<Buffer>;
  /** Runs `write` with `open(offset)`: the layer's bytes from offset on, from wherever. */
  download<T>(repo: { domain: string; path: string }, desc: Descriptor, upstream: (offset: number) => Promise<Readable>,
    write: (open: (offset: number) => Promise<AsyncIterable<Uint8Array>>) => Promise<T>, tally: SourceTally, signal?: AbortSignal): Promise<T>;
}

export interface PullerOptions {
  client: ContainerdClient;
  content: ContentStore;
  snapshots: Snapshots;
  registry: RegistryClient;
  logger: Logger;
  /** Layers fetched at once. */
  concurrency?: number;
  platform?: Platform;
  /** Other sources tried before the registry for content by digest (peers). */
  sources?: ContentSources;
}

// Labels containerd's garbage collector follows from content to content and snapshots,
// and the one its unpacker reads for a layer's uncompressed digest.
export const GcLabel = {
  contentRef: (kind: string) => `containerd.io/gc.ref.content.${kind}`,
  snapshotRef: (snapshotter: string) => `containerd.io/gc.ref.snapshot.${snapshotter}`,
  uncompressed: "containerd.io/uncompressed",
  distributionSource: (host: string) => `containerd.io/distribution.source.${host}`,
} as const;

const LEASE_EXPIRY_MS = 24 * 3600 * 1000;
const PROGRESS_EVERY_MS = 10_000;
const BLOB_ATTEMPTS = 3;

/**
 * Pulls an image straight into containerd: resolve, fetch manifests and config (verified),
 * stream layers into the content store (containerd checks digest and size at commit), unpack
 * onto the snapshotter, all under one lease so a failed pull leaves nothing behind.
 */
export class Puller {
  private readonly concurrency: number;
  private readonly platform: Platform;

  constructor(private readonly opts: PullerOptions) {
    this.concurrency = opts.concurrency ?? 3;
    this.platform = opts.platform ?? hostPlatform();
  }

  /** `register` runs inside the lease, so the records exist before the lease lets go. */
  async pull<T>(ref: ImageRef, creds: RegistryCredentials | undefined, register: (img: PulledImage) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const { client, logger } = this.opts;
    const name = refString(ref);
    const log = logger.child({ image: name });
    const started = Date.now();
    const steps = new StepTimer();
    // The registry resolves the reference while containerd creates the lease.
    const resolved = this.resolve(ref, creds, log, signal);
    resolved.catch(() => undefined);
    const pulled = withLease(client, log, "pull", LEASE_EXPIRY_MS, async (lease) => {
      steps.mark("lease");
      const call = { lease, ...(signal ? { signal } : {}) };
      const tally: SourceTally = { upstream: 0, peers: {} };
      const { descriptor: target, source } = await resolved;
      steps.mark("resolve");
      const host = source.host.url.host;
      const sourceLabel = { [GcLabel.distributionSource(host)]: refName(ref).slice(refName(ref).indexOf("/") + 1) };

      let manifestDesc = target;
      let targetBytes = await this.fetchBytes(source, target, tally, signal);
      const targetType = documentMediaType(targetBytes, target.mediaType);
      let indexBytes: Buffer | undefined;
      if (isIndex(targetType)) {
        indexBytes = targetBytes;
        manifestDesc = selectManifest(parseIndex(targetBytes, `index of ${name}`), this.platform, `image ${name}`);
        targetBytes = await this.fetchBytes(source, manifestDesc, tally, signal);
      }
      const manifest = parseManifest(targetBytes, `manifest of ${name}`);
      checkLayerTypes(manifest, `manifest of ${name}`);
      // The layers start downloading while the config is fetched (a registry round trip);
      // what needs the config (each layer's uncompressed digest label, the unpack, the chain
      // ID) waits for it.
      const configFetched = this.fetchBytes(source, manifest.config, tally, signal).then((bytes) => ({ bytes, config: parseConfig(bytes, manifest.layers.length, `config of ${name}`) }));
      configFetched.catch(() => undefined);

      const progress = { layers: 0, bytes: 0, total: manifest.layers.reduce((n, l) => n + l.size, 0) };
      const ticker = setInterval(() => {
        log.info({ layers: `${progress.layers}/${manifest.layers.length}`, bytes: progress.bytes, totalBytes: progress.total }, "pull in progress");
      }, PROGRESS_EVERY_MS);
      ticker.unref();
      // The first failure stops the rest of the work, and is what the pull fails with: not the
      // cancellations it set off, which may settle first (an unpack step cancelled while the
      // layer it waits for failed its digest check). The caller's cancellation stops it too.
      const stop = new AbortController();
      let cause: unknown;
      const stopFor = (err: unknown): void => {
        cause ??= err;
        stop.abort();
      };
      const onAbort = () => stop.abort();
      signal?.addEventListener("abort", onAbort, { once: true });
      // Layers download a few at a time while they are unpacked in order behind them, the way
      // containerd's own client overlaps the network and the disk.
      const downloads = this.eachLimited(manifest.layers, stop.signal, stopFor, async (layer, i) => {
        const labels = configFetched.then(({ config }) => ({ [GcLabel.uncompressed]: config.rootfs.diff_ids[i]!, ...sourceLabel }));
        const sent = await this.fetchBlob(source, layer, labels, lease, stop.signal, tally, (n) => {
          progress.bytes += n;
          countPullBytes(n);
        });
        progress.layers++;
        if (sent > 0) log.debug({ layer: layer.digest, bytes: sent }, "layer downloaded");
      });
      downloads.all.catch(stopFor);
      let config: ImageConfig;
      let chainId: string;
      try {
        const fetched = await configFetched;
        config = fetched.config;
        const diffIds = config.rootfs.diff_ids;
        steps.mark("documents");

        // The documents go into the content store while the layers download and unpack, each
        // labelled with what it keeps alive (the top chain ID follows from the diff IDs alone).
        // The lease holds everything until the image records exist, so no order matters.
        chainId = chainIds(diffIds).at(-1) ?? "";
        const manifestLabels: Record<string, string> = { [GcLabel.contentRef("config")]: manifest.config.digest, ...sourceLabel };
        manifest.layers.forEach((l, i) => (manifestLabels[GcLabel.contentRef(`l.${i}`)] = l.digest));
        const documents = steps.span("content", () => allSettledOrThrow([
          this.putBytes(manifest.config, fetched.bytes, { [GcLabel.snapshotRef(this.opts.snapshots.snapshotter)]: chainId, ...sourceLabel }, call),
          this.putBytes(manifestDesc, targetBytes, manifestLabels, call),
          ...(indexBytes ? [this.putBytes(target, indexBytes, { [GcLabel.contentRef("m.0")]: manifestDesc.digest, ...sourceLabel }, call)] : []),
        ]));
        const unpacked = unpackLayers(client, this.opts.snapshots, manifest.layers, diffIds, { lease, signal: stop.signal, available: (i) => downloads.each[i]! });
        for (const work of [unpacked, documents]) work.catch(stopFor);
        // Everything started here settles before a failure unwinds the lease.
        await allSettledOrThrow<unknown>([unpacked, downloads.all, documents]);
        steps.mark("layers_and_content");
      } catch (err) {
        stopFor(err);
        // A config that failed leaves downloads running: they end before the lease goes.
        await downloads.all.catch(() => undefined);
        throw cause;
      } finally {
        clearInterval(ticker);
        signal?.removeEventListener("abort", onAbort);
      }

      const size = manifestDesc.size + manifest.config.size + progress.total;
      const result = await register({ ref, target, manifest: manifestDesc, layers: manifest.layers, config, configDescriptor: manifest.config, chainId, size });
      steps.mark("register");
      const sources = this.opts.sources ? { fromUpstream: tally.upstream, fromPeers: tally.peers } : {};
      log.info({ ms: Date.now() - started, steps: steps.ms, bytes: progress.bytes, layers: manifest.layers.length, id: manifest.config.digest, ...sources }, "pulled");
      return result;
    });
    pulled.then(() => observePull((Date.now() - started) / 1000, true), () => observePull((Date.now() - started) / 1000, false));
    return pulled;
  }

  /**
   * Loads an image podshim built itself (no registry) the same way a pull does: content with
   * the same labels, unpacked, registered while the lease holds.
   */
  async importImage<T>(ref: ImageRef, img: BuiltinImage, register: (img: PulledImage) => Promise<T>): Promise<T> {
    const { client, snapshots } = this.opts;
    return withLease(client, this.opts.logger, "import", LEASE_EXPIRY_MS, async (lease) => {
      const call = { lease };
      for (const layer of img.layers) {
        await this.putBytes(layer.descriptor, layer.bytes, { [GcLabel.uncompressed]: layer.diffId }, call);
      }
      const layers = img.layers.map((l) => l.descriptor);
      const diffIds = img.layers.map((l) => l.diffId);
      const chainId = await unpackLayers(client, snapshots, layers, diffIds, call);
      await this.putBytes(img.config.descriptor, img.config.bytes, { [GcLabel.snapshotRef(snapshots.snapshotter)]: chainId }, call);
      const manifestLabels: Record<string, string> = { [GcLabel.contentRef("config")]: img.config.descriptor.digest };
      layers.forEach((l, i) => (manifestLabels[GcLabel.contentRef(`l.${i}`)] = l.digest));
      await this.putBytes(img.manifest.descriptor, img.manifest.bytes, manifestLabels, call);
      const config = parseConfig(img.config.bytes, layers.length, "built-in image config");
      const size = img.manifest.descriptor.size + img.config.descriptor.size + layers.reduce((n, l) => n + l.size, 0);
      return register({ ref, target: img.manifest.descriptor, manifest: img.manifest.descriptor, layers, config, configDescriptor: img.config.descriptor, chainId, size });
    });
  }

  /** The registry resolves; when it cannot be reached, other sources may know the digest (never
   * a tag, unless they were told to). */
  private async resolve(ref: ImageRef, creds: RegistryCredentials | undefined, log: Logger, signal?: AbortSignal): Promise<{ descriptor: Descriptor; source: RegistrySource }> {
    try {
      return await this.opts.registry.resolve(ref, creds, signal);
    } catch (err) {
      // Only when the registry is away or refusing for load: a 401 or 404 is its answer, and
      // a peer must not stand in for credentials the caller does not have.
      const away = isKind(err, ErrorKind.Unavailable) || isKind(err, ErrorKind.DeadlineExceeded) || isKind(err, ErrorKind.ResourceExhausted);
      if (!this.opts.sources || signal?.aborted || !away) throw err;
      const descriptor = await this.opts.sources.resolve(ref, { ...(ref.digest ? { digest: ref.digest } : {}), ...(ref.tag ? { tag: ref.tag } : {}) }, signal);
      if (!descriptor) throw err;
      log.warn({ digest: descriptor.digest, err: messageOf(err) }, "the registry could not resolve the image; a peer had it");
      return { descriptor, source: await this.opts.registry.sourceFor(ref, creds) };
    }
  }

  private fetchBytes(source: RegistrySource, desc: Descriptor, tally: SourceTally, signal?: AbortSignal): Promise<Buffer> {
    const upstream = () => this.opts.registry.fetchBytes(source, desc, signal);
    return this.opts.sources ? this.opts.sources.fetchBytes(source.ref, desc, upstream, tally, signal) : upstream();
  }

  /**
   * Writes a small document we already hold (verified) into the content store in one round
   * trip. When it was there already, it is held and labelled as holdOrWrite does.
   */
  private async putBytes(desc: Descriptor, bytes: Buffer, labels: Record<string, string>, call: { lease: string; signal?: AbortSignal }): Promise<void> {
    if (await this.opts.content.put(`podshim-${desc.digest}`, desc, bytes, labels, call)) return;
    await this.hold(desc, labels, call.lease, call.signal);
  }

  /** Streams a layer into the content store, resuming after a broken or stalled download. */
  private async fetchBlob(source: RegistrySource, desc: Descriptor, labels: Promise<Record<string, string>>, lease: string, signal: AbortSignal | undefined, tally: SourceTally, onBytes: (n: number) => void): Promise<number> {
    const upstream = (offset: number): Promise<Readable> => this.opts.registry.fetchBlob(source, desc, { offset, ...(signal ? { signal } : {}) });
    const write = (open: (offset: number) => Promise<AsyncIterable<Uint8Array>>) => this.writeBlob(desc, labels, lease, signal, open, onBytes);
    const sources = this.opts.sources;
    return this.holdOrWrite(desc, labels, lease, signal, () => (sources ? sources.download(source.ref, desc, upstream, write, tally, signal) : write(upstream)));
  }

  /** Writes what `open(offset)` yields, retrying (open is called again) after a transient failure. */
  private async writeBlob(desc: Descriptor, labels: Promise<Record<string, string>>, lease: string, signal: AbortSignal | undefined, open: (offset: number) => Promise<AsyncIterable<Uint8Array>>, onBytes: (n: number) => void): Promise<number> {
    let total = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        total += await this.opts.content.write(`podshim-${desc.digest}`, desc, async (offset) => counting(await open(offset), onBytes), labels, { lease, ...(signal ? { signal } : {}) });
        return total;
      } catch (err) {
        const retriable = isKind(err, ErrorKind.Unavailable) || isKind(err, ErrorKind.DeadlineExceeded);
        if (!retriable || attempt >= BLOB_ATTEMPTS || signal?.aborted) throw err;
        this.opts.logger.warn({ blob: desc.digest, attempt, err: messageOf(err) }, "blob download failed; retrying");
      }
    }
  }

  /**
   * Content already in the store is not fetched again; it is added to the lease so the
   * garbage collector cannot take it before the image records point at it, and its labels
   * are brought up to date.
   */
  private async holdOrWrite(desc: Descriptor, labels: Promise<Record<string, string>>, lease: string, signal: AbortSignal | undefined, write: () => Promise<number>): Promise<number> {
    const info = await this.opts.content.info(desc.digest);
    if (info) {
      await this.hold(desc, await labels, lease, signal);
      return 0;
    }
    return write();
  }

  /** Adds content that exists to the pull's lease and brings its labels up to date. */
  private async hold(desc: Descriptor, labels: Record<string, string>, lease: string, signal: AbortSignal | undefined): Promise<void> {
    await this.opts.client.call(LeasesService.addResource, { id: lease, resource: { id: desc.digest, type: "content" } });
    await this.opts.content.setLabels(desc.digest, labels, { lease, ...(signal ? { signal } : {}) });
  }

  /**
   * Runs fn over items, `concurrency` at a time, in order. `each[i]` settles when item i is
   * done; `all` when every item is, rejecting with a failure. Each failure goes to `onFailure`
   * as it happens; an aborted `signal` keeps items that have not started from starting.
   */
  private eachLimited<T>(items: readonly T[], signal: AbortSignal, onFailure: (err: unknown) => void, fn: (item: T, i: number) => Promise<void>): { each: Promise<void>[]; all: Promise<void> } {
    const gates = items.map(() => deferred<void>());
    for (const g of gates) g.promise.catch(() => undefined);
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const i = next++;
        if (signal.aborted) {
          gates[i]!.reject(new CanceledError("pull stopped"));
          continue;
        }
        try {
          await fn(items[i]!, i);
          gates[i]!.resolve();
        } catch (err) {
          gates[i]!.reject(err);
          onFailure(err);
        }
      }
    };
    const workers = Array.from({ length: Math.min(this.concurrency, items.length) }, worker);
    const each = gates.map((g) => g.promise);
    return { each, all: Promise.all(workers).then(() => Promise.all(each)).then(() => undefined) };
  }
}

async function* counting(body: AsyncIterable<Uint8Array>, onBytes: (n: number) => void): AsyncIterable<Uint8Array> {
  for await (const chunk of body) {
    onBytes((chunk as Buffer).length);
    yield chunk as Buffer;
  }
}
