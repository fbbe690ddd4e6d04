// The server side of a SPDY/3.1 session as Kubernetes speaks it (moby/spdystream under
// client-go, kubectl, crictl and the kubelet's proxy): client-opened streams over one upgraded
// connection. Only what those peers use is implemented (docs/streaming.md):
//  * no flow control in either direction. spdystream never sends WINDOW_UPDATE, so honouring
//    the 64 KiB initial window would stall every stream; TCP backpressure does the job instead.
//  * the server never opens streams, never pings, and never speaks first (client-go throws
//    away whatever arrives together with the 101 response).
//  * whatever a peer sends, the session at worst closes itself; nothing here throws or emits an
//    unhandled 'error' into the daemon.
import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import { CanceledError, messageOf } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import { SpdyProtocolError } from "./spdy-error.js";
import {
  FrameParser,
  FrameFlag,
  GoAwayStatus,
  RstStatus,
  decodeControlFrame,
  encodeGoAway,
  encodePing,
  encodeRstStream,
  encodeSynReply,
  type ControlFrame,
  type RawControlFrame,
} from "./spdy-frames.js";
import { HeaderCompressor, HeaderDecompressor } from "./spdy-zlib.js";
import { SpdyStream, type StreamHost } from "./spdy-stream.js";

export interface SpdySessionOptions {
  logger: Logger;
  /** close the session after this long without any frame; default 4 h */
  idleTimeoutMs?: number;
  /** Streams the peer may have open at once; more are refused (RST REFUSED_STREAM). */
  maxStreams?: number;
}

/** containerd's stream_idle_timeout default. */
const DEFAULT_IDLE_TIMEOUT_MS = 4 * 60 * 60 * 1000;
/** Control frames (and so header blocks) beyond this are refused; Kubernetes sends a few dozen bytes. */
const MAX_CONTROL_PAYLOAD = 1024 * 1024;
const MAX_HEADER_BLOCK = 1024 * 1024;
/**
 * Replies the peer provokes (PING echoes, RST for strangers' DATA) are dropped while this much
 * is already waiting in the socket: a peer that does not read gets no more of them.
 */
const CONTROL_REPLY_BACKLOG = 1024 * 1024;
/**
 * Data writers wait for 'drain' after each frame, so legitimate traffic keeps far below this.
 * Reaching it means the peer keeps provoking replies without reading; the session is dropped.
 */
const MAX_WRITE_BACKLOG = 16 * 1024 * 1024;
/** After close(): how long ended streams may take to flush and the peer to hang up. */
const CLOSE_LINGER_MS = 30_000;

/**
 * One upgraded connection, server side. Emits 'stream' (SpdyStream) for every SYN_STREAM the
 * peer opens (attach the listener right after construction: with none, streams are refused),
 * and 'close' once when the connection is gone.
 */
export class SpdySession extends EventEmitter {
  private readonly socket: Duplex;
  private readonly logger: Logger;
  private readonly parser: FrameParser;
  private readonly compressor = new HeaderCompressor();
  private readonly decompressor = new HeaderDecompressor(MAX_HEADER_BLOCK);
  private readonly streams = new Map<number, SpdyStream>();
  private readonly full = new Set<SpdyStream>();
  private drainWaiters: Array<() => void> = [];
  private readonly host: StreamHost;
  private lastPeerStreamId = 0;
  private peerWentAway = false;
  private closing = false;
  private gone = false;
  private socketEnded = false;
  private readingPaused = false;
  /** The DATA frame being received: its stream, or undefined when its bytes are dropped. */
  private dataTarget: { stream: SpdyStream | undefined; fin: boolean } = { stream: undefined, fin: false };
  private readonly idleTimeoutMs: number;
  private readonly maxStreams: number;
  private lastActivity = Date.now();
  private idleTimer: NodeJS.Timeout | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;

  constructor(socket: Duplex, head: Buffer, opts: SpdySessionOptions) {
    super();
    this.socket = socket;
    this.logger = opts.logger;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.maxStreams = opts.maxStreams ?? Number.POSITIVE_INFINITY;
    this.parser = new FrameParser(
      {
        control: (raw) => this.onControl(raw),
        dataStart: (id, flags, length) => this.onDataStart(id, flags, length),
        dataChunk: (_id, chunk, last) => this.onDataChunk(chunk, last),
      },
      MAX_CONTROL_PAYLOAD,
    );
    this.host = this.makeHost();

    socket.on("error", (err: Error) => this.logger.debug({ err: messageOf(err) }, "SPDY connection error"));
    socket.on("end", () => this.onPeerEnd());
    socket.on("close", () => this.teardown());
    socket.on("drain", () => this.flushDrainWaiters());
    // SYN_REPLY and PING echoes are tiny and client-go waits for each reply before opening the
    // next stream: Nagle's algorithm would add a delayed-ACK round to every one of them.
    (socket as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    this.armIdleTimer(this.idleTimeoutMs);

    // Deferred so the caller can attach 'stream' and 'close' listeners first. Node leaves an
    // upgraded socket non-flowing, so nothing is lost meanwhile; the listener goes on before
    // `head` is parsed because a stream consumer may pause and resume the socket while it is,
    // and socket data only ever arrives after this synchronous block.
    process.nextTick(() => {
      if (socket.destroyed) {
        this.teardown();
        return;
      }
      socket.on("data", (chunk: Buffer) => this.feed(chunk));
      this.feed(head);
    });
  }

  /** True once close() was called or the connection is gone. */
  get closed(): boolean {
    return this.closing || this.gone;
  }

  /**
   * Sends GOAWAY and ends the connection once queued frames are written. Streams whose writing
   * side was already ended (end() called) are allowed to flush and FIN first; every other
   * stream is closed locally. Idempotent.
   */
  close(): void {
    if (this.closing || this.gone) return;
    this.closing = true;
    this.dropAfter(CLOSE_LINGER_MS, "SPDY session did not finish closing in time; dropping the connection");
    const flushing = [...this.streams.values()].filter((s) => s.writableEnded && !s.writableFinished && !s.destroyed);
    if (flushing.length === 0) {
      this.finishClose();
      return;
    }
    let left = flushing.length;
    const oneDone = (): void => {
      if (--left === 0) this.finishClose();
    };
    for (const s of flushing) onceEither(s, "finish", "close", oneDone);
  }

  private finishClose(): void {
    if (this.gone) return;
    this.write(encodeGoAway(this.lastPeerStreamId, GoAwayStatus.Ok));
    this.closeStreams(undefined);
    this.endSocket();
  }

  // --- input --------------------------------------------------------------------------------

  private feed(chunk: Buffer): void {
    if (this.gone || chunk.length === 0) return;
    this.lastActivity = Date.now();
    try {
      this.parser.push(chunk);
    } catch (err) {
      this.fail(err);
    }
  }

  /** The peer broke the protocol (or a 'stream' listener threw): GOAWAY and drop the connection. */
  private fail(err: unknown): void {
    this.parser.stop();
    if (err instanceof SpdyProtocolError) {
      this.logger.debug({ err: err.message }, "SPDY protocol error; closing the session");
    } else {
      this.logger.error({ err: messageOf(err) }, "SPDY session handler failed; closing the session");
    }
    if (this.gone) return;
    this.closing = true;
    this.write(encodeGoAway(this.lastPeerStreamId, err instanceof SpdyProtocolError ? GoAwayStatus.ProtocolError : GoAwayStatus.InternalError));
    this.closeStreams(new CanceledError("SPDY session closed after a protocol error", { cause: err }));
    this.endSocket();
    // A peer that broke the protocol is owed no orderly goodbye: the GOAWAY gets a moment to
    // go out, then the connection is dropped whether or not the peer hangs up.
    this.dropAfter(1_000, "SPDY session closed after a protocol error; dropping the connection");
  }

  /** Destroys the socket unless it closes by itself within `ms`. */
  private dropAfter(ms: number, why: string): void {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = setTimeout(() => {
      this.logger.debug(why);
      this.socket.destroy();
    }, ms);
    this.lingerTimer.unref();
  }

  private onControl(raw: RawControlFrame): void {
    const frame: ControlFrame = decodeControlFrame(raw, this.decompressor);
    switch (frame.kind) {
      case "syn_stream":
        this.onSynStream(frame.streamId, frame.headers, frame.fin, frame.unidirectional);
        return;
      case "rst_stream":
        this.streams.get(frame.streamId)?.peerReset(frame.status);
        return;
      case "ping":
        // Odd ids are the client's own pings; an even one would answer a ping we never send.
        if (frame.id % 2 === 1) this.writeControlReply(encodePing(frame.id));
        return;
      case "goaway":
        this.logger.debug({ lastGoodStreamId: frame.lastGoodStreamId, status: frame.status }, "SPDY peer sent GOAWAY");
        this.peerWentAway = true;
        this.closeIfIdleAfterGoAway();
        return;
      case "syn_reply":
        // We open no streams, so there is nothing this could answer.
        this.logger.debug({ streamId: frame.streamId }, "SPDY peer sent SYN_REPLY for a stream we never opened");
        return;
      case "headers":
      case "settings":
      case "window_update":
      case "unknown":
        // HEADERS was inflated to keep the zlib stream in step; its content means nothing to
        // Kubernetes. Windows and settings are ignored (see the file comment).
        return;
    }
  }

  private onSynStream(id: number, headers: Record<string, string>, fin: boolean, unidirectional: boolean): void {
    if (id === 0) throw new SpdyProtocolError("SYN_STREAM with stream id 0");
    if (this.closing) {
      // While ended streams flush before our GOAWAY, say no at once rather than let the
      // client wait for a reply that will not come.
      this.rst(id, RstStatus.RefusedStream);
      return;
    }
    if (id % 2 === 0 || id <= this.lastPeerStreamId) {
      this.rst(id, RstStatus.ProtocolError);
      return;
    }
    this.lastPeerStreamId = id;
    if (this.peerWentAway || this.listenerCount("stream") === 0) {
      this.rst(id, RstStatus.RefusedStream);
      return;
    }
    if (this.streams.size >= this.maxStreams) {
      this.logger.info({ streamId: id, maxStreams: this.maxStreams }, "streaming: refusing a stream past the session's cap");
      this.rst(id, RstStatus.RefusedStream);
      return;
    }
    const stream = new SpdyStream(this.host, id, headers, unidirectional);
    this.streams.set(id, stream);
    if (fin) stream.peerFin();
    this.emit("stream", stream);
  }

  private onDataStart(streamId: number, flags: number, length: number): void {
    if (streamId === 0) throw new SpdyProtocolError("DATA frame for stream 0");
    const fin = (flags & FrameFlag.Fin) !== 0;
    const stream = this.streams.get(streamId);
    this.dataTarget = { stream, fin };
    if (stream === undefined) {
      // A stream the peer opened and that has since closed may still have DATA in flight: drop
      // it quietly. Any other id was never a stream at all.
      const closedEarlier = streamId % 2 === 1 && streamId <= this.lastPeerStreamId;
      if (!closedEarlier && !this.closing) this.writeControlReply(encodeRstStream(streamId, RstStatus.InvalidStream));
      return;
    }
    if (stream.readableFinishedByPeer) {
      this.dataTarget = { stream: undefined, fin: false };
      stream.resetWith(RstStatus.StreamAlreadyClosed, new CanceledError(`SPDY stream ${streamId}: DATA after FIN`));
      return;
    }
    if (length === 0 && fin) stream.peerFin();
  }

  private onDataChunk(chunk: Buffer, last: boolean): void {
    const { stream, fin } = this.dataTarget;
    if (stream === undefined) return;
    stream.peerData(chunk);
    if (last && fin) stream.peerFin();
  }

  private onPeerEnd(): void {
    // The peer will send nothing more, so open streams can never finish reading; our side is
    // ended too once what is queued has been written.
    this.logger.debug("SPDY peer closed its side of the connection");
    this.closing = true;
    this.parser.stop();
    this.closeStreams(new CanceledError("SPDY connection closed by the peer"));
    this.endSocket();
  }

  private closeIfIdleAfterGoAway(): void {
    if (this.peerWentAway && this.streams.size === 0) this.close();
  }

  // --- output -------------------------------------------------------------------------------

  private canWrite(): boolean {
    return !this.gone && !this.socketEnded && !this.socket.destroyed && !this.socket.writableEnded;
  }

  private write(frame: Buffer): boolean {
    if (!this.canWrite()) return true;
    this.lastActivity = Date.now();
    const ok = this.socket.write(frame);
    if (this.socket.writableLength > MAX_WRITE_BACKLOG) {
      this.logger.warn({ backlog: this.socket.writableLength }, "SPDY peer is not reading; dropping the connection");
      this.socket.destroy();
    }
    return ok;
  }

  private writeControlReply(frame: Buffer): void {
    if (this.socket.writableLength > CONTROL_REPLY_BACKLOG) return;
    this.write(frame);
  }

  private rst(streamId: number, status: number): void {
    this.write(encodeRstStream(streamId, status));
  }

  private endSocket(): void {
    if (this.socketEnded || this.gone) return;
    this.socketEnded = true;
    this.socket.end();
  }

  private flushDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const cb of waiters) cb();
  }

  private setCongested(stream: SpdyStream, full: boolean): void {
    if (full) this.full.add(stream);
    else this.full.delete(stream);
    // One slow reader holds up the whole connection: without flow control there is no other
    // way to stop a peer, and the alternative (buffering without bound) is worse.
    const pause = this.full.size > 0;
    if (pause === this.readingPaused) return;
    this.readingPaused = pause;
    if (pause) this.socket.pause();
    else if (!this.gone) this.socket.resume();
  }

  // --- lifetime -----------------------------------------------------------------------------

  private armIdleTimer(ms: number): void {
    this.idleTimer = setTimeout(() => {
      const idle = Date.now() - this.lastActivity;
      if (idle < this.idleTimeoutMs) {
        this.armIdleTimer(this.idleTimeoutMs - idle);
        return;
      }
      this.logger.info({ idleMs: idle }, "SPDY session idle; closing");
      this.close();
    }, ms);
    this.idleTimer.unref();
  }

  private closeStreams(err: Error | undefined): void {
    for (const stream of [...this.streams.values()]) stream.sessionGone(err);
    this.streams.clear();
    this.full.clear();
    // Keep reading so the peer's hang-up is seen; what it still sends is dropped.
    if (this.readingPaused && !this.gone) {
      this.readingPaused = false;
      this.socket.resume();
    }
  }

  private teardown(): void {
    if (this.gone) return;
    this.gone = true;
    this.closing = true;
    this.parser.stop();
    clearTimeout(this.idleTimer);
    clearTimeout(this.lingerTimer);
    this.closeStreams(new CanceledError("SPDY connection closed"));
    this.flushDrainWaiters();
    if (!this.socket.destroyed) this.socket.destroy();
    this.emit("close");
  }

  private makeHost(): StreamHost {
    return {
      logger: this.logger,
      alive: () => this.canWrite(),
      write: (frame) => this.write(frame),
      onDrain: (cb) => {
        if (!this.canWrite()) cb();
        else this.drainWaiters.push(cb);
      },
      reply: (stream, headers, fin) => this.write(encodeSynReply(stream.id, headers, fin, this.compressor)),
      rst: (id, status) => this.rst(id, status),
      congested: (stream, full) => this.setCongested(stream, full),
      done: (stream) => {
        if (this.streams.get(stream.id) !== stream) return;
        this.streams.delete(stream.id);
        this.setCongested(stream, false);
        this.closeIfIdleAfterGoAway();
      },
    };
  }
}

function onceEither(emitter: EventEmitter, a: string, b: string, cb: () => void): void {
  const fire = (): void => {
    emitter.off(a, fire);
    emitter.off(b, fire);
    cb();
  };
  emitter.on(a, fire);
  emitter.on(b, fire);
}
