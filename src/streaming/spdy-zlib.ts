// SPDY/3 name/value header blocks: the block layout and its zlib compression.
//
// Each direction of a SPDY connection carries ONE zlib stream for every header block it sends,
// seeded with a fixed dictionary and never reset; every block ends on a sync flush, so a block
// always ends on a byte boundary with no bits pending. That last fact is what lets this module
// stay synchronous with Node's one-shot zlib calls: at a sync-flush boundary the whole state of
// the stream is just its last 32 KiB of uncompressed bytes (the window). So each block is
// (de)compressed as raw deflate primed with that window as its dictionary, and the wire sees one
// continuous zlib stream. Node's streaming zlib objects would need an asynchronous flush per
// block, which would force the frame parser to serialise everything behind a promise chain.
import { constants as zlibConstants, deflateRawSync, inflateRawSync } from "node:zlib";
import { SpdyProtocolError } from "./spdy-error.js";

/** The deflate window: 15 bits. Back-references never reach further back than this. */
const WINDOW_SIZE = 32 * 1024;

/**
 * The SPDY/3 header compression dictionary, transcribed from the SPDY Protocol Draft 3,
 * section 2.6.10.1 ("Compression"). The draft lists it as 1423 raw bytes; they are a run of
 * length-prefixed (32-bit big-endian) header names and common values, then a plain tail of
 * status codes, reason phrases, dates and media types. It is rebuilt here from those two parts;
 * the unit tests pin the result to the draft's length, its Adler-32 (the DICTID peers put in
 * the zlib header) and the SHA-256 docs/streaming.md records.
 */
export const SPDY_DICTIONARY: Buffer = buildDictionary(
  [
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
    "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
    "cache-control", "connection", "content-base", "content-encoding", "content-language",
    "content-length", "content-location", "content-md5", "content-range", "content-type", "date",
    "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since", "if-none-match",
    "if-range", "if-unmodified-since", "last-modified", "location", "max-forwards", "pragma",
    "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after", "server", "te",
    "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
    "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url", "public",
    "set-cookie", "keep-alive", "origin",
  ],
  "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505" +
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request" +
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented" +
    "503 Service Unavailable" +
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT" +
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml," +
    "text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8" +
    "charset=iso-8859-1,utf-,*,enq=0.",
);

/** Adler-32 of SPDY_DICTIONARY: the DICTID a zlib header names when it asks for the dictionary. */
export const SPDY_DICTIONARY_ID = 0xe3c6a7c2;

function buildDictionary(words: readonly string[], tail: string): Buffer {
  const parts: Buffer[] = [];
  for (const word of words) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(word.length);
    parts.push(len, Buffer.from(word, "latin1"));
  }
  parts.push(Buffer.from(tail, "latin1"));
  return Buffer.concat(parts);
}

// The zlib (RFC 1950) header our compressor opens its stream with: CMF 0x78 (deflate, 32 KiB
// window), FLG with FDICT set and FLEVEL 2, then the dictionary's Adler-32. Peers (Go's
// compress/zlib in spdystream) check the DICTID against the dictionary they hold.
const ZLIB_HEADER = Buffer.from([0x78, 0xbb, 0xe3, 0xc6, 0xa7, 0xc2]);
const FDICT = 0x20;

function slideWindow(window: Buffer, more: Buffer): Buffer {
  if (more.length >= WINDOW_SIZE) return Buffer.from(more.subarray(more.length - WINDOW_SIZE));
  const total = window.length + more.length;
  if (total <= WINDOW_SIZE) return Buffer.concat([window, more], total);
  return Buffer.concat([window.subarray(total - WINDOW_SIZE), more], WINDOW_SIZE);
}

/** The sending side's header zlib stream: one per connection direction, never reset. */
export class HeaderCompressor {
  private window: Buffer = SPDY_DICTIONARY;
  private started = false;

  /** Compresses one header block; the result ends on a sync flush, as the peer requires. */
  compress(block: Buffer): Buffer {
    const body = deflateRawSync(block, {
      dictionary: this.window,
      finishFlush: zlibConstants.Z_SYNC_FLUSH,
      windowBits: 15,
    });
    this.window = slideWindow(this.window, block);
    if (this.started) return body;
    this.started = true;
    return Buffer.concat([ZLIB_HEADER, body]);
  }
}

/** The receiving side's header zlib stream: every incoming block goes through it in frame order. */
export class HeaderDecompressor {
  private window: Buffer = SPDY_DICTIONARY;
  private started = false;

  /** @param maxBlockBytes the largest uncompressed block accepted (a zlib bomb is a protocol error) */
  constructor(private readonly maxBlockBytes: number) {}

  decompress(data: Buffer): Buffer {
    // A frame without a block carries no headers and leaves the stream as it was.
    if (data.length === 0) return Buffer.alloc(0);
    let body = data;
    if (!this.started) {
      body = this.skipZlibHeader(data);
      this.started = true;
    }
    if (body.length === 0) return Buffer.alloc(0);
    let out: Buffer;
    try {
      out = inflateRawSync(body, {
        dictionary: this.window,
        // The stream never ends: without this Node reports the missing final block as an error.
        finishFlush: zlibConstants.Z_SYNC_FLUSH,
        maxOutputLength: this.maxBlockBytes,
      });
    } catch (err) {
      throw new SpdyProtocolError(`corrupt compressed header block: ${(err as Error).message}`, { cause: err });
    }
    this.window = slideWindow(this.window, out);
    return out;
  }

  private skipZlibHeader(data: Buffer): Buffer {
    if (data.length < 2) throw new SpdyProtocolError("header block too short for a zlib header");
    const cmf = data[0]!;
    const flg = data[1]!;
    if ((cmf & 0x0f) !== 8 || (cmf >> 4) > 7 || ((cmf << 8) | flg) % 31 !== 0) {
      throw new SpdyProtocolError("header block does not start a zlib stream");
    }
    if ((flg & FDICT) === 0) return data.subarray(2);
    if (data.length < 6) throw new SpdyProtocolError("header block too short for a zlib dictionary id");
    const dictId = data.readUInt32BE(2);
    if (dictId !== SPDY_DICTIONARY_ID) {
      throw new SpdyProtocolError(`header zlib stream wants dictionary ${dictId.toString(16)}, not SPDY/3's`);
    }
    return data.subarray(6);
  }
}

/** Header values as callers give them: several values for one name as an array. */
export type HeaderInput = Readonly<Record<string, string | readonly string[]>>;

/**
 * Serialises a header block (uncompressed): 32-bit pair count, then per pair a 32-bit length
 * and the name, a 32-bit length and the value. Names go out lowercased (spdystream rejects the
 * whole connection otherwise); several values for one name are joined with NUL, as SPDY/3 wants.
 */
export function encodeHeaderBlock(headers: HeaderInput): Buffer {
  const merged = new Map<string, string[]>();
  for (const [name, value] of Object.entries(headers)) {
    const key = name.toLowerCase();
    const values = typeof value === "string" ? [value] : [...value];
    const existing = merged.get(key);
    if (existing) existing.push(...values);
    else merged.set(key, values);
  }
  const parts: Buffer[] = [u32(merged.size)];
  for (const [name, values] of merged) {
    const n = Buffer.from(name, "utf8");
    const v = Buffer.from(values.join("\0"), "utf8");
    parts.push(u32(n.length), n, u32(v.length), v);
  }
  return Buffer.concat(parts);
}

/** The most pairs one block may carry; spdystream applies the same limit. */
const MAX_HEADER_PAIRS = 1000;

/**
 * Parses an uncompressed header block. Names are lowercased, NUL-separated values joined with
 * "," (the form HTTP uses for repeated headers), and a repeated name is merged the same way.
 * The block must be consumed exactly: anything else means the zlib contexts disagree.
 */
export function decodeHeaderBlock(block: Buffer): Record<string, string> {
  // No prototype: a header called "__proto__" or "constructor" must stay a plain entry.
  const headers = Object.create(null) as Record<string, string>;
  if (block.length === 0) return headers;
  let off = 0;
  const need = (n: number): void => {
    if (off + n > block.length) throw new SpdyProtocolError("header block is shorter than its lengths say");
  };
  need(4);
  const count = block.readUInt32BE(off);
  off += 4;
  if (count > MAX_HEADER_PAIRS) throw new SpdyProtocolError(`header block has ${count} pairs`);
  for (let i = 0; i < count; i++) {
    need(4);
    const nameLen = block.readUInt32BE(off);
    off += 4;
    need(nameLen);
    const name = block.toString("utf8", off, off + nameLen).toLowerCase();
    off += nameLen;
    need(4);
    const valueLen = block.readUInt32BE(off);
    off += 4;
    need(valueLen);
    const value = block.toString("utf8", off, off + valueLen).split("\0").join(",");
    off += valueLen;
    if (name.length === 0) throw new SpdyProtocolError("header block has an empty name");
    const prior = headers[name];
    headers[name] = prior === undefined ? value : `${prior},${value}`;
  }
  if (off !== block.length) throw new SpdyProtocolError("header block is longer than its pairs");
  return headers;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
