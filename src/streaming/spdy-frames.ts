// SPDY/3 framing (the draft-3 wire format; "3.1" only names the HTTP Upgrade token). Every
// frame is an 8-byte header and a payload of at most 2^24-1 bytes; all integers big-endian.
// Control frames: 0x80 0x03 (control bit + version 3), 16-bit type, 8-bit flags, 24-bit length.
// DATA frames: 0 bit + 31-bit stream id, 8-bit flags, 24-bit length.
// Both sides of the connection use this module: podshim's server session and the test client.
import { SpdyProtocolError } from "./spdy-error.js";
import { decodeHeaderBlock, type HeaderCompressor, type HeaderDecompressor, type HeaderInput, encodeHeaderBlock } from "./spdy-zlib.js";

export { SpdyProtocolError } from "./spdy-error.js";

export const SPDY_VERSION = 3;
export const FRAME_HEADER_BYTES = 8;
export const MAX_FRAME_PAYLOAD = 0xffffff;

export const FrameType = {
  SynStream: 1,
  SynReply: 2,
  RstStream: 3,
  Settings: 4,
  Ping: 6,
  GoAway: 7,
  Headers: 8,
  WindowUpdate: 9,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const FrameFlag = {
  /** DATA, SYN_STREAM, SYN_REPLY, HEADERS: the sender will send nothing more on the stream. */
  Fin: 0x01,
  /** SYN_STREAM only: the recipient must not send on the stream. */
  Unidirectional: 0x02,
} as const;

/** RST_STREAM status codes (SPDY/3 §2.6.3). */
export const RstStatus = {
  ProtocolError: 1,
  InvalidStream: 2,
  RefusedStream: 3,
  UnsupportedVersion: 4,
  Cancel: 5,
  InternalError: 6,
  FlowControlError: 7,
  StreamInUse: 8,
  StreamAlreadyClosed: 9,
  InvalidCredentials: 10,
  FrameTooLarge: 11,
} as const;
export type RstStatus = (typeof RstStatus)[keyof typeof RstStatus];

/** GOAWAY status codes (SPDY/3 §2.6.6). */
export const GoAwayStatus = {
  Ok: 0,
  ProtocolError: 1,
  InternalError: 2,
} as const;
export type GoAwayStatus = (typeof GoAwayStatus)[keyof typeof GoAwayStatus];

const STREAM_ID_MASK = 0x7fffffff;

// ---------------------------------------------------------------------------------------------
// Encoding

function controlFrame(type: FrameType, flags: number, payloadLength: number): Buffer {
  if (payloadLength > MAX_FRAME_PAYLOAD) throw new RangeError(`SPDY control frame payload of ${payloadLength} bytes`);
  const frame = Buffer.alloc(FRAME_HEADER_BYTES + payloadLength);
  frame.writeUInt16BE(0x8000 | SPDY_VERSION, 0);
  frame.writeUInt16BE(type, 2);
  frame.writeUInt32BE(payloadLength, 4);
  frame[4] = flags;
  return frame;
}

export function encodeDataFrame(streamId: number, payload: Buffer, fin: boolean): Buffer {
  if (payload.length > MAX_FRAME_PAYLOAD) throw new RangeError(`SPDY data frame payload of ${payload.length} bytes`);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  frame.writeUInt32BE(streamId & STREAM_ID_MASK, 0);
  frame.writeUInt32BE(payload.length, 4);
  frame[4] = fin ? FrameFlag.Fin : 0;
  payload.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

export interface SynStreamFields {
  streamId: number;
  associatedId?: number;
  /** 0 (highest) to 7. */
  priority?: number;
  fin?: boolean;
  unidirectional?: boolean;
  headers: HeaderInput;
}

/** SYN_STREAM; `compressor` must be the connection's one sending-side header stream. */
export function encodeSynStream(fields: SynStreamFields, compressor: HeaderCompressor): Buffer {
  const block = compressor.compress(encodeHeaderBlock(fields.headers));
  const flags = (fields.fin ? FrameFlag.Fin : 0) | (fields.unidirectional ? FrameFlag.Unidirectional : 0);
  const frame = controlFrame(FrameType.SynStream, flags, 10 + block.length);
  frame.writeUInt32BE(fields.streamId & STREAM_ID_MASK, 8);
  frame.writeUInt32BE((fields.associatedId ?? 0) & STREAM_ID_MASK, 12);
  frame[16] = ((fields.priority ?? 0) & 0x07) << 5;
  frame[17] = 0; // credential slot: unused outside TLS client certificates
  block.copy(frame, 18);
  return frame;
}

export function encodeSynReply(streamId: number, headers: HeaderInput, fin: boolean, compressor: HeaderCompressor): Buffer {
  return streamHeaderFrame(FrameType.SynReply, streamId, headers, fin, compressor);
}

export function encodeHeadersFrame(streamId: number, headers: HeaderInput, fin: boolean, compressor: HeaderCompressor): Buffer {
  return streamHeaderFrame(FrameType.Headers, streamId, headers, fin, compressor);
}

function streamHeaderFrame(
  type: FrameType,
  streamId: number,
  headers: HeaderInput,
  fin: boolean,
  compressor: HeaderCompressor,
): Buffer {
  const block = compressor.compress(encodeHeaderBlock(headers));
  const frame = controlFrame(type, fin ? FrameFlag.Fin : 0, 4 + block.length);
  frame.writeUInt32BE(streamId & STREAM_ID_MASK, 8);
  block.copy(frame, 12);
  return frame;
}

export function encodeRstStream(streamId: number, status: number): Buffer {
  const frame = controlFrame(FrameType.RstStream, 0, 8);
  frame.writeUInt32BE(streamId & STREAM_ID_MASK, 8);
  frame.writeUInt32BE(status >>> 0, 12);
  return frame;
}

export function encodePing(id: number): Buffer {
  const frame = controlFrame(FrameType.Ping, 0, 4);
  frame.writeUInt32BE(id >>> 0, 8);
  return frame;
}

export function encodeGoAway(lastGoodStreamId: number, status: number): Buffer {
  const frame = controlFrame(FrameType.GoAway, 0, 8);
  frame.writeUInt32BE(lastGoodStreamId & STREAM_ID_MASK, 8);
  frame.writeUInt32BE(status >>> 0, 12);
  return frame;
}

export interface SettingEntry {
  id: number;
  value: number;
  flags?: number;
}

export function encodeSettings(entries: readonly SettingEntry[], flags = 0): Buffer {
  const frame = controlFrame(FrameType.Settings, flags, 4 + 8 * entries.length);
  frame.writeUInt32BE(entries.length, 8);
  entries.forEach((e, i) => {
    const at = 12 + 8 * i;
    frame.writeUInt32BE(e.id & 0xffffff, at);
    frame[at] = e.flags ?? 0;
    frame.writeUInt32BE(e.value >>> 0, at + 4);
  });
  return frame;
}

export function encodeWindowUpdate(streamId: number, delta: number): Buffer {
  const frame = controlFrame(FrameType.WindowUpdate, 0, 8);
  frame.writeUInt32BE(streamId & STREAM_ID_MASK, 8);
  frame.writeUInt32BE(delta & STREAM_ID_MASK, 12);
  return frame;
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** A control frame as cut from the byte stream, before its type-specific payload is read. */
export interface RawControlFrame {
  type: number;
  flags: number;
  payload: Buffer;
}

/** What the parser hands on, in wire order. */
export interface FrameHandler {
  control(frame: RawControlFrame): void;
  /** A DATA frame's header. Its payload follows in `dataChunk` calls; none when `length` is 0. */
  dataStart(streamId: number, flags: number, length: number): void;
  /** Part of the current DATA frame's payload, as it arrives; `last` on the frame's final part. */
  dataChunk(streamId: number, chunk: Buffer, last: boolean): void;
}

/**
 * Cuts a byte stream into frames. Peers write frames in several small writes and TCP splits or
 * joins them anywhere, so input is queued until a whole control frame is there. DATA payloads
 * are passed on as they arrive instead: a 16 MiB frame need not sit in memory before its
 * stream sees the first byte.
 */
export class FrameParser {
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private dataStream = 0;
  private dataLeft = 0;
  private stopped = false;

  /** @param maxControlPayload larger control frames are a protocol error (they are buffered whole) */
  constructor(
    private readonly handler: FrameHandler,
    private readonly maxControlPayload: number = MAX_FRAME_PAYLOAD,
  ) {}

  /** Stops delivering frames, including the rest of a chunk being parsed. */
  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
    this.queued = 0;
  }

  /** Throws SpdyProtocolError on bytes that cannot be a SPDY/3 frame; the parser is unusable after. */
  push(chunk: Buffer): void {
    if (this.stopped || chunk.length === 0) return;
    this.queue.push(chunk);
    this.queued += chunk.length;
    while (!this.stopped) {
      if (this.dataLeft > 0) {
        if (this.queued === 0) return;
        const piece = this.takeUpTo(this.dataLeft);
        this.dataLeft -= piece.length;
        this.handler.dataChunk(this.dataStream, piece, this.dataLeft === 0);
        continue;
      }
      if (this.queued < FRAME_HEADER_BYTES) return;
      const header = this.peek(FRAME_HEADER_BYTES);
      const first = header.readUInt32BE(0);
      const flags = header[4]!;
      const length = header.readUInt32BE(4) & 0xffffff;
      if ((first & 0x80000000) === 0) {
        this.take(FRAME_HEADER_BYTES);
        const streamId = first & STREAM_ID_MASK;
        this.dataStream = streamId;
        this.dataLeft = length;
        this.handler.dataStart(streamId, flags, length);
        continue;
      }
      const version = (first >>> 16) & 0x7fff;
      if (version !== SPDY_VERSION) throw new SpdyProtocolError(`unsupported SPDY version ${version}`);
      if (length > this.maxControlPayload) throw new SpdyProtocolError(`control frame of ${length} bytes is too large`);
      if (this.queued < FRAME_HEADER_BYTES + length) return;
      this.take(FRAME_HEADER_BYTES);
      const payload = length === 0 ? Buffer.alloc(0) : this.take(length);
      this.handler.control({ type: first & 0xffff, flags, payload });
    }
  }

  /** The first n queued bytes as one buffer, merging chunks in place so the merge happens once. */
  private peek(n: number): Buffer {
    let head = this.queue[0]!;
    if (head.length >= n) return head;
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      const c = this.queue.shift()!;
      parts.push(c);
      got += c.length;
    }
    head = Buffer.concat(parts, got);
    this.queue.unshift(head);
    return head;
  }

  private take(n: number): Buffer {
    const head = this.peek(n);
    const out = head.subarray(0, n);
    if (head.length === n) this.queue.shift();
    else this.queue[0] = head.subarray(n);
    this.queued -= n;
    return out;
  }

  private takeUpTo(n: number): Buffer {
    const head = this.queue[0]!;
    if (head.length <= n) {
      this.queue.shift();
      this.queued -= head.length;
      return head;
    }
    this.queue[0] = head.subarray(n);
    this.queued -= n;
    return head.subarray(0, n);
  }
}

export type ControlFrame =
  | {
      kind: "syn_stream";
      streamId: number;
      associatedId: number;
      priority: number;
      fin: boolean;
      unidirectional: boolean;
      headers: Record<string, string>;
    }
  | { kind: "syn_reply"; streamId: number; fin: boolean; headers: Record<string, string> }
  | { kind: "rst_stream"; streamId: number; status: number }
  | { kind: "settings"; entries: SettingEntry[] }
  | { kind: "ping"; id: number }
  | { kind: "goaway"; lastGoodStreamId: number; status: number }
  | { kind: "headers"; streamId: number; fin: boolean; headers: Record<string, string> }
  | { kind: "window_update"; streamId: number; delta: number }
  | { kind: "unknown"; type: number };

/**
 * Reads a control frame's payload. Header blocks are always inflated here, even for frames the
 * caller will then refuse or ignore: skipping one would desynchronise the connection's zlib
 * stream and garble every later block.
 */
export function decodeControlFrame(raw: RawControlFrame, decompressor: HeaderDecompressor): ControlFrame {
  const p = raw.payload;
  const fin = (raw.flags & FrameFlag.Fin) !== 0;
  const atLeast = (n: number, what: string): void => {
    if (p.length < n) throw new SpdyProtocolError(`${what} frame of ${p.length} bytes is too short`);
  };
  const exactly = (n: number, what: string): void => {
    if (p.length !== n) throw new SpdyProtocolError(`${what} frame must be ${n} bytes, not ${p.length}`);
  };
  const headersOf = (offset: number): Record<string, string> =>
    decodeHeaderBlock(decompressor.decompress(p.subarray(offset)));
  switch (raw.type) {
    case FrameType.SynStream: {
      atLeast(10, "SYN_STREAM");
      return {
        kind: "syn_stream",
        streamId: p.readUInt32BE(0) & STREAM_ID_MASK,
        associatedId: p.readUInt32BE(4) & STREAM_ID_MASK,
        priority: p[8]! >> 5,
        fin,
        unidirectional: (raw.flags & FrameFlag.Unidirectional) !== 0,
        headers: headersOf(10),
      };
    }
    case FrameType.SynReply:
      atLeast(4, "SYN_REPLY");
      return { kind: "syn_reply", streamId: p.readUInt32BE(0) & STREAM_ID_MASK, fin, headers: headersOf(4) };
    case FrameType.Headers:
      atLeast(4, "HEADERS");
      return { kind: "headers", streamId: p.readUInt32BE(0) & STREAM_ID_MASK, fin, headers: headersOf(4) };
    case FrameType.RstStream:
      exactly(8, "RST_STREAM");
      return { kind: "rst_stream", streamId: p.readUInt32BE(0) & STREAM_ID_MASK, status: p.readUInt32BE(4) };
    case FrameType.Settings: {
      atLeast(4, "SETTINGS");
      const count = p.readUInt32BE(0);
      if (p.length !== 4 + 8 * count) throw new SpdyProtocolError(`SETTINGS frame length does not fit ${count} entries`);
      const entries: SettingEntry[] = [];
      for (let i = 0; i < count; i++) {
        const at = 4 + 8 * i;
        entries.push({ flags: p[at]!, id: p.readUInt32BE(at) & 0xffffff, value: p.readUInt32BE(at + 4) });
      }
      return { kind: "settings", entries };
    }
    case FrameType.Ping:
      exactly(4, "PING");
      return { kind: "ping", id: p.readUInt32BE(0) };
    case FrameType.GoAway:
      exactly(8, "GOAWAY");
      return { kind: "goaway", lastGoodStreamId: p.readUInt32BE(0) & STREAM_ID_MASK, status: p.readUInt32BE(4) };
    case FrameType.WindowUpdate:
      exactly(8, "WINDOW_UPDATE");
      return { kind: "window_update", streamId: p.readUInt32BE(0) & STREAM_ID_MASK, delta: p.readUInt32BE(4) & STREAM_ID_MASK };
    default:
      // SPDY/3 says to ignore control frames of unknown type (NOOP, CREDENTIAL, later extensions).
      return { kind: "unknown", type: raw.type };
  }
}
