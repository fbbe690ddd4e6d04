// Each record's encoded list item, kept while the record lives and its changing part (the
// version: a container's or sandbox's state) stays the same. A kubelet lists everything every
// second; at a full node almost nothing changed since the last time.
import { repeatedMessageField, type Encoded } from "../rpc/pre-encoded.js";

export class EncodedItems<R extends object> {
  private readonly cache = new WeakMap<R, { version: unknown; bytes: Encoded }>();

  constructor(
    private readonly encode: (rec: R) => Encoded,
    private readonly version: (rec: R) => unknown,
  ) {}

  of(rec: R): Encoded {
    const version = this.version(rec);
    const hit = this.cache.get(rec);
    if (hit && hit.version === version) return hit.bytes;
    const bytes = this.encode(rec);
    this.cache.set(rec, { version, bytes });
    return bytes;
  }
}

/**
 * The last list answer built from encoded items: when a call selects exactly the same items
 * (the same encodings, so nothing changed) the same bytes are answered again. A kubelet's
 * relist then allocates nothing here, which matters more than the copy it saves: large
 * short-lived buffers are what drives V8 to full collections under frequent listing.
 */
export class LastAnswer {
  private items: readonly Encoded[] = [];
  private bytes: Buffer | undefined;

  constructor(private readonly fieldNumber: number) {}

  of(items: readonly Encoded[]): Buffer {
    if (this.bytes && sameItems(items, this.items)) return this.bytes;
    this.items = items;
    this.bytes = repeatedMessageField(this.fieldNumber, items);
    return this.bytes;
  }
}

function sameItems(a: readonly Encoded[], b: readonly Encoded[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
