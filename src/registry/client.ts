// The registry side of a pull: resolve a reference to a descriptor on the first host (of those
// hosts.toml allows) that can, then fetch manifests, configs and layers from it, falling back to
// the other pull-capable hosts. Plain node:http/https rather than fetch: per-host CAs,
// skip_verify and client certificates need an https.Agent of their own.
import { createHash } from "node:crypto";
import http from "node:http";
import type { IncomingMessage } from "node:http";
import https from "node:https";
import { posix } from "node:path";
import { Readable, Transform } from "node:stream";
import type { TransformCallback } from "node:stream";
import { rootCertificates } from "node:tls";
import {
  CanceledError, DeadlineExceededError, ErrorKind, FailedPreconditionError, InternalError, InvalidArgumentError,
  NotFoundError, PodshimError, ResourceExhaustedError, UnauthenticatedError, UnavailableError, UnimplementedError,
  isKind, messageOf,
} from "../errors/errors.js";
import { parseDigest, refString } from "../distribution/reference.js";
import type { ImageRef } from "../distribution/reference.js";
import { MediaType, isIndex, isManifest } from "../distribution/descriptor.js";
import type { Descriptor } from "../distribution/descriptor.js";
import type { Logger } from "../logger/logger.js";
import { RUNTIME_NAME, RUNTIME_VERSION } from "../version.js";
import { RegistryAuth, pullScope } from "./auth.js";
import type { AuthContext, AuthHttp, AuthHttpRequest, RegistryCredentials } from "./auth.js";
import { loadRegistryHosts } from "./hosts.js";
import type { RegistryHost } from "./hosts.js";

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

/** What resolve asks for, best first: indexes before single manifests, OCI before Docker. */
export const MANIFEST_MEDIA_TYPES = [
  MediaType.OciIndex, MediaType.DockerManifestList, MediaType.OciManifest, MediaType.DockerManifest,
] as const;
/** containerd's limit: no real manifest comes near it, a hostile one could be endless. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** fetchBytes buffers in memory; anything larger than this belongs in fetchBlob. */
export const MAX_BUFFERED_BLOB_BYTES = 64 * 1024 * 1024;

const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const DEFAULT_STALL_TIMEOUT_MS = 60_000;
const MAX_REDIRECTS = 5;
const MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024;
const MAX_ERROR_BODY_BYTES = 16 * 1024;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const SCHEMA1_MEDIA_TYPES = new Set([
  "application/vnd.docker.distribution.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v1+prettyjws",
]);
const HASHES: Record<string, string> = { sha256: "sha256", sha384: "sha384", sha512: "sha512" };

function hostLabel(host: RegistryHost): string {
  return host.url.pathname === "/v2" ? host.url.origin : `${host.url.origin}${host.url.pathname}`;
}

/** The error an aborted signal stands for: its reason when that is one of ours, a deadline for
 * AbortSignal.timeout, otherwise a cancellation. */
function abortError(signal: AbortSignal, what: string): PodshimError {
  const reason: unknown = signal.reason;
  if (reason instanceof PodshimError) return reason;
  if (reason instanceof Error && reason.name === "TimeoutError") {
    return new DeadlineExceededError(`${what}: deadline exceeded`, { cause: reason });
  }
  return new CanceledError(`${what}: canceled`, { cause: reason });
}

function networkError(err: unknown, url: URL, what: string): PodshimError {
  if (err instanceof PodshimError) return err;
  const e = err as NodeJS.ErrnoException;
  return new UnavailableError(`${what}: cannot reach ${url.origin}: ${e.message ?? String(err)}`, { cause: err });
}

function contentType(res: IncomingMessage): string {
  return (res.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
}

function contentLength(res: IncomingMessage): number | undefined {
  const raw = res.headers["content-length"];
  if (raw === undefined || !/^\d+$/.test(raw)) return undefined;
  return Number(raw);
}

function hashOf(algorithm: string): string {
  const name = HASHES[algorithm];
  if (!name) throw new UnimplementedError(`digest algorithm ${algorithm} is not supported (sha256, sha384, sha512 are)`);
  return name;
}

/** The manifest media type of a body whose Content-Type said nothing useful. */
function sniffMediaType(body: Buffer): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof doc !== "object" || doc === null) return undefined;
  const d = doc as Record<string, unknown>;
  if (typeof d.mediaType === "string" && d.mediaType !== "") return d.mediaType;
  if (d.schemaVersion === 1) return "application/vnd.docker.distribution.manifest.v1+json";
  if (Array.isArray(d.manifests)) return MediaType.OciIndex;
  if (typeof d.config === "object" && d.config !== null) return MediaType.OciManifest;
  return undefined;
}

function isKnownManifestType(mediaType: string): boolean {
  return (MANIFEST_MEDIA_TYPES as readonly string[]).includes(mediaType);
}

/** The registry's error body in a line: "CODE: message" for distribution's JSON errors. */
function errorSummary(body: Buffer): string {
  const text = body.toString("utf8").trim();
  try {
    const doc = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
    if (Array.isArray(doc.errors) && doc.errors.length > 0) {
      return doc.errors.map((e) => [e.code, e.message].filter((s) => typeof s === "string" && s !== "").join(": ")).join("; ");
    }
  } catch {
    // not JSON
  }
  const line = text.replace(/\s+/g, " ");
  return line.length > 200 ? `${line.slice(0, 200)}...` : line;
}

function digestMismatch(expected: string, from: string, actual: string): PodshimError {
  // InternalError: the bytes are not what the descriptor names, which is neither the caller's
  // fault (InvalidArgument) nor a transient condition worth a blind retry (Unavailable).
  return new InternalError(`digest mismatch for ${expected} from ${from}: got ${actual}`);
}

/**
 * A response body as a stream with a stall timer: the timer runs only while the consumer wants
 * data and none arrives, so a slow consumer is never mistaken for a stalled server. It can skip
 * a prefix (a server that ignored Range) and checks the byte count against what is expected.
 */
class GuardedBody extends Readable {
  private timer: NodeJS.Timeout | undefined;
  private received = 0;
  private toSkip: number;
  private ended = false;
  private readonly onAbort: (() => void) | undefined;

  constructor(
    private readonly res: IncomingMessage,
    private readonly o: {
      stallMs: number;
      skip: number;
      expected?: number;
      /** "download of sha256:... from http://host" */
      what: string;
      signal?: AbortSignal;
    },
  ) {
    super();
    this.toSkip = o.skip;
    res.pause();
    res.on("data", (chunk: Buffer) => this.onData(chunk));
    res.on("end", () => this.onEnd());
    res.on("error", (err) => this.destroy(new UnavailableError(`${o.what} failed: ${err.message}`, { cause: err })));
    res.on("close", () => {
      if (!this.ended && !this.destroyed) this.destroy(new UnavailableError(`${o.what} failed: the connection closed early`));
    });
    const signal = o.signal;
    if (signal) {
      this.onAbort = () => this.destroy(abortError(signal, o.what));
      if (signal.aborted) queueMicrotask(this.onAbort);
      else signal.addEventListener("abort", this.onAbort, { once: true });
    }
  }

  override _read(): void {
    this.arm();
    this.res.resume();
  }

  private arm(): void {
    if (this.timer) {
      this.timer.refresh();
      return;
    }
    this.timer = setTimeout(() => {
      const s = this.o.stallMs / 1000;
      this.destroy(new DeadlineExceededError(`${this.o.what} stalled: no data for ${s} s`));
    }, this.o.stallMs);
    this.timer.unref();
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private onData(chunk: Buffer): void {
    if (this.destroyed) return;
    if (this.toSkip > 0) {
      const skipped = Math.min(this.toSkip, chunk.length);
      this.toSkip -= skipped;
      chunk = chunk.subarray(skipped);
      if (chunk.length === 0) {
        this.arm();
        return;
      }
    }
    this.received += chunk.length;
    if (this.o.expected !== undefined && this.received > this.o.expected) {
      this.destroy(new InternalError(`${this.o.what}: the server sent more than the ${this.o.expected} bytes expected`));
      return;
    }
    if (this.push(chunk)) this.arm();
    else {
      this.disarm();
      this.res.pause();
    }
  }

  private onEnd(): void {
    this.ended = true;
    this.disarm();
    if (this.destroyed) return;
    if (this.toSkip > 0 || (this.o.expected !== undefined && this.received < this.o.expected)) {
      const want = this.o.expected === undefined ? "" : ` of ${this.o.expected}`;
      this.destroy(new InternalError(`${this.o.what}: the server sent ${this.received}${want} bytes`));
      return;
    }
    this.push(null);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.disarm();
    if (this.onAbort) this.o.signal?.removeEventListener("abort", this.onAbort);
    if (!this.ended) this.res.destroy();
    cb(err);
  }
}

/**
 * A pass-through that fails at the end unless the bytes have the descriptor's size and digest.
 * fetchBlob does not verify (containerd verifies at commit); this is for callers that keep the
 * bytes themselves.
 */
export function verifyingStream(desc: Pick<Descriptor, "digest" | "size">, from = "the registry"): Transform {
  const { algorithm } = parseDigest(desc.digest, "descriptor digest");
  const hash = createHash(hashOf(algorithm));
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      size += chunk.length;
      if (size > desc.size) {
        cb(new InternalError(`size mismatch for ${desc.digest} from ${from}: more than ${desc.size} bytes`));
        return;
      }
      hash.update(chunk);
      cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      if (size !== desc.size) {
        cb(new InternalError(`size mismatch for ${desc.digest} from ${from}: got ${size} bytes, expected ${desc.size}`));
        return;
      }
      const actual = `${algorithm}:${hash.digest("hex")}`;
      cb(actual === desc.digest ? null : digestMismatch(desc.digest, from, actual));
    },
  });
}

interface Exchange {
  method: "GET" | "HEAD" | "POST";
  url: URL;
  headers: Record<string, string | string[]>;
  body?: Buffer;
  signal?: AbortSignal;
  /** What is being done, for error messages: "resolve of docker.io/library/busybox:latest". */
  what: string;
}

/** How much an error tells about where resolution got: the furthest wins, as in containerd. */
function errorRank(err: unknown): number {
  if (isKind(err, ErrorKind.Unavailable) || isKind(err, ErrorKind.DeadlineExceeded)) return 1;
  if (isKind(err, ErrorKind.NotFound)) return 2;
  return 3;
}

export class RegistryClient {
  private readonly configDir: string;
  private readonly logger: Logger;
  private readonly requestTimeoutMs: number;
  private readonly stallTimeoutMs: number;
  private readonly userAgent: string;
  private readonly auth = new RegistryAuth();
  private readonly httpAgent = new http.Agent({ keepAlive: true });
  private readonly httpsAgents = new Map<string, https.Agent>();

  constructor(opts: RegistryClientOptions) {
    this.configDir = opts.configDir;
    this.logger = opts.logger;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.stallTimeoutMs = opts.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    this.userAgent = opts.userAgent ?? `${RUNTIME_NAME}/${RUNTIME_VERSION}`;
  }

  /** Closes pooled connections. */
  close(): void {
    this.httpAgent.destroy();
    for (const agent of this.httpsAgents.values()) agent.destroy();
    this.httpsAgents.clear();
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
    const failures: { host: RegistryHost; err: unknown }[] = [];
    for (const host of resolvers) {
      try {
        const descriptor = await this.resolveOn(host, ref, creds, signal);
        const source: RegistrySource = {
          host,
          repository: ref.path,
          ref,
          fallbacks: hosts.filter((h) => h !== host && h.capabilities.pull),
        };
        if (creds) source.creds = creds;
        return { descriptor, source };
      } catch (err) {
        if (signal?.aborted || isKind(err, ErrorKind.Canceled)) throw err;
        failures.push({ host, err });
        this.logger.debug({ image: name, host: hostLabel(host), err: messageOf(err) }, "registry host could not resolve the image");
      }
    }
    throw this.finalError(failures, (notFound) => `image "${name}" not found in ${notFound}`);
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
    const { algorithm } = parseDigest(desc.digest, "descriptor digest");
    const hashName = hashOf(algorithm);
    return this.onPullHosts(source, signal, `${desc.digest} of ${refString(source.ref)}`, async (host) => {
      const from = hostLabel(host);
      const what = `download of ${desc.digest} from ${from}`;
      const headers = this.headers(host);
      if (manifest) headers.Accept = [...new Set([desc.mediaType, ...MANIFEST_MEDIA_TYPES])].join(", ");
      const url = this.endpoint(host, source, manifest ? "manifests" : "blobs", desc.digest);
      const res = await this.send(host, { method: "GET", url, headers, what, ...(signal ? { signal } : {}) }, source);
      if (res.statusCode !== 200) throw await this.statusError(res, "GET", what, `${desc.digest} in ${source.repository}`);
      const announced = contentLength(res);
      if (announced !== undefined && announced !== desc.size) {
        res.destroy();
        throw new InternalError(`size mismatch for ${desc.digest} from ${from}: it announces ${announced} bytes, expected ${desc.size}`);
      }
      const body = await this.readBody(res, { what, limit, expected: desc.size, ...(signal ? { signal } : {}) });
      const actual = `${algorithm}:${createHash(hashName).update(body).digest("hex")}`;
      if (actual !== desc.digest) throw digestMismatch(desc.digest, from, actual);
      return body;
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
      const from = hostLabel(host);
      const what = `download of ${desc.digest} from ${from}`;
      const headers = this.headers(host);
      if (offset > 0) headers.Range = `bytes=${offset}-`;
      const url = this.endpoint(host, source, "blobs", desc.digest);
      const res = await this.send(host, { method: "GET", url, headers, what, ...(signal ? { signal } : {}) }, source);
      let skip = 0;
      if (res.statusCode === 200) skip = offset;
      else if (res.statusCode === 206 && offset > 0) {
        const range = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(res.headers["content-range"] ?? "");
        if (!range || Number(range[1]) !== offset) {
          res.destroy();
          throw new InternalError(`${what}: asked for bytes from ${offset}, got range ${JSON.stringify(res.headers["content-range"] ?? "")}`);
        }
      } else throw await this.statusError(res, "GET", what, `${desc.digest} in ${source.repository}`);
      return new GuardedBody(res, {
        stallMs: this.stallTimeoutMs,
        skip,
        expected: desc.size - offset,
        what,
        ...(signal ? { signal } : {}),
      });
    });
  }

  // --- hosts and URLs

  private async resolveOn(host: RegistryHost, ref: ImageRef, creds: RegistryCredentials | undefined, signal?: AbortSignal): Promise<Descriptor> {
    const source = { repository: ref.path, ref, ...(creds ? { creds } : {}) };
    const reference = ref.digest ?? ref.tag ?? "latest";
    const name = refString(ref);
    const from = hostLabel(host);
    const what = `resolve of ${name} at ${from}`;
    const url = this.endpoint(host, source, "manifests", reference);
    const headers = { ...this.headers(host), Accept: MANIFEST_MEDIA_TYPES.join(", ") };
    const opt = signal ? { signal } : {};

    const head = await this.send(host, { method: "HEAD", url, headers, what, ...opt }, source);
    head.resume();
    if (head.statusCode === 200) {
      const mediaType = contentType(head);
      if (SCHEMA1_MEDIA_TYPES.has(mediaType)) throw schema1(name, from);
      const size = contentLength(head);
      const headerDigest = this.digestHeader(head, what);
      const sameAlgorithm = ref.digest && headerDigest && headerDigest.split(":")[0] === ref.digest.split(":")[0];
      if (sameAlgorithm && headerDigest !== ref.digest) throw digestMismatch(ref.digest!, from, headerDigest!);
      const digest = ref.digest ?? headerDigest;
      if (isKnownManifestType(mediaType) && size !== undefined && digest) {
        if (size > MAX_MANIFEST_BYTES) throw tooLarge(name, from, size);
        return { mediaType, digest, size };
      }
      // Not enough from HEAD: the body tells the rest.
    } else if (head.statusCode !== 405) {
      throw await this.statusError(head, "HEAD", what, `manifest ${reference} of ${ref.path}`);
    }

    const res = await this.send(host, { method: "GET", url, headers, what, ...opt }, source);
    if (res.statusCode !== 200) throw await this.statusError(res, "GET", what, `manifest ${reference} of ${ref.path}`);
    const announced = contentLength(res);
    if (announced !== undefined && announced > MAX_MANIFEST_BYTES) {
      res.destroy();
      throw tooLarge(name, from, announced);
    }
    const headerDigest = this.digestHeader(res, what);
    let body: Buffer;
    try {
      body = await this.readBody(res, { what, limit: MAX_MANIFEST_BYTES, ...opt });
    } catch (err) {
      if (isKind(err, ErrorKind.ResourceExhausted)) throw tooLarge(name, from, undefined);
      throw err;
    }
    let mediaType = contentType(res);
    if (!isKnownManifestType(mediaType) && !SCHEMA1_MEDIA_TYPES.has(mediaType)) mediaType = sniffMediaType(body) ?? mediaType;
    if (SCHEMA1_MEDIA_TYPES.has(mediaType)) throw schema1(name, from);
    if (!isKnownManifestType(mediaType)) {
      throw new UnimplementedError(`${what}: unsupported manifest media type ${JSON.stringify(mediaType)}`);
    }
    const algorithm = ref.digest ? parseDigest(ref.digest).algorithm : "sha256";
    const actual = `${algorithm}:${createHash(hashOf(algorithm)).update(body).digest("hex")}`;
    if (ref.digest && actual !== ref.digest) throw digestMismatch(ref.digest, from, actual);
    if (headerDigest && headerDigest.startsWith(`${algorithm}:`) && headerDigest !== actual) {
      throw digestMismatch(headerDigest, from, actual);
    }
    return { mediaType, digest: actual, size: body.length };
  }

  private digestHeader(res: IncomingMessage, what: string): string | undefined {
    const value = res.headers["docker-content-digest"];
    const raw = Array.isArray(value) ? value[0] : value;
    if (raw === undefined || raw === "") return undefined;
    try {
      parseDigest(raw, "Docker-Content-Digest");
    } catch (err) {
      throw new InternalError(`${what}: ${messageOf(err)}`, { cause: err });
    }
    return raw;
  }

  /** Runs `fn` on the source's host, then on its fallbacks, until one succeeds. */
  private async onPullHosts<T>(source: RegistrySource, signal: AbortSignal | undefined, what: string, fn: (host: RegistryHost) => Promise<T>): Promise<T> {
    const hosts = [source.host, ...(source.fallbacks ?? [])];
    const failures: { host: RegistryHost; err: unknown }[] = [];
    for (const host of hosts) {
      try {
        return await fn(host);
      } catch (err) {
        if (signal?.aborted || isKind(err, ErrorKind.Canceled)) throw err;
        failures.push({ host, err });
        if (hosts.length > 1) this.logger.debug({ content: what, host: hostLabel(host), err: messageOf(err) }, "registry host could not serve content");
      }
    }
    throw this.finalError(failures, (notFound) => `${what} not found in ${notFound}`);
  }

  private finalError(failures: { host: RegistryHost; err: unknown }[], notFound: (hosts: string) => string): unknown {
    let best = failures[0]!;
    for (const f of failures) if (errorRank(f.err) > errorRank(best.err)) best = f;
    if (!isKind(best.err, ErrorKind.NotFound)) return best.err;
    const missing = failures.filter((f) => isKind(f.err, ErrorKind.NotFound)).map((f) => hostLabel(f.host));
    const others = failures.filter((f) => !isKind(f.err, ErrorKind.NotFound)).map((f) => messageOf(f.err));
    const message = notFound(missing.join(", ")) + (others.length > 0 ? ` (also tried: ${others.join("; ")})` : "");
    return new NotFoundError(message, { cause: best.err });
  }

  private headers(host: RegistryHost): Record<string, string | string[]> {
    const h: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(host.header)) h[k] = Array.isArray(v) ? [...v] : v;
    // A User-Agent set in hosts.toml wins, as in containerd.
    if (!Object.keys(h).some((k) => k.toLowerCase() === "user-agent")) h["User-Agent"] = this.userAgent;
    return h;
  }

  /** <api root>/<repository>/<kind>/<reference>, with ?ns=<registry> when the host is a mirror,
   * as containerd does, so a mirror serving several registries knows which one is meant. */
  private endpoint(host: RegistryHost, source: Pick<RegistrySource, "repository" | "ref">, kind: "manifests" | "blobs", reference: string): URL {
    const url = new URL(host.url.href);
    url.pathname = posix.join(host.url.pathname, source.repository, kind, reference);
    const registry = source.ref.domain;
    const isUpstream = url.host === registry || (registry === "docker.io" && url.host === "registry-1.docker.io");
    if (!isUpstream) url.searchParams.set("ns", registry);
    return url;
  }

  // --- HTTP

  private agentFor(protocol: string, host: RegistryHost): http.Agent {
    if (protocol === "http:") return this.httpAgent;
    const key = createHash("sha256");
    key.update(host.skipVerify ? "insecure" : "verify");
    for (const ca of host.ca) key.update("\0ca\0").update(ca);
    for (const c of host.clientCert ?? []) key.update("\0cert\0").update(c.cert).update("\0key\0").update(c.key ?? "");
    const id = key.digest("hex");
    let agent = this.httpsAgents.get(id);
    if (!agent) {
      const opts: https.AgentOptions = { keepAlive: true, rejectUnauthorized: !host.skipVerify };
      // Node's `ca` replaces the default roots; hosts.toml's CAs are meant to add to them.
      if (host.ca.length > 0) opts.ca = [...rootCertificates, ...host.ca.map((b) => b.toString("utf8"))];
      if (host.clientCert && host.clientCert.length > 0) {
        opts.cert = host.clientCert.map((c) => c.cert);
        opts.key = host.clientCert.map((c) => c.key ?? c.cert);
      }
      agent = new https.Agent(opts);
      this.httpsAgents.set(id, agent);
    }
    return agent;
  }

  /** One HTTP exchange up to the response headers, within requestTimeoutMs (and the host's
   * dial_timeout for the connect). A reused keep-alive connection that the server had already
   * closed is retried once on a fresh one, as Go's transport does for idempotent requests. */
  private rawRequest(host: RegistryHost, ex: Exchange, retried = false): Promise<IncomingMessage> {
    return new Promise<IncomingMessage>((resolve, reject) => {
      const { signal, url, what } = ex;
      if (signal?.aborted) {
        reject(abortError(signal, what));
        return;
      }
      const mod = url.protocol === "https:" ? https : http;
      const headers = { ...ex.headers };
      if (ex.body) headers["Content-Length"] = String(ex.body.length);
      const req = mod.request(url, { method: ex.method, headers, agent: this.agentFor(url.protocol, host) });
      let settled = false;
      let dialTimer: NodeJS.Timeout | undefined;
      const cleanup = (): void => {
        clearTimeout(timer);
        clearTimeout(dialTimer);
        signal?.removeEventListener("abort", onAbort);
      };
      const fail = (err: unknown): void => {
        if (settled) return;
        settled = true;
        cleanup();
        req.destroy();
        reject(err);
      };
      const timer = setTimeout(() => {
        fail(new DeadlineExceededError(`${what}: no response from ${url.origin} within ${this.requestTimeoutMs / 1000} s`));
      }, this.requestTimeoutMs);
      timer.unref();
      const onAbort = (): void => fail(abortError(signal!, what));
      signal?.addEventListener("abort", onAbort, { once: true });

      const dialMs = host.dialTimeoutMs;
      if (dialMs !== undefined && dialMs > 0) {
        req.once("socket", (socket) => {
          if (!socket.connecting) return;
          dialTimer = setTimeout(() => {
            fail(new UnavailableError(`${what}: cannot connect to ${url.origin} within ${dialMs} ms (dial_timeout)`));
          }, dialMs);
          dialTimer.unref();
          socket.once("connect", () => clearTimeout(dialTimer));
        });
      }
      req.on("error", (err: NodeJS.ErrnoException) => {
        if (settled) return;
        const stale = req.reusedSocket && (err.code === "ECONNRESET" || err.code === "EPIPE");
        if (stale && !retried && ex.method !== "POST") {
          settled = true;
          cleanup();
          this.rawRequest(host, ex, true).then(resolve, reject);
          return;
        }
        fail(networkError(err, url, what));
      });
      req.on("response", (res) => {
        if (settled) {
          res.destroy();
          return;
        }
        settled = true;
        cleanup();
        resolve(res);
      });
      req.end(ex.body);
    });
  }

  /** rawRequest plus redirects (blob stores hand out signed URLs elsewhere). Authorization is
   * dropped once a redirect leaves the registry's origin: it is for the registry only. */
  private async follow(host: RegistryHost, ex: Exchange): Promise<IncomingMessage> {
    let url = ex.url;
    let headers = ex.headers;
    // The host's client certificate and skip_verify hold for the address first asked, never for
    // another host it redirects to; its extra CAs stay (they only add trust roots).
    const elsewhere: RegistryHost = { ...host, skipVerify: false, clientCert: [] };
    for (let hops = 0; ; hops++) {
      const res = await this.rawRequest(url.host === ex.url.host ? host : elsewhere, { ...ex, url, headers });
      const location = res.headers.location;
      if (!REDIRECT_STATUSES.has(res.statusCode ?? 0) || location === undefined) return res;
      res.resume();
      if (hops === MAX_REDIRECTS) throw new UnavailableError(`${ex.what}: more than ${MAX_REDIRECTS} redirects (last to ${new URL(location, url).origin})`);
      let next: URL;
      try {
        next = new URL(location, url);
      } catch (err) {
        throw new UnavailableError(`${ex.what}: ${url.origin} redirects to an invalid location`, { cause: err });
      }
      if (next.protocol !== "http:" && next.protocol !== "https:") {
        throw new UnavailableError(`${ex.what}: ${url.origin} redirects to a non-HTTP location`);
      }
      if (next.origin !== url.origin) {
        headers = Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== "authorization"));
      }
      url = next;
    }
  }

  /** The token-server transport for a host: its TLS settings and configured headers. */
  private authHttp(host: RegistryHost): AuthHttp {
    return async (req: AuthHttpRequest) => {
      const what = `token request to ${req.url.origin}`;
      const headers = { ...this.headers(host), ...req.headers };
      const ex: Exchange = { method: req.method, url: req.url, headers, what };
      if (req.body) ex.body = req.body;
      if (req.signal) ex.signal = req.signal;
      const res = await this.follow(host, ex);
      const body = await this.readBody(res, { what, limit: MAX_TOKEN_RESPONSE_BYTES, ...(req.signal ? { signal: req.signal } : {}) });
      return { status: res.statusCode ?? 0, headers: res.headers, body };
    };
  }

  /**
   * A registry request with authorization: credentials up front when this endpoint challenged
   * before, otherwise after its first 401, and one retry only. 401 or 403 at the end is
   * Unauthenticated; every other status is the caller's to judge.
   */
  private async send(host: RegistryHost, ex: Exchange, source: Pick<RegistrySource, "repository" | "ref" | "creds">): Promise<IncomingMessage> {
    const ctx: AuthContext = {
      endpoint: `${host.url.origin}${host.url.pathname}`,
      scopes: [pullScope(source.repository)],
      http: this.authHttp(host),
    };
    if (source.creds) ctx.creds = source.creds;
    if (ex.signal) ctx.signal = ex.signal;
    let authorization = await this.auth.authorize(ctx);
    for (let attempt = 0; ; attempt++) {
      const headers = { ...ex.headers };
      if (authorization !== undefined) headers.Authorization = authorization;
      const res = await this.follow(host, { ...ex, headers });
      if (res.statusCode !== 401 && res.statusCode !== 403) return res;
      const summary = await this.errorBody(res, ex);
      if (res.statusCode === 401 && attempt === 0) {
        const challenges = res.headersDistinct["www-authenticate"] ?? [];
        const next = await this.auth.challenged(ctx, challenges, authorization);
        if (next !== undefined) {
          authorization = next;
          continue;
        }
      }
      const given = source.creds !== undefined && Object.values(source.creds).some((v) => v !== undefined && v !== "");
      throw new UnauthenticatedError(
        `${ex.what}: ${res.statusCode === 403 ? "access denied" : "authentication required"} to ${source.repository}` +
          `${summary ? ` (${summary})` : ""}; ` +
          (given ? "the credentials given were not accepted" : "no credentials were given; the repository may also not exist"),
      );
    }
  }

  private async readBody(res: IncomingMessage, o: { what: string; limit: number; expected?: number; signal?: AbortSignal }): Promise<Buffer> {
    const body = new GuardedBody(res, {
      stallMs: this.stallTimeoutMs,
      skip: 0,
      what: o.what,
      ...(o.expected !== undefined ? { expected: o.expected } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    });
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of body) {
      total += (chunk as Buffer).length;
      if (total > o.limit) {
        body.destroy();
        throw new ResourceExhaustedError(`${o.what}: more than ${o.limit} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
  }

  /** The registry's explanation of a failed request, or "" when it gave none. */
  private async errorBody(res: IncomingMessage, ex: Pick<Exchange, "what" | "signal" | "method">): Promise<string> {
    if (ex.method === "HEAD") {
      res.resume();
      return "";
    }
    try {
      return errorSummary(await this.readBody(res, { what: ex.what, limit: MAX_ERROR_BODY_BYTES, ...(ex.signal ? { signal: ex.signal } : {}) }));
    } catch {
      res.destroy();
      return "";
    }
  }

  private async statusError(res: IncomingMessage, method: Exchange["method"], what: string, subject: string): Promise<PodshimError> {
    const status = res.statusCode ?? 0;
    const summary = await this.errorBody(res, { what, method });
    const detail = `HTTP ${status}${summary ? `: ${summary}` : ""}`;
    if (status === 404) return new NotFoundError(`${what}: ${subject} not found (${detail})`);
    if (status === 429) return new ResourceExhaustedError(`${what}: the registry is rate-limiting (${detail})`);
    if (status >= 500) return new UnavailableError(`${what}: the registry failed (${detail})`);
    return new InternalError(`${what}: unexpected ${detail}`);
  }
}

function schema1(name: string, from: string): PodshimError {
  return new UnimplementedError(
    `image "${name}" at ${from} is a Docker schema 1 manifest, which podshim does not pull; push it again as a Docker schema 2 or OCI image`,
  );
}

function tooLarge(name: string, from: string, size: number | undefined): PodshimError {
  return new ResourceExhaustedError(
    `manifest of "${name}" at ${from} is ${size === undefined ? "more" : `${size} bytes, more`} than the ${MAX_MANIFEST_BYTES} bytes podshim accepts`,
  );
}
