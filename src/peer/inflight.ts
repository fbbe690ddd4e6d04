// Blobs this node is downloading right now, kept in memory as they arrive so the peer server
// can answer HEAD for them and stream them to other nodes before they are committed: nodes
// pulling the same new image at once read from the one that fetches it instead of all going
// upstream. The bytes are not verified yet when they are passed on; receivers verify every
// byte against the digest, as they do for any source.
import { randomBytes } from "node:crypto";
import { UnavailableError } from "../errors/errors.js";

/** Where an in-flight blob's bytes come from, as announced to peers: "claiming" while this node
 * is still deciding (it asks the peers a second time), then upstream or a peer. */
export type InFlightSource = "claiming" | "upstream" | "peer";

/** Larger blobs are fetched without being announced: their bytes are not held in memory. */
export const MAX_SHARED_BLOB_BYTES = 512 * 1024 * 1024;
/** Nor are more blobs once those held add up to this. */
export const MAX_SHARED_TOTAL_BYTES = 1024 * 1024 * 1024;

export class InFlightBlob {
  /** A random token: among nodes claiming a blob at once, the lowest goes upstream. */
  readonly claim = randomBytes(16).toString("hex");
  source: InFlightSource;
  private chunks: Buffer[] = [];
  private received = 0;
  private generation = 0;
  private failed = false;
  private done = false;
  private wake = new Set<() => void>();

  constructor(
    readonly digest: string,
    readonly size: number,
    source: InFlightSource,
  ) {
    this.source = source;
  }

  get length(): number {
    return this.received;
  }

  /** Every byte is here and the download succeeded. */
  get complete(): boolean {
    return this.done && !this.failed && this.received === this.size;
  }

  /** A new attempt writes from `offset`: bytes past it are dropped, and readers beyond it are
   * cut off (they were fed by the attempt that failed). */
  restart(offset: number): void {
    if (offset >= this.received) return;
    this.generation++;
    const keep: Buffer[] = [];
    let n = 0;
    for (const c of this.chunks) {
      if (n + c.length <= offset) {
        keep.push(c);
        n += c.length;
      } else {
        if (offset > n) keep.push(c.subarray(0, offset - n));
        n = offset;
        break;
      }
    }
    this.chunks = keep;
    this.received = n;
    this.notify();
  }

  append(chunk: Buffer): void {
    if (this.received + chunk.length > this.size) return;
    this.chunks.push(chunk);
    this.received += chunk.length;
    this.notify();
  }

  /** The download is over without the blob (readers fail), or done (readers finish from memory). */
  end(ok: boolean): void {
    // Done with fewer bytes than the blob (it was in the store already): readers cannot finish here.
    if (!ok || this.received < this.size) this.failed = true;
    this.done = true;
    this.notify();
  }

  /** Bytes from `offset` as they arrive, up to the blob's size; fails when the download does. */
  async *read(offset: number): AsyncIterable<Buffer> {
    const generation = this.generation;
    let pos = 0;
    let index = 0;
    while (pos < this.size) {
      if (this.failed || this.generation !== generation) throw new UnavailableError(`download of ${this.digest} stopped`);
      if (index < this.chunks.length) {
        const c = this.chunks[index++]!;
        const start = pos;
        pos += c.length;
        if (pos <= offset) continue;
        yield start < offset ? c.subarray(offset - start) : c;
        continue;
      }
      await new Promise<void>((resolve) => this.wake.add(resolve));
    }
  }

  private notify(): void {
    const waiting = this.wake;
    this.wake = new Set();
    for (const w of waiting) w();
  }
}

/** The in-flight blobs by digest. One download per digest is announced at a time. */
export class InFlightBlobs {
  private readonly blobs = new Map<string, InFlightBlob>();

  get(digest: string): InFlightBlob | undefined {
    return this.blobs.get(digest);
  }

  /** Announces a download, or undefined when one of the same digest already is (or it is too big). */
  begin(digest: string, size: number, source: InFlightSource): InFlightBlob | undefined {
    if (size > MAX_SHARED_BLOB_BYTES || this.blobs.has(digest)) return undefined;
    let held = 0;
    for (const b of this.blobs.values()) held += b.size;
    if (held + size > MAX_SHARED_TOTAL_BYTES) return undefined;
    const blob = new InFlightBlob(digest, size, source);
    this.blobs.set(digest, blob);
    return blob;
  }

  finish(blob: InFlightBlob, ok: boolean): void {
    blob.end(ok);
    if (this.blobs.get(blob.digest) === blob) this.blobs.delete(blob.digest);
  }

  /**
   * Ends a download that succeeded but keeps its bytes answerable for `ms`: a config is written
   * to the content store only when its whole pull is done, and peers pulling the same image
   * meanwhile would otherwise all fetch it upstream.
   */
  linger(blob: InFlightBlob, ms: number): void {
    blob.end(true);
    if (!blob.complete) return this.finish(blob, false);
    setTimeout(() => {
      if (this.blobs.get(blob.digest) === blob) this.blobs.delete(blob.digest);
    }, ms).unref();
  }

  get size(): number {
    return this.blobs.size;
  }
}
