// The CRI container log format, framing only: no I/O here. One record per line,
//   <RFC 3339 timestamp> <stdout|stderr> <F|P> <content>\n
// which kubelet (`kubectl logs`), crictl and the log rotator all read. Everything works on
// bytes: container output need not be UTF-8, and a chunk boundary may fall inside a
// multi-byte character, so nothing is ever decoded.

import { InvalidArgumentError } from "../errors/errors.js";

export const CriStream = { stdout: "stdout", stderr: "stderr" } as const;
export type CriStream = (typeof CriStream)[keyof typeof CriStream];

/** F: a full line, or the last piece of a split one. P: a piece that the reader joins to the
 * next record of the same stream, without a newline in between. */
export const CriTag = { full: "F", partial: "P" } as const;
export type CriTag = (typeof CriTag)[keyof typeof CriTag];

/** containerd's default max_container_log_line_size. */
export const DEFAULT_MAX_LINE_SIZE = 16384;

const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const NS_PER_MS = 1_000_000n;
const NS_PER_S = 1_000_000_000n;

// ---------------------------------------------------------------------------------------
// Timestamps

import { nowUnixNanos } from "../util/clock.js";
export { nowUnixNanos };

// Formatting the date part costs a Date; consecutive records almost always share the second.
let cachedSecond = -1n;
let cachedPrefix = "";

/**
 * Go's time.RFC3339Nano in UTC: "2026-08-23T10:15:02.1234Z". Trailing zeros of the fraction
 * are trimmed and a whole second has no fraction at all, exactly as containerd writes it.
 */
export function formatRfc3339Nano(epochNs: bigint): string {
  let sec = epochNs / NS_PER_S;
  let frac = epochNs % NS_PER_S;
  if (frac < 0n) {
    sec -= 1n;
    frac += NS_PER_S;
  }
  if (sec !== cachedSecond) {
    cachedPrefix = new Date(Number(sec) * 1000).toISOString().slice(0, 19);
    cachedSecond = sec;
  }
  if (frac === 0n) return `${cachedPrefix}Z`;
  return `${cachedPrefix}.${frac.toString().padStart(9, "0").replace(/0+$/, "")}Z`;
}

/** The timestamp for a record written now. */
export function criTimestamp(): string {
  return formatRfc3339Nano(nowUnixNanos());
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/**
 * Epoch nanoseconds of an RFC 3339 timestamp. Lenient like the Go readers: any fraction
 * length (digits past the ninth are dropped), `Z` or a numeric offset.
 */
export function parseRfc3339Nano(text: string): bigint {
  const m = RFC3339.exec(text);
  if (!m) throw new InvalidArgumentError(`not an RFC 3339 timestamp: ${JSON.stringify(text)}`);
  const [, y, mo, d, h, mi, s, fracText, , sign, oh, om] = m;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  const check = new Date(ms);
  // Date.UTC rolls "02-30" over into March and "24:00" into the next day; refuse them instead.
  const valid =
    !Number.isNaN(ms) &&
    check.getUTCMonth() === Number(mo) - 1 &&
    check.getUTCDate() === Number(d) &&
    check.getUTCHours() === Number(h) &&
    Number(mi) <= 59 &&
    Number(s) <= 59 &&
    (!sign || (Number(oh) <= 23 && Number(om) <= 59));
  if (!valid) {
    throw new InvalidArgumentError(`not a valid date and time: ${JSON.stringify(text)}`);
  }
  let ns = BigInt(ms) * NS_PER_MS;
  if (fracText) ns += BigInt(fracText.slice(0, 9).padEnd(9, "0"));
  if (sign) {
    const offsetNs = BigInt(Number(oh) * 3600 + Number(om) * 60) * NS_PER_S;
    ns += sign === "+" ? -offsetNs : offsetNs;
  }
  return ns;
}

// ---------------------------------------------------------------------------------------
// Writing records

/** One record, newline included. `content` may come in pieces (a line spread over reads). */
export function formatCriRecord(timestamp: string, stream: CriStream, tag: CriTag, content: Buffer | readonly Buffer[]): Buffer {
  const pieces = Buffer.isBuffer(content) ? [content] : content;
  const head = `${timestamp} ${stream} ${tag} `;
  let size = head.length + 1;
  for (const p of pieces) size += p.length;
  const out = Buffer.allocUnsafe(size);
  let at = out.write(head, 0, "latin1");
  for (const p of pieces) at += p.copy(out, at);
  out[at] = LF;
  return out;
}

export interface CriLineSplitterOptions {
  /** Longest content of one record in bytes; longer lines become P records. <= 0: no limit. */
  maxLineSize?: number;
  /** Timestamp source, for tests; criTimestamp by default. */
  now?: () => string;
}

/**
 * Turns one stream's output, in chunks cut anywhere, into records. Like containerd:
 * "\r\n" and "\n" end a line and are not part of it; a line whose content exceeds
 * maxLineSize is written as P records of exactly maxLineSize bytes, as soon as that many
 * bytes are known, followed by an F record of the rest; output that ends without a newline
 * is written as a P record at end of stream.
 */
export class CriLineSplitter {
  private readonly maxLineSize: number;
  private readonly now: () => string;
  // The line so far, as views on the chunks it came in (or a compact copy of them).
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private stamp: string | undefined;
  private readonly heads = new Map<CriTag, Buffer>();

  constructor(
    readonly stream: CriStream,
    opts: CriLineSplitterOptions = {},
  ) {
    this.maxLineSize = opts.maxLineSize ?? DEFAULT_MAX_LINE_SIZE;
    this.now = opts.now ?? criTimestamp;
  }

  /** Bytes held for a line that has not ended yet. */
  get pendingBytes(): number {
    return this.pendingLen;
  }

  /** Feeds one chunk; returns the records it completed, in order (often none). */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    this.newRead();
    let pos = 0;
    while (pos < chunk.length) {
      const nl = chunk.indexOf(LF, pos);
      if (nl === -1) {
        this.append(chunk.subarray(pos));
        this.emitOversize(out, true);
        this.compact(chunk);
        break;
      }
      if (this.pendingLen === 0) {
        // The common case, a whole line inside one read: straight from the chunk, no views.
        const end = nl > pos && chunk[nl - 1] === CR ? nl - 1 : nl;
        if (this.maxLineSize <= 0 || end - pos <= this.maxLineSize) {
          out.push(this.recordFrom(chunk, pos, end));
          pos = nl + 1;
          continue;
        }
      }
      this.append(chunk.subarray(pos, nl));
      // "\r\n" is one terminator, even when the "\r" came at the end of the previous chunk.
      if (this.lastByte() === CR) this.dropLastByte();
      this.emitOversize(out, false);
      out.push(this.record(CriTag.full, this.take(this.pendingLen)));
      pos = nl + 1;
    }
    return out;
  }

  /** End of stream: output left without a newline is a P record (as containerd writes it). */
  end(): Buffer[] {
    const out: Buffer[] = [];
    this.newRead();
    this.emitOversize(out, false);
    if (this.pendingLen > 0) out.push(this.record(CriTag.partial, this.take(this.pendingLen)));
    return out;
  }

  /**
   * "<timestamp> <stream> <tag> " for this read. One timestamp per read: the lines in it
   * arrived together, and taking the clock and formatting it once instead of per line is
   * most of the cost of framing a chatty container's short lines.
   */
  private head(tag: CriTag): Buffer {
    this.stamp ??= this.now();
    let h = this.heads.get(tag);
    if (!h) {
      h = Buffer.from(`${this.stamp} ${this.stream} ${tag} `, "latin1");
      this.heads.set(tag, h);
    }
    return h;
  }

  private record(tag: CriTag, content: Buffer[]): Buffer {
    const h = this.head(tag);
    let size = h.length + 1;
    for (const p of content) size += p.length;
    const out = Buffer.allocUnsafe(size);
    let at = h.copy(out, 0);
    for (const p of content) at += p.copy(out, at);
    out[at] = LF;
    return out;
  }

  /** An F record of chunk[start, end). */
  private recordFrom(chunk: Buffer, start: number, end: number): Buffer {
    const h = this.head(CriTag.full);
    const out = Buffer.allocUnsafe(h.length + end - start + 1);
    h.copy(out, 0);
    chunk.copy(out, h.length, start, end);
    out[out.length - 1] = LF;
    return out;
  }

  private newRead(): void {
    this.stamp = undefined;
    this.heads.clear();
  }

  /**
   * Writes P records while the line is longer than the limit. A "\r" at the very end of the
   * data so far may be the first half of "\r\n", so it does not count until the next chunk
   * says what it is: a line of exactly maxLineSize bytes ended by "\r\n" split across reads
   * stays one F record.
   */
  private emitOversize(out: Buffer[], mayEndInCr: boolean): void {
    if (this.maxLineSize <= 0) return;
    const held = mayEndInCr && this.lastByte() === CR ? 1 : 0;
    while (this.pendingLen - held > this.maxLineSize) {
      out.push(this.record(CriTag.partial, this.take(this.maxLineSize)));
    }
  }

  private append(piece: Buffer): void {
    if (piece.length === 0) return;
    this.pending.push(piece);
    this.pendingLen += piece.length;
  }

  /** Removes and returns the first n pending bytes. */
  private take(n: number): Buffer[] {
    const taken: Buffer[] = [];
    let need = n;
    while (need > 0) {
      const head = this.pending[0]!;
      if (head.length <= need) {
        taken.push(head);
        this.pending.shift();
        need -= head.length;
      } else {
        taken.push(head.subarray(0, need));
        this.pending[0] = head.subarray(need);
        need = 0;
      }
    }
    this.pendingLen -= n;
    return taken;
  }

  private lastByte(): number | undefined {
    const last = this.pending[this.pending.length - 1];
    return last?.[last.length - 1];
  }

  private dropLastByte(): void {
    const last = this.pending.pop()!;
    if (last.length > 1) this.pending.push(last.subarray(0, -1));
    this.pendingLen -= 1;
  }

  /**
   * A few bytes of an unfinished line would otherwise keep the whole read buffer (64 KiB)
   * alive until the line ends; with many quiet containers that adds up. With a line limit
   * the copy is at most maxLineSize bytes; without one, views are kept to avoid copying a
   * growing line over and over.
   */
  private compact(chunk: Buffer): void {
    if (this.maxLineSize <= 0 || this.pendingLen === 0 || this.pendingLen * 2 > chunk.length) return;
    this.pending = [Buffer.concat(this.pending, this.pendingLen)];
  }
}

// ---------------------------------------------------------------------------------------
// Reading records

export interface CriLogEntry {
  /** As written; `timeNs` is the same instant as epoch nanoseconds. */
  timestamp: string;
  timeNs: bigint;
  stream: CriStream;
  tag: CriTag;
  /** Without the record's newline. */
  content: Buffer;
}

function nextSpace(line: Buffer, from: number, what: string): number {
  const at = line.indexOf(SPACE, from);
  if (at === -1) throw new InvalidArgumentError(`CRI log record has no ${what}`);
  return at;
}

/**
 * Parses one record, with or without its newline. Several tags joined by ":" are allowed and
 * only the first counts, as in kubelet's reader; an unknown stream or first tag is refused.
 */
export function parseCriLogLine(record: Buffer | string): CriLogEntry {
  const line = typeof record === "string" ? Buffer.from(record, "utf8") : record;
  const end = line.length > 0 && line[line.length - 1] === LF ? line.length - 1 : line.length;
  const body = line.subarray(0, end);
  const s1 = nextSpace(body, 0, "timestamp");
  const s2 = nextSpace(body, s1 + 1, "stream");
  const s3 = nextSpace(body, s2 + 1, "tag");
  const timestamp = body.toString("latin1", 0, s1);
  const stream = body.toString("latin1", s1 + 1, s2);
  const tag = body.toString("latin1", s2 + 1, s3).split(":")[0];
  if (stream !== CriStream.stdout && stream !== CriStream.stderr) {
    throw new InvalidArgumentError(`CRI log record has an unknown stream ${JSON.stringify(stream)}`);
  }
  if (tag !== CriTag.full && tag !== CriTag.partial) {
    throw new InvalidArgumentError(`CRI log record has an unknown tag ${JSON.stringify(tag)}`);
  }
  return { timestamp, timeNs: parseRfc3339Nano(timestamp), stream, tag, content: body.subarray(s3 + 1) };
}

/** Every record of a log file's content; a last record without its newline is accepted. */
export function parseCriLog(data: Buffer): CriLogEntry[] {
  const entries: CriLogEntry[] = [];
  let pos = 0;
  while (pos < data.length) {
    const nl = data.indexOf(LF, pos);
    const end = nl === -1 ? data.length : nl;
    entries.push(parseCriLogLine(data.subarray(pos, end)));
    pos = end + 1;
  }
  return entries;
}

/** One line of container output put back together from its records. */
export interface CriLogMessage {
  stream: CriStream;
  /** Of the first record of the line. */
  timestamp: string;
  /** The line without its terminator. */
  content: Buffer;
  /** False when the stream ended (or the log stops) before the line did. */
  complete: boolean;
}

/**
 * Joins P records to the F record that ends them, per stream, since stdout and stderr
 * records interleave in one file. Writing each message's content plus "\n" when complete
 * gives back the container's output (with "\r\n" turned into "\n").
 */
export class CriLogReassembler {
  private readonly pending = new Map<CriStream, { timestamp: string; pieces: Buffer[] }>();

  /** Returns the message this record completes, if it does. */
  push(entry: CriLogEntry): CriLogMessage | undefined {
    let open = this.pending.get(entry.stream);
    if (!open) {
      open = { timestamp: entry.timestamp, pieces: [] };
      this.pending.set(entry.stream, open);
    }
    open.pieces.push(entry.content);
    if (entry.tag === CriTag.partial) return undefined;
    this.pending.delete(entry.stream);
    return { stream: entry.stream, timestamp: open.timestamp, content: Buffer.concat(open.pieces), complete: true };
  }

  /** The lines still open (stdout first), as incomplete messages; forgets them. */
  flush(): CriLogMessage[] {
    const out: CriLogMessage[] = [];
    for (const stream of [CriStream.stdout, CriStream.stderr]) {
      const open = this.pending.get(stream);
      if (open) out.push({ stream, timestamp: open.timestamp, content: Buffer.concat(open.pieces), complete: false });
    }
    this.pending.clear();
    return out;
  }
}

/** Parses and reassembles a whole log file's content. */
export function reassembleCriLog(data: Buffer): CriLogMessage[] {
  const r = new CriLogReassembler();
  const out: CriLogMessage[] = [];
  for (const entry of parseCriLog(data)) {
    const msg = r.push(entry);
    if (msg) out.push(msg);
  }
  return [...out, ...r.flush()];
}
