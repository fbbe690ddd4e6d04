// Response bodies: a stream guarded against stalls and against more or fewer bytes than
// expected, buffered reads with a limit, and the size and digest checks on what arrives.
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { Readable, Transform } from "node:stream";
import type { TransformCallback } from "node:stream";
import {
  DeadlineExceededError, InternalError, ResourceExhaustedError, UnavailableError, UnimplementedError,
} from "../errors/errors.js";
import type { PodshimError } from "../errors/errors.js";
import { parseDigest } from "../distribution/reference.js";
import type { Descriptor } from "../distribution/descriptor.js";
import { abortError } from "./abort.js";

const HASHES: Record<string, string> = { sha256: "sha256", sha384: "sha384", sha512: "sha512" };

export interface GuardedBodyOptions {
  stallMs: number;
  /** Bytes to drop from the front (a server that ignored Range). */
  skip: number;
  expected?: number;
  /** "download of sha256:... from http://host" */
  what: string;
  signal?: AbortSignal;
}

/**
 * A response body as a stream with a stall timer: the timer runs only while the consumer wants
 * data and none arrives, so a slow consumer is never mistaken for a stalled server. It can skip
 * a prefix (a server that ignored Range) and checks the byte count against what is expected.
 */
export class GuardedBody extends Readable {
  private timer: NodeJS.Timeout | undefined;
  private received = 0;
  private toSkip: number;
  private ended = false;
  private readonly onAbort: (() => void) | undefined;

  constructor(
    private readonly res: IncomingMessage,
    private readonly o: GuardedBodyOptions,
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

export interface ReadBodyOptions {
  stallMs: number;
  what: string;
  /** More than this many bytes is ResourceExhausted. */
  limit: number;
  expected?: number;
  signal?: AbortSignal;
}

/** A whole body in memory, through GuardedBody. */
export async function readBody(res: IncomingMessage, o: ReadBodyOptions): Promise<Buffer> {
  const body = new GuardedBody(res, {
    stallMs: o.stallMs,
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

export type ReadVerifiedOptions = Omit<ReadBodyOptions, "expected"> & { from: string };

/**
 * A body that must be exactly `desc`: a Content-Length other than its size fails before
 * reading, and the bytes read must have its size and digest.
 */
export async function readVerified(
  res: IncomingMessage,
  desc: Pick<Descriptor, "digest" | "size">,
  o: ReadVerifiedOptions,
): Promise<Buffer> {
  const announced = contentLength(res);
  if (announced !== undefined && announced !== desc.size) {
    res.destroy();
    throw new InternalError(`size mismatch for ${desc.digest} from ${o.from}: it announces ${announced} bytes, expected ${desc.size}`);
  }
  const { from, ...read } = o;
  const body = await readBody(res, { ...read, expected: desc.size });
  const actual = digestOf(parseDigest(desc.digest).algorithm, body);
  if (actual !== desc.digest) throw digestMismatch(desc.digest, from, actual);
  return body;
}

/**
 * How many bytes of a blob response to drop so that it starts at `offset`: all of them before
 * `offset` when the server ignored Range (200), none for the asked-for 206. undefined when the
 * status is not one a blob download can use.
 */
export function rangeSkip(res: IncomingMessage, offset: number, what: string): number | undefined {
  if (res.statusCode === 200) return offset;
  if (res.statusCode !== 206 || offset === 0) return undefined;
  const range = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(res.headers["content-range"] ?? "");
  if (!range || Number(range[1]) !== offset) {
    res.destroy();
    throw new InternalError(`${what}: asked for bytes from ${offset}, got range ${JSON.stringify(res.headers["content-range"] ?? "")}`);
  }
  return 0;
}

export function contentLength(res: IncomingMessage): number | undefined {
  const raw = res.headers["content-length"];
  if (raw === undefined || !/^\d+$/.test(raw)) return undefined;
  return Number(raw);
}

/** The node:crypto hash for a digest algorithm; Unimplemented for one podshim cannot check. */
export function hashOf(algorithm: string): string {
  const name = HASHES[algorithm];
  if (!name) throw new UnimplementedError(`digest algorithm ${algorithm} is not supported (sha256, sha384, sha512 are)`);
  return name;
}

/** "<algorithm>:<hex>" of `bytes`. */
export function digestOf(algorithm: string, bytes: Buffer): string {
  return `${algorithm}:${createHash(hashOf(algorithm)).update(bytes).digest("hex")}`;
}

export function digestMismatch(expected: string, from: string, actual: string): PodshimError {
  // InternalError: the bytes are not what the descriptor names, which is neither the caller's
  // fault (InvalidArgument) nor a transient condition worth a blind retry (Unavailable).
  return new InternalError(`digest mismatch for ${expected} from ${from}: got ${actual}`);
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
