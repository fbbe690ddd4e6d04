// Each record's encoded list item, kept while the record lives and its changing part (the
// version: a container's or sandbox's state) stays the same. A kubelet lists everything every
// second; at a full node almost nothing changed since the last time.
import type { Encoded } from "../server/pre-encoded.js";

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
