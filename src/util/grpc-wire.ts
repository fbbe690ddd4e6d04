// The gRPC wire format over HTTP/2 (grpc/doc/PROTOCOL-HTTP2.md), shared by podshim's own client
// (containerd/grpc-channel.ts) and its own server (server/grpc-server.ts): the length prefix
// of each message, the grpc-timeout header and the percent-encoded grpc-message.
//
// A message is a 5-byte prefix (1 byte compressed flag, 4 bytes big-endian length) and its
// bytes. grpc-timeout is at most 8 digits and a unit (H, M, S, m, u, n). grpc-message is UTF-8
// with every byte outside printable ASCII, and '%' itself, written as %XX.

/** The gRPC status codes (the wire's numbers). */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export const FRAME_HEADER = 5;

/** The 5-byte prefix of a message of `length` bytes: not compressed, then the length. */
export function frameHeader(length: number): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER);
  out[0] = 0;
  out.writeUInt32BE(length, 1);
  return out;
}

/** A message with its prefix, in one buffer (one write). */
export function framed(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, FRAME_HEADER);
  return out;
}

/** Why a stream of messages cannot be read: a compressed message (podshim never offers a
 * compression), or one over the size limit. */
export type FramingProblem = { problem: "compressed" } | { problem: "too-large"; length: number };

/**
 * Splits what arrives into whole messages. A message's bytes are copied only when they arrive
 * in more than one piece.
 */
export class Deframer {
  private chunks: Buffer[] = [];
  buffered = 0;

  constructor(private readonly maxMessage: number) {}

  push(chunk: Buffer): Buffer[] | FramingProblem {
    if (chunk.length > 0) this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Buffer[] = [];
    while (this.buffered >= FRAME_HEADER) {
      const header = this.peek(FRAME_HEADER);
      const length = header.readUInt32BE(1);
      if (header[0] !== 0) return { problem: "compressed" };
      if (length > this.maxMessage) return { problem: "too-large", length };
      if (this.buffered < FRAME_HEADER + length) break;
      this.take(FRAME_HEADER);
      out.push(this.take(length));
    }
    return out;
  }

  /** The first n buffered bytes, left in place. */
  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    return first.length >= n ? first : Buffer.concat(this.chunks, this.buffered).subarray(0, n);
  }

  /** Removes and returns the first n buffered bytes. */
  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0]!;
      const used = Math.min(c.length, n - at);
      c.copy(out, at, 0, used);
      at += used;
      if (used === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(used);
    }
    return out;
  }
}

/** grpc-timeout for `ms`: the finest unit whose count fits in 8 digits. */
export function timeoutHeader(ms: number): string {
  const units: Array<[string, number]> = [["m", 1], ["S", 1000], ["M", 60_000], ["H", 3_600_000]];
  for (const [unit, size] of units) {
    const count = Math.ceil(ms / size);
    if (count <= 99_999_999) return `${count}${unit}`;
  }
  return "99999999H";
}

const TIMEOUT_UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/** grpc-timeout in ms; undefined when it is not the header's form. */
export function parseTimeout(value: string): number | undefined {
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!m) return undefined;
  return Number(m[1]) * TIMEOUT_UNIT_MS[m[2]!]!;
}

/** grpc-message as sent: UTF-8, with bytes outside printable ASCII and '%' percent-encoded. */
export function encodeMessage(text: string): string {
  // Most messages are plain ASCII: no encoding to do.
  if (/^[\x20-\x24\x26-\x7e]*$/.test(text)) return text;
  let out = "";
  for (const byte of Buffer.from(text, "utf8")) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** grpc-message as read: percent-encoded UTF-8 (taken as it is when it is not valid). */
export function decodeMessage(value: string | string[] | undefined): string {
  const text = Array.isArray(value) ? value.join(",") : (value ?? "");
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
