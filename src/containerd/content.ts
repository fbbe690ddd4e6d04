import { ContentService, WriteAction, WriteContentRequest, type Info, type WriteContentResponse } from "../gen/containerd/services/content/v1/content.js";
import { isAlreadyExists, isNotFound } from "../errors/errors.js";
import type { CallOptions, ContainerdBidi, ContainerdClient } from "./client.js";

// containerd's content service takes writes in messages; 4 MiB keeps each well under the
// 16 MiB containerd accepts while keeping per-message overhead negligible.
const CHUNK = 4 * 1024 * 1024;

export interface BlobRef {
  digest: string;
  size: number;
}

/** Produces the bytes of a blob from `offset` on (a resumed write starts past 0). */
export type BlobSource = (offset: number) => Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>>;

/** containerd's content store: blobs by digest, verified by containerd when committed. */
export class ContentStore {
  constructor(private readonly client: ContainerdClient) {}

  async info(digest: string, opts: CallOptions = {}): Promise<Info | undefined> {
    try {
      return (await this.client.call(ContentService.info, { digest }, opts)).info;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async read(digest: string, opts: CallOptions = {}): Promise<Buffer> {
    const stream = this.client.serverStream(ContentService.read, { digest, offset: 0n, size: 0n }, opts);
    const parts: Buffer[] = [];
    try {
      for await (const msg of stream) parts.push((msg as { data: Buffer }).data);
    } catch (err) {
      throw this.client.streamError(ContentService.read, err);
    }
    return Buffer.concat(parts);
  }

  /** Streams `size` bytes of a committed blob from `offset` (size 0: to the end). */
  async *readStream(digest: string, offset: number, size: number, opts: CallOptions = {}): AsyncIterable<Buffer> {
    const stream = this.client.serverStream(ContentService.read, { digest, offset: BigInt(offset), size: BigInt(size) }, opts);
    try {
      for await (const msg of stream) yield (msg as { data: Buffer }).data;
    } catch (err) {
      throw this.client.streamError(ContentService.read, err);
    } finally {
      stream.cancel();
    }
  }

  /** Replaces the given labels (others stay). */
  async setLabels(digest: string, labels: Record<string, string>, opts: CallOptions = {}): Promise<void> {
    await this.client.call(ContentService.update, {
      info: { digest, size: 0n, createdAt: undefined, updatedAt: undefined, labels },
      updateMask: Object.keys(labels).map((k) => `labels.${k}`),
    }, opts);
  }

  async delete(digest: string, opts: CallOptions = {}): Promise<void> {
    try {
      await this.client.call(ContentService.delete, { digest }, opts);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async abort(ref: string, opts: CallOptions = {}): Promise<void> {
    try {
      await this.client.call(ContentService.abort, { ref }, opts);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * Writes a small blob held in memory in one message: its data, committed with its expected
   * digest, size and labels, one round trip (a write at offset 0 also empties what an earlier
   * attempt left under the ref). Returns false when the content already existed: its labels
   * and leases are then the caller's to update.
   */
  async put(ref: string, blob: BlobRef, data: Buffer, labels: Record<string, string>, opts: CallOptions = {}): Promise<boolean> {
    const call = this.client.bidi(ContentService.write, opts);
    try {
      await call.send({ action: WriteAction.COMMIT, ref, total: BigInt(blob.size), expected: blob.digest, offset: 0n, data, labels });
      call.end();
      await readToEnd(call);
      return true;
    } catch (err) {
      await this.abandon(call, ref, err, opts);
      return false;
    }
  }

  /**
   * Writes a blob under an ingest ref and commits it with its expected digest and size, so
   * containerd refuses anything that is not exactly the blob. A ref that already holds part of
   * the blob (an interrupted earlier attempt) resumes where it stopped. Content that already
   * exists counts as written. On failure the partial ingest is aborted. The labels are needed
   * only at the commit, so they may still be on their way (a layer's uncompressed digest comes
   * with the image config, fetched while the layer downloads).
   * Returns the number of bytes this call transferred.
   */
  async write(ref: string, blob: BlobRef, source: BlobSource, labels: Record<string, string> | Promise<Record<string, string>>, opts: CallOptions = {}): Promise<number> {
    const call = this.client.bidi(ContentService.write, opts);
    const request = (req: Partial<WriteContentRequest>): WriteContentRequest =>
      ({ action: WriteAction.STAT, ref, total: 0n, expected: "", offset: 0n, data: EMPTY, labels: {}, ...req });
    let sent = 0;
    // The source opens from 0 while containerd answers the STAT (a download's first bytes and
    // containerd's answer each take a round trip): nearly every write is a fresh one. An
    // ingest that holds part of the blob already is read from where it stopped instead.
    let early: Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>> | undefined = source(0);
    early.catch(() => undefined);
    try {
      await call.send(request({ action: WriteAction.STAT, total: BigInt(blob.size), expected: blob.digest }));
      const stat = await call.next();
      if (!stat) throw new Error("containerd closed the content write before answering");
      let offset = Number(stat.offset);
      if (offset > blob.size) offset = 0;
      const opened = offset === 0 && blob.size > 0 ? early : undefined;
      if (!opened) await discard(early);
      early = undefined;

      // Every request is answered; read the answers as they come so nothing piles up.
      const drainAnswers = readToEnd(call);
      drainAnswers.catch(() => undefined);

      if (offset < blob.size) {
        // Sources deliver small pieces (an HTTP body comes in ~64 KiB) and containerd answers
        // every message, so pieces are gathered into CHUNK-sized messages. The pieces
        // themselves go out as they are: the message is its encoded header (action, ref,
        // offset, then the data field's tag and length) followed by them.
        let pending: Uint8Array[] = [];
        let pendingBytes = 0;
        const flush = async () => {
          if (pendingBytes === 0) return;
          const head = WriteContentRequest.encode(request({ action: WriteAction.WRITE, offset: BigInt(offset) }))
            .uint32(DATA_FIELD_TAG).uint32(pendingBytes).finish();
          const parts = [head, ...pending];
          const length = pendingBytes;
          pending = [];
          pendingBytes = 0;
          await call.sendEncoded(parts);
          offset += length;
          sent += length;
        };
        for await (const piece of await (opened ?? source(offset))) {
          for (let at = 0; at < piece.length; ) {
            const take = Math.min(CHUNK - pendingBytes, piece.length - at);
            pending.push(piece.subarray(at, at + take));
            pendingBytes += take;
            at += take;
            if (pendingBytes >= CHUNK) await flush();
          }
        }
        await flush();
      }
      await call.send(request({ action: WriteAction.COMMIT, offset: BigInt(offset), total: BigInt(blob.size), expected: blob.digest, labels: await labels }));
      call.end();
      await drainAnswers;
      return sent;
    } catch (err) {
      if (early) await discard(early);
      await this.abandon(call, ref, err, opts);
      return sent;
    }
  }

  /**
   * Ends a write that failed: the call is cancelled, and content that exists already is no
   * failure (this resolves). Anything else aborts the ingest and is thrown as a typed error.
   */
  private async abandon(call: ContentWriteCall, ref: string, err: unknown, opts: CallOptions): Promise<void> {
    call.cancel();
    const typed = this.client.streamError(ContentService.write, err);
    if (isAlreadyExists(typed)) return;
    await this.abort(ref, { ...opts, signal: undefined }).catch(() => undefined);
    throw typed;
  }
}

type ContentWriteCall = ContainerdBidi<WriteContentRequest, WriteContentResponse>;

/** Reads a write's answers until containerd ends the call (it answers every request). */
async function readToEnd(call: ContentWriteCall): Promise<void> {
  while ((await call.next()) !== undefined);
}

const EMPTY = Buffer.alloc(0);
/** WriteContentRequest.data is field 6, length-delimited: (6 << 3) | 2. */
const DATA_FIELD_TAG = 50;

/** Closes a source that was opened and will not be read (an HTTP body is released). */
async function discard(source: Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>>): Promise<void> {
  try {
    const it = await source;
    if (Symbol.asyncIterator in it) await it[Symbol.asyncIterator]().return?.();
  } catch {
    // it failed to open: nothing to close
  }
}
