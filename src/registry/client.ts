// The registry side of a pull: resolve a reference to a descriptor on the first host (of those
// hosts.toml allows) that can, then fetch manifests, configs and layers from it, falling back to
// the other pull-capable hosts. A facade: transport.ts does the HTTP, api.ts authorization and
// status errors, body.ts reading and checking bodies, resolver.ts one host's manifest lookup,
// fallback.ts the turn from one host to the next.
import { Readable } from "node:stream";
import { FailedPreconditionError, InvalidArgumentError, ResourceExhaustedError } from "../errors/errors.js";
import { parseDigest, refString } from "../distribution/reference.js";
import type { ImageRef } from "../distribution/reference.js";
import { isIndex, isManifest } from "../distribution/descriptor.js";
import type { Descriptor } from "../distribution/descriptor.js";
import type { Logger } from "../logger/logger.js";
import { RUNTIME_NAME, RUNTIME_VERSION } from "../version.js";
import { RegistryApi } from "./api.js";
import type { RegistryCredentials } from "./auth.js";
import { hashOf, rangeSkip } from "./body.js";
import { onHosts } from "./fallback.js";
import { hostLabel, loadRegistryHosts } from "./hosts.js";
import type { RegistryHost } from "./hosts.js";
import { MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES, resolveOnHost } from "./resolver.js";
import { HttpTransport } from "./transport.js";

export { verifyingStream } from "./body.js";
export { MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES };

/** Where resolved content is fetched from: the host that resolved it, then the other hosts
 * allowed to pull, in hosts.toml order. */
export interface RegistrySource {
  host: RegistryHost;
  /** The repository path as sent to the host. */
  repository: string;
  ref: ImageRef;
  creds?: RegistryCredentials;
  /** Other pull-capable hosts to try when `host` fails. */
  fallbacks?: readonly RegistryHost[];
}

export interface RegistryClientOptions {
  /** containerd-style certs.d directory. */
  configDir: string;
  logger: Logger;
  /** Connecting plus waiting for response headers, per request; default 30 s. */
  requestTimeoutMs?: number;
  /** How long a response body may send nothing while we want data; default 60 s. */
  stallTimeoutMs?: number;
  userAgent?: string;
}

/** fetchBytes buffers in memory; anything larger than this belongs in fetchBlob. */
export const MAX_BUFFERED_BLOB_BYTES = 64 * 1024 * 1024;

const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const DEFAULT_STALL_TIMEOUT_MS = 60_000;

export class RegistryClient {
  private readonly configDir: string;
  private readonly logger: Logger;
  private readonly transport: HttpTransport;
  private readonly api: RegistryApi;

  constructor(opts: RegistryClientOptions) {
    this.configDir = opts.configDir;
    this.logger = opts.logger;
    this.transport = new HttpTransport(opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
    this.api = new RegistryApi({
      transport: this.transport,
      stallMs: opts.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
      userAgent: opts.userAgent ?? `${RUNTIME_NAME}/${RUNTIME_VERSION}`,
    });
  }

  /** Closes pooled connections. */
  close(): void {
    this.transport.close();
  }

  /**
   * Resolves a reference to the descriptor of its manifest or index, asking the hosts allowed
   * to resolve in order. A host that fails (unreachable, 5xx, 404, refused) hands over to the
   * next; when all fail, the error that got furthest is thrown (NotFound when all said 404).
   */
  async resolve(
    ref: ImageRef,
    creds?: RegistryCredentials,
    signal?: AbortSignal,
  ): Promise<{ descriptor: Descriptor; source: RegistrySource }> {
    const name = refString(ref);
    const hosts = await loadRegistryHosts(this.configDir, ref.domain);
    const resolvers = hosts.filter((h) => h.capabilities.resolve);
    if (resolvers.length === 0) {
      throw new FailedPreconditionError(
        `no host configured for ${ref.domain} under ${this.configDir} may resolve "${name}" (none has the resolve capability)`,
      );
    }
    let answered: RegistryHost | undefined;
    const descriptor = await onHosts(resolvers, { signal, logger: this.logger, what: `image "${name}"` }, async (host) => {
      const d = await resolveOnHost(this.api, host, ref, creds, signal);
      answered = host;
      return d;
    });
    const host = answered!;
    const source: RegistrySource = { host, repository: ref.path, ref, fallbacks: hosts.filter((h) => h !== host && h.capabilities.pull) };
    if (creds) source.creds = creds;
    return { descriptor, source };
  }

  /**
   * Where content of `ref` is fetched from when its digest did not come from resolve (a peer
   * knew it while the registry could not answer): the pull-capable hosts, in hosts.toml order.
   */
  async sourceFor(ref: ImageRef, creds?: RegistryCredentials): Promise<RegistrySource> {
    const hosts = (await loadRegistryHosts(this.configDir, ref.domain)).filter((h) => h.capabilities.pull);
    if (hosts.length === 0) throw new FailedPreconditionError(`no host configured for ${ref.domain} under ${this.configDir} may pull "${refString(ref)}"`);
    return { host: hosts[0]!, repository: ref.path, ref, fallbacks: hosts.slice(1), ...(creds ? { creds } : {}) };
  }

  /**
   * Fetches a manifest, index or config into memory, refusing more than 4 MiB for manifests,
   * and checks its size and digest; a host that sends other bytes counts as failed.
   */
  async fetchBytes(source: RegistrySource, desc: Descriptor, signal?: AbortSignal): Promise<Buffer> {
    const manifest = isIndex(desc.mediaType) || isManifest(desc.mediaType);
    const limit = manifest ? MAX_MANIFEST_BYTES : MAX_BUFFERED_BLOB_BYTES;
    if (desc.size > limit) {
      throw new ResourceExhaustedError(
        `${manifest ? "manifest" : "blob"} ${desc.digest} of ${refString(source.ref)} is ${desc.size} bytes; podshim reads at most ${limit} bytes into memory`,
      );
    }
    // A digest podshim cannot check fails here, before any host is asked.
    hashOf(parseDigest(desc.digest, "descriptor digest").algorithm);
    return this.onPullHosts(source, signal, `${desc.digest} of ${refString(source.ref)}`, async (host) => {
      const from = hostLabel(host);
      const what = `download of ${desc.digest} from ${from}`;
      const headers = this.api.headers(host);
      if (manifest) headers.Accept = [...new Set([desc.mediaType, ...MANIFEST_MEDIA_TYPES])].join(", ");
      const url = this.api.endpoint(host, source, manifest ? "manifests" : "blobs", desc.digest);
      const res = await this.api.send(host, { method: "GET", url, headers, what, ...(signal ? { signal } : {}) }, source);
      if (res.statusCode !== 200) throw await this.api.statusError(res, "GET", what, `${desc.digest} in ${source.repository}`);
      return this.api.readVerified(res, desc, { what, from, limit, ...(signal ? { signal } : {}) });
    });
  }

  /**
   * Streams a blob, from `offset` when given (Range; a server that ignores Range has the prefix
   * skipped here). Not verified: the caller writes it into containerd, which checks the digest
   * at commit. The stream fails with DeadlineExceeded when no data comes for stallTimeoutMs.
   */
  async fetchBlob(source: RegistrySource, desc: Descriptor, opts: { offset?: number; signal?: AbortSignal } = {}): Promise<Readable> {
    const offset = opts.offset ?? 0;
    const signal = opts.signal;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > desc.size) {
      throw new InvalidArgumentError(`offset ${offset} is outside blob ${desc.digest} of ${desc.size} bytes`);
    }
    if (offset === desc.size) return Readable.from([]);
    return this.onPullHosts(source, signal, `${desc.digest} of ${refString(source.ref)}`, async (host) => {
      const what = `download of ${desc.digest} from ${hostLabel(host)}`;
      const headers = this.api.headers(host);
      if (offset > 0) headers.Range = `bytes=${offset}-`;
      const url = this.api.endpoint(host, source, "blobs", desc.digest);
      const res = await this.api.send(host, { method: "GET", url, headers, what, ...(signal ? { signal } : {}) }, source);
      const skip = rangeSkip(res, offset, what);
      if (skip === undefined) throw await this.api.statusError(res, "GET", what, `${desc.digest} in ${source.repository}`);
      return this.api.streamBody(res, { skip, expected: desc.size - offset, what, ...(signal ? { signal } : {}) });
    });
  }

  // resolve's own loop across the resolving hosts uses these two.

  /** Runs `fn` on the source's host, then on its fallbacks, until one succeeds. */
  private onPullHosts<T>(source: RegistrySource, signal: AbortSignal | undefined, what: string, fn: (host: RegistryHost) => Promise<T>): Promise<T> {
    return onHosts([source.host, ...(source.fallbacks ?? [])], { signal, logger: this.logger, what }, fn);
  }
}
