// ContentStore.write against the bed's containerd: a fresh write reads its source from 0 (opened
// while containerd answers the STAT), a write that resumes an interrupted ingest reads from
// where that one stopped and closes the source it opened early, and content that exists
// already is not read at all. ContentStore.put: one message commits a blob held in memory,
// over whatever an earlier attempt left under its ref, and says when it existed already.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createHash, randomBytes } from "node:crypto";
import { ContainerdClient } from "../../src/containerd/client.js";
import { ContentStore } from "../../src/containerd/content.js";
import { ContentService, WriteAction } from "../../src/gen/containerd/services/content/v1/content.js";
import { LeasesService } from "../../src/gen/containerd/services/leases/v1/leases.js";
import { createLogger } from "../../src/logger/logger.js";

const bed = inject("bed");
const NAMESPACE = `t-content-${randomBytes(3).toString("hex")}`;
let client: ContainerdClient;
let content: ContentStore;
/** A lease holds what the tests write: content nothing refers to is the garbage collector's
 * to take at any moment, between a write and the next step of a test too. */
const held = { lease: `t-content-${randomBytes(4).toString("hex")}` };

/** A source that records where it was opened from, whether it was read to the end or closed
 * early, and can fail after `failAfter` bytes (an interrupted download). */
function recordingSource(data: Buffer, failAfter?: number) {
  const opened: Array<{ offset: number; closed: boolean; finished: boolean }> = [];
  const source = async (offset: number): Promise<AsyncIterable<Uint8Array>> => {
    const entry = { offset, closed: false, finished: false };
    opened.push(entry);
    async function* pieces() {
      for (let at = offset; at < data.length; at += 64 * 1024) {
        if (failAfter !== undefined && at >= failAfter) throw new Error("connection reset");
        yield data.subarray(at, Math.min(at + 64 * 1024, data.length));
      }
      entry.finished = true;
    }
    const gen = pieces();
    // return() is what closes a source that is left unread (an HTTP body let go).
    return {
      [Symbol.asyncIterator]: () => ({
        next: () => gen.next(),
        return: async () => {
          entry.closed = true;
          return gen.return(undefined);
        },
      }),
    };
  };
  return { source, opened };
}

/** What a writer that died leaves: `bytes` written under `ref` for `blob`, then the stream
 * dropped without an abort. */
async function leaveIngest(ref: string, blob: { digest: string; size: number }, bytes: Buffer): Promise<void> {
  const call = client.bidi(ContentService.write, held);
  await call.send({ action: WriteAction.WRITE, ref, total: BigInt(blob.size), expected: blob.digest, offset: 0n, data: bytes, labels: {} });
  await call.next();
  call.cancel();
}

const blobOf = (data: Buffer) => ({ digest: `sha256:${createHash("sha256").update(data).digest("hex")}`, size: data.length });

beforeAll(async () => {
  client = new ContainerdClient({ socket: bed.containerdSocket, namespace: NAMESPACE, logger: createLogger("silent") });
  content = new ContentStore(client);
  await client.call(LeasesService.create, { id: held.lease, labels: {} });
});

afterAll(async () => {
  await client?.call(LeasesService.delete, { id: held.lease, sync: true }).catch(() => undefined);
  client?.close();
});

describe("ContentStore.write", () => {
  it("writes a fresh blob from offset 0 and commits it with its labels", async () => {
    const data = randomBytes(300 * 1024);
    const blob = blobOf(data);
    const { source, opened } = recordingSource(data);
    try {
      expect(await content.write(`t-${blob.digest}`, blob, source, { "podshim.test/kind": "fresh" }, held)).toBe(data.length);
      expect(opened).toEqual([{ offset: 0, closed: false, finished: true }]);
      expect((await content.read(blob.digest)).equals(data)).toBe(true);
      expect((await content.info(blob.digest))?.labels).toMatchObject({ "podshim.test/kind": "fresh" });
    } finally {
      await content.delete(blob.digest);
    }
  });

  it("starts afresh after a failed write (its ingest is aborted)", async () => {
    const data = randomBytes(6 * 1024 * 1024);
    const blob = blobOf(data);
    const ref = `t-again-${randomBytes(4).toString("hex")}`;
    try {
      const first = recordingSource(data, 5 * 1024 * 1024);
      await expect(content.write(ref, blob, first.source, {}, held)).rejects.toThrow(/connection reset/);
      const again = recordingSource(data);
      expect(await content.write(ref, blob, again.source, {}, held)).toBe(data.length);
      expect(again.opened).toEqual([{ offset: 0, closed: false, finished: true }]);
      expect((await content.read(blob.digest)).equals(data)).toBe(true);
    } finally {
      await content.delete(blob.digest);
    }
  });

  it("resumes an ingest left half-written (a podshim that died mid-write) from where it stopped", async () => {
    const data = randomBytes(2 * 1024 * 1024);
    const blob = blobOf(data);
    const ref = `t-resume-${randomBytes(4).toString("hex")}`;
    const half = 1024 * 1024;
    try {
      // Half the blob written under the ref, then the stream dropped without an abort.
      await leaveIngest(ref, blob, data.subarray(0, half));

      const { source, opened } = recordingSource(data);
      expect(await content.write(ref, blob, source, {}, held)).toBe(data.length - half);
      // Opened from 0 beside the STAT and let go unread, then opened where the ingest stopped.
      expect(opened).toEqual([{ offset: 0, closed: true, finished: false }, { offset: half, closed: false, finished: true }]);
      expect((await content.read(blob.digest)).equals(data)).toBe(true);
    } finally {
      await content.delete(blob.digest);
      await content.abort(ref);
    }
  });

  it("counts content that exists as written without reading the source to the end", async () => {
    const data = randomBytes(64 * 1024);
    const blob = blobOf(data);
    try {
      await content.write(`t-${blob.digest}`, blob, recordingSource(data).source, {}, held);
      // A collection now (the lease keeps the blob; without it this is where it could go).
      const gc = `t-gc-${randomBytes(4).toString("hex")}`;
      await client.call(LeasesService.create, { id: gc, labels: {} });
      await client.call(LeasesService.delete, { id: gc, sync: true });
      const { source, opened } = recordingSource(data);
      expect(await content.write(`t2-${blob.digest}`, blob, source, {}, held)).toBe(0);
      // Opened beside the STAT, which containerd answered "already exists", then let go unread.
      expect(opened).toEqual([{ offset: 0, closed: true, finished: false }]);
    } finally {
      await content.delete(blob.digest);
    }
  });
});

describe("ContentStore.put", () => {
  it("commits a blob in one message with its labels, and says when it existed", async () => {
    const data = randomBytes(20 * 1024);
    const blob = blobOf(data);
    try {
      expect(await content.put(`t-put-${blob.digest}`, blob, data, { "podshim.test/kind": "put" }, held)).toBe(true);
      expect((await content.info(blob.digest))?.labels).toEqual({ "podshim.test/kind": "put" });
      expect((await content.read(blob.digest)).equals(data)).toBe(true);
      expect(await content.put(`t-put2-${blob.digest}`, blob, data, {}, held)).toBe(false);
    } finally {
      await content.delete(blob.digest);
    }
  });

  it("replaces what an earlier attempt left under the ref, and refuses bytes that are not the blob", async () => {
    const data = randomBytes(200 * 1024);
    const blob = blobOf(data);
    const ref = `t-put-over-${randomBytes(4).toString("hex")}`;
    try {
      // Garbage left under the ref by a write that died.
      await leaveIngest(ref, blob, randomBytes(1000));

      expect(await content.put(ref, blob, data, {}, held)).toBe(true);
      expect((await content.read(blob.digest)).equals(data)).toBe(true);

      // Bytes that are not the blob they are said to be: refused, nothing committed.
      const other = blobOf(randomBytes(1000));
      await expect(content.put(`${ref}-wrong`, other, randomBytes(1000), {}, held)).rejects.toThrow(/digest/i);
      expect(await content.info(other.digest)).toBeUndefined();
    } finally {
      await content.delete(blob.digest);
      await content.abort(ref);
    }
  });
});
