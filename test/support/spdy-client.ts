// A SPDY/3.1 client for tests, playing kubectl/crictl (client-go over moby/spdystream) against
// podshim's streaming server. It shares only the frame and header codecs with the server; the
// session logic is the client's own: it performs the HTTP/1.1 upgrade by hand, opens odd stream
// ids and waits for each SYN_REPLY, echoes the server's pings, and, like spdystream, never sends
// WINDOW_UPDATE or SETTINGS, and writes each frame's header and payload as separate writes.
import { EventEmitter } from "node:events";
import net from "node:net";
import { Duplex } from "node:stream";
import {
  FrameFlag,
  FrameParser,
  GoAwayStatus,
  RstStatus,
  decodeControlFrame,
  encodeDataFrame,
  encodeGoAway,
  encodePing,
  encodeRstStream,
  encodeSynStream,
  type ControlFrame,
} from "../../src/streaming/spdy-frames.js";
import { HeaderCompressor, HeaderDecompressor, type HeaderInput } from "../../src/streaming/spdy-zlib.js";

export interface ConnectSpdyOptions {
  method?: "POST" | "GET";
  /** Offered as one X-Stream-Protocol-Version line each, in this order (as client-go does). */
  protocols: string[];
  /** Extra request headers; a value of null removes a default (Connection, Upgrade). */
  headers?: Record<string, string | null>;
  /** Gives up on the HTTP response after this long; default 10 s. */
  timeoutMs?: number;
  /** Raw bytes sent in the same write as the request (frames a client pipelines early). */
  afterRequest?: Buffer;
}

/** The server answered the upgrade with something other than 101. */
export class SpdyUpgradeError extends Error {
  constructor(
    readonly status: number,
    /** Lowercased names; repeated headers keep every value, in order. */
    readonly headers: Record<string, string[]>,
    readonly body: string,
  ) {
    super(`SPDY upgrade refused: HTTP ${status}: ${body.trim()}`);
    this.name = "SpdyUpgradeError";
  }
}

/** The server answered a SYN_STREAM with RST_STREAM instead of SYN_REPLY. */
export class SpdyStreamRefusedError extends Error {
  constructor(
    readonly streamId: number,
    readonly status: number,
  ) {
    super(`SPDY stream ${streamId} refused: RST_STREAM status ${status}`);
    this.name = "SpdyStreamRefusedError";
  }
}

/** Connects over plain TCP, upgrades to SPDY/3.1 and returns the negotiated protocol. */
export async function connectSpdy(
  url: string,
  opts: ConnectSpdyOptions,
): Promise<{ protocol: string; session: SpdyClientSession }> {
  const target = new URL(url);
  const socket = net.connect({ host: target.hostname, port: Number(target.port || 80) });
  socket.setNoDelay(true);
  try {
    const { status, headers, rest, body } = await upgradeRequest(socket, target, opts);
    if (status !== 101) throw new SpdyUpgradeError(status, headers, body);
    const protocol = headers["x-stream-protocol-version"]?.[0] ?? "";
    return { protocol, session: new SpdyClientSession(socket, rest) };
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

interface UpgradeResponse {
  status: number;
  headers: Record<string, string[]>;
  /** Bytes after the header block when the status is 101 (the start of the SPDY stream). */
  rest: Buffer;
  body: string;
}

function upgradeRequest(socket: net.Socket, target: URL, opts: ConnectSpdyOptions): Promise<UpgradeResponse> {
  const defaults: Record<string, string> = {
    Host: target.host,
    "User-Agent": "podshim-test-spdy-client",
    "Content-Length": "0",
    Connection: "Upgrade",
    Upgrade: "SPDY/3.1",
  };
  const lines = [`${opts.method ?? "POST"} ${target.pathname}${target.search} HTTP/1.1`];
  const extra = opts.headers ?? {};
  for (const [k, v] of Object.entries(defaults)) {
    if (!(k in extra)) lines.push(`${k}: ${v}`);
  }
  for (const [k, v] of Object.entries(extra)) if (v !== null) lines.push(`${k}: ${v}`);
  for (const p of opts.protocols) lines.push(`X-Stream-Protocol-Version: ${p}`);
  socket.write(Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), opts.afterRequest ?? Buffer.alloc(0)]));

  return new Promise<UpgradeResponse>((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let parsed: Omit<UpgradeResponse, "rest" | "body"> & { bodyStart: number; length: number | undefined } | undefined;
    const timer = setTimeout(() => finish(new Error("timed out waiting for the upgrade response")), opts.timeoutMs ?? 10_000);
    const finish = (err: Error | undefined, res?: UpgradeResponse): void => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("end", onEnd);
      if (err) reject(err);
      else resolve(res!);
    };
    const completeBody = (): void => {
      const p = parsed!;
      finish(undefined, { status: p.status, headers: p.headers, rest: Buffer.alloc(0), body: buf.subarray(p.bodyStart).toString("utf8") });
    };
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      if (parsed === undefined) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const [statusLine, ...headerLines] = buf.subarray(0, end).toString("latin1").split("\r\n");
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? "")?.[1] ?? NaN);
        const headers: Record<string, string[]> = {};
        for (const line of headerLines) {
          const colon = line.indexOf(":");
          const name = line.slice(0, colon).trim().toLowerCase();
          (headers[name] ??= []).push(line.slice(colon + 1).trim());
        }
        const length = headers["content-length"] ? Number(headers["content-length"][0]) : undefined;
        parsed = { status, headers, bodyStart: end + 4, length };
        if (status === 101) {
          // Pause before resolving so no SPDY byte is delivered before the session listens.
          socket.pause();
          finish(undefined, { status, headers, rest: buf.subarray(end + 4), body: "" });
          return;
        }
      }
      if (parsed.length !== undefined && buf.length - parsed.bodyStart >= parsed.length) completeBody();
    };
    const onEnd = (): void => {
      if (parsed) completeBody();
      else finish(new Error("connection closed before the upgrade response"));
    };
    const onError = (err: Error): void => finish(err);
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("end", onEnd);
  });
}

/**
 * The client end of a SPDY session. Events: 'goaway' (lastGoodStreamId, status), 'close' once
 * the TCP connection is gone.
 */
export class SpdyClientSession extends EventEmitter {
  readonly socket: net.Socket;
  private readonly parser: FrameParser;
  private readonly compressor = new HeaderCompressor();
  private readonly decompressor = new HeaderDecompressor(1024 * 1024);
  private readonly streams = new Map<number, SpdyClientStream>();
  private readonly pendingOpens = new Map<number, { resolve: (s: SpdyClientStream) => void; reject: (e: Error) => void }>();
  private readonly pendingPings = new Map<number, () => void>();
  private nextStreamId = 1;
  private nextPingId = 1;
  private dataStream: SpdyClientStream | undefined;
  private dataFin = false;
  private drainWaiters: Array<() => void> = [];
  /** Every control frame received, in order: tests assert on what the server sent. */
  readonly received: ControlFrame[] = [];
  /** Set when the server sent GOAWAY. */
  goAway: { lastGoodStreamId: number; status: number } | undefined;
  /** The RST_STREAM frames the server sent for ids we never opened (or had closed). */
  readonly strayResets: Array<{ streamId: number; status: number }> = [];
  private closedFlag = false;
  /** Resolves once the TCP connection is closed. */
  readonly closed: Promise<void>;

  constructor(socket: net.Socket, head: Buffer) {
    super();
    this.socket = socket;
    this.parser = new FrameParser({
      control: (raw) => this.onControl(decodeControlFrame(raw, this.decompressor)),
      dataStart: (id, flags, length) => {
        this.dataStream = this.streams.get(id);
        this.dataFin = (flags & FrameFlag.Fin) !== 0;
        if (length === 0 && this.dataFin) this.dataStream?.remoteEnd();
      },
      dataChunk: (_id, chunk, last) => {
        this.dataStream?.remoteData(chunk);
        if (last && this.dataFin) this.dataStream?.remoteEnd();
      },
    });
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.on("error", () => {});
    socket.on("drain", () => {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    });
    socket.on("close", () => {
      this.closedFlag = true;
      for (const [, p] of this.pendingOpens) p.reject(new Error("connection closed"));
      this.pendingOpens.clear();
      for (const s of this.streams.values()) s.connectionGone();
      this.streams.clear();
      for (const w of this.drainWaiters.splice(0)) w();
      this.emit("close");
    });
    socket.on("data", (chunk: Buffer) => this.feed(chunk));
    this.feed(head);
    socket.resume();
  }

  get isClosed(): boolean {
    return this.closedFlag;
  }

  /**
   * Opens a stream (SYN_STREAM with the next odd id) and resolves once the server's SYN_REPLY
   * arrives, as client-go's CreateStream does; rejects (with `status`) if the server resets it
   * instead. `streamId` forces an id, for tests of ids a real client would never use.
   */
  openStream(headers: HeaderInput, opts: { fin?: boolean; streamId?: number } = {}): Promise<SpdyClientStream> {
    const id = opts.streamId ?? this.nextStreamId;
    if (opts.streamId === undefined) this.nextStreamId += 2;
    return new Promise((resolve, reject) => {
      if (this.closedFlag) {
        reject(new Error("connection closed"));
        return;
      }
      this.pendingOpens.set(id, { resolve, reject });
      this.writeFrame(encodeSynStream({ streamId: id, headers, fin: opts.fin ?? false }, this.compressor));
    });
  }

  /** Sends a PING (odd id, as a client must) and resolves when the server echoes it. */
  ping(timeoutMs = 5_000): Promise<void> {
    const id = this.nextPingId;
    this.nextPingId += 2;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pendingPings.delete(id);
        reject(new Error(`no PING reply for id ${id}`));
      }, timeoutMs);
      this.pendingPings.set(id, () => {
        clearTimeout(timer);
        resolve();
      });
      this.writeFrame(encodePing(id));
    });
  }

  /** Sends GOAWAY (last-good 0: a client accepts no server streams) without closing anything. */
  sendGoAway(status: number = GoAwayStatus.Ok): void {
    this.writeFrame(encodeGoAway(0, status));
  }

  /** Writes raw bytes, for malformed-input tests. */
  writeRaw(bytes: Buffer): void {
    if (!this.socket.destroyed && !this.socket.writableEnded) this.socket.write(bytes);
  }

  /** Stops reading from the socket: a peer that has stopped consuming. */
  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  /** What spdystream does on Close(): GOAWAY, then close the connection. Resolves when it is closed. */
  close(): Promise<void> {
    if (!this.closedFlag && !this.socket.writableEnded) {
      this.sendGoAway();
      this.socket.end();
      const timer = setTimeout(() => this.socket.destroy(), 2_000);
      timer.unref();
    }
    return this.closed;
  }

  /** Drops the TCP connection without any goodbye. */
  destroy(): Promise<void> {
    this.socket.destroy();
    return this.closed;
  }

  /** @internal */
  writeFrame(frame: Buffer): boolean {
    if (this.socket.destroyed || this.socket.writableEnded) return true;
    return this.socket.write(frame);
  }

  /** @internal spdystream-style: header and payload in separate writes */
  writeData(id: number, payload: Buffer, fin: boolean): boolean {
    if (this.socket.destroyed || this.socket.writableEnded) return true;
    const frame = encodeDataFrame(id, payload, fin);
    this.socket.write(frame.subarray(0, 8));
    return this.socket.write(frame.subarray(8));
  }

  /** @internal */
  onDrain(cb: () => void): void {
    if (this.socket.destroyed || this.socket.writableEnded) cb();
    else this.drainWaiters.push(cb);
  }

  /** @internal */
  forget(id: number): void {
    this.streams.delete(id);
  }

  private feed(chunk: Buffer): void {
    try {
      this.parser.push(chunk);
    } catch (err) {
      this.emit("protocolError", err);
      this.socket.destroy();
    }
  }

  private onControl(frame: ControlFrame): void {
    this.received.push(frame);
    switch (frame.kind) {
      case "syn_reply": {
        const pending = this.pendingOpens.get(frame.streamId);
        if (!pending) return;
        this.pendingOpens.delete(frame.streamId);
        const stream = new SpdyClientStream(this, frame.streamId, frame.headers);
        this.streams.set(frame.streamId, stream);
        if (frame.fin) stream.remoteEnd();
        pending.resolve(stream);
        return;
      }
      case "rst_stream": {
        const pending = this.pendingOpens.get(frame.streamId);
        if (pending) {
          this.pendingOpens.delete(frame.streamId);
          pending.reject(new SpdyStreamRefusedError(frame.streamId, frame.status));
          return;
        }
        const stream = this.streams.get(frame.streamId);
        if (stream) stream.remoteReset(frame.status);
        else this.strayResets.push({ streamId: frame.streamId, status: frame.status });
        return;
      }
      case "ping": {
        const mine = this.pendingPings.get(frame.id);
        if (mine) {
          this.pendingPings.delete(frame.id);
          mine();
        } else if (frame.id % 2 === 0) {
          this.writeFrame(encodePing(frame.id));
        }
        return;
      }
      case "goaway":
        this.goAway = { lastGoodStreamId: frame.lastGoodStreamId, status: frame.status };
        this.emit("goaway", frame.lastGoodStreamId, frame.status);
        return;
      case "syn_stream":
        // Kubernetes servers never open streams; refuse like a client that accepts none.
        this.writeFrame(encodeRstStream(frame.streamId, RstStatus.RefusedStream));
        return;
      default:
        return;
    }
  }
}

/** A client-side stream: write() sends DATA, end() sends FIN, reset() sends RST_STREAM. */
export class SpdyClientStream extends Duplex {
  /** Set when the server reset the stream. */
  resetStatus: number | undefined;
  private localDone = false;
  private remoteDone = false;
  private aborted = false;

  constructor(
    private readonly session: SpdyClientSession,
    readonly id: number,
    /** The SYN_REPLY headers. */
    readonly replyHeaders: Record<string, string>,
  ) {
    super({ allowHalfOpen: true });
  }

  /** Sends RST_STREAM (CANCEL by default) and closes the stream locally. */
  reset(status: number = RstStatus.Cancel): void {
    if (this.aborted) return;
    this.aborted = true;
    this.session.writeFrame(encodeRstStream(this.id, status));
    this.session.forget(this.id);
    this.destroy();
  }

  /**
   * Reads everything until the server's FIN; rejects if the stream closes first (reset,
   * connection lost). Unlike `for await`, leaves the writing side open.
   */
  readAll(): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      this.on("data", (c: Buffer) => parts.push(c));
      this.once("end", () => resolve(Buffer.concat(parts)));
      this.once("close", () => reject(new Error(`stream ${this.id} closed before its end`)));
    });
  }

  /** @internal */
  remoteData(chunk: Buffer): void {
    if (!this.aborted && chunk.length > 0) this.push(chunk);
  }

  /** @internal */
  remoteEnd(): void {
    if (this.aborted || this.remoteDone) return;
    this.remoteDone = true;
    this.push(null);
    this.maybeForget();
  }

  /** @internal */
  remoteReset(status: number): void {
    if (this.aborted) return;
    this.aborted = true;
    this.resetStatus = status;
    this.session.forget(this.id);
    this.emit("reset", status);
    this.destroy();
  }

  /** @internal */
  connectionGone(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.destroy();
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    // A frame size unlike the server's, so both sides' reassembly gets exercised.
    const max = 48 * 1024;
    let offset = 0;
    const step = (): void => {
      while (offset < chunk.length) {
        if (this.aborted) return cb();
        const piece = chunk.subarray(offset, offset + max);
        offset += piece.length;
        if (!this.session.writeData(this.id, piece, false)) {
          this.session.onDrain(step);
          return;
        }
      }
      cb();
    };
    step();
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.aborted) this.session.writeData(this.id, Buffer.alloc(0), true);
    this.localDone = true;
    this.maybeForget();
    cb();
  }

  private maybeForget(): void {
    if (this.localDone && this.remoteDone) this.session.forget(this.id);
  }
}
