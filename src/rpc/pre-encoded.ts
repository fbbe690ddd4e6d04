// Responses a handler has already put on the wire format. The kubelet lists every pod and
// container every second; at a full node re-encoding hundreds of unchanged messages each
// time is most of the call's cost. A handler may answer a PreEncoded instead of an object:
// the service's serializers (server/pre-encoded.ts) pass its bytes through untouched.
export class PreEncoded {
  constructor(readonly bytes: Buffer) {}
}

/** An encoded message: a writer's finish() result (ts-proto's encode(...).finish()). */
export type Encoded = Uint8Array;

/**
 * A message made of one repeated message field: for each item the field's tag, the item's
 * length and its bytes. (Wire type 2, length-delimited, is the same for every message field.)
 */
export function repeatedMessageField(fieldNumber: number, items: readonly Encoded[]): Buffer {
  const tag = (fieldNumber << 3) | 2;
  let size = 0;
  for (const item of items) size += varintSize(tag) + varintSize(item.length) + item.length;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const item of items) {
    at = writeVarint(out, at, tag);
    at = writeVarint(out, at, item.length);
    out.set(item, at);
    at += item.length;
  }
  return out;
}

/**
 * Items split into consecutive batches of at most `maxBytes` encoded each (an item larger
 * than that travels alone), for the Stream* list calls: no message nears the 16 MiB limit.
 */
export function batchesOf(items: readonly Encoded[], maxBytes: number): Encoded[][] {
  const batches: Encoded[][] = [];
  let current: Encoded[] = [];
  let size = 0;
  for (const item of items) {
    const cost = item.length + 10;
    if (current.length > 0 && size + cost > maxBytes) {
      batches.push(current);
      current = [];
      size = 0;
    }
    current.push(item);
    size += cost;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}
