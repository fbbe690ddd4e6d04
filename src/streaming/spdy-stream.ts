// One client-opened SPDY/3.1 stream as a Duplex: DATA frames out, the peer's DATA in, FIN and
// RST_STREAM both ways. Streams are made by SpdySession, which they reach through StreamHost.
import { Duplex } from "node:stream";
import { CanceledError } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import { RstStatus, encodeDataFrame } from "./spdy-frames.js";

/**
 * Largest DATA payload we send. Small enough that streams sharing the connection interleave
 * and a frame is cheap to copy, large enough to keep the per-frame overhead negligible; it is
 * also the buffer size client-go copies with.
 */
export const MAX_DATA_PAYLOAD = 32 * 1024;
/** Per-stream receive buffer before the socket is paused, and per-stream send buffer. */
const STREAM_BUFFER_BYTES = 64 * 1024;

/** What a stream needs from its session; kept off SpdySession's public surface. */
export interface StreamHost {
  readonly logger: Logger;
  /** Queues a frame; false when the socket wants 'drain' before more. */
  write(frame: Buffer): boolean;
  /** Calls back on the next 'drain', or at once when the connection is gone. */
  onDrain(cb: () => void): void;
  reply(stream: SpdyStream, headers: Record<string, string>, fin: boolean): void;
  rst(streamId: number, status: number): void;
  congested(stream: SpdyStream, full: boolean): void;
  /** Both directions finished (FINs exchanged) or the stream was reset or destroyed. */
  done(stream: SpdyStream): void;
  /** Frames can still be written. */
  alive(): boolean;
}

/**
 * One client-opened stream. Writing sends DATA frames (at most MAX_DATA_PAYLOAD each, each
 * waiting for the socket to drain when it is full); end() sends an empty DATA frame with FIN.
 * The readable side ends when the peer sends FIN. 'close' follows when both directions are
 * done, on reset (either side) and when the connection goes. 'error' is emitted only if
 * someone listens for it; otherwise the stream just closes.
 */
export class SpdyStream extends Duplex {
  readonly id: number;
  /** The SYN_STREAM headers: names lowercased, multiple values joined with "," (SPDY separates them with NUL). */
  readonly headers: Readonly<Record<string, string>>;
  private readonly host: StreamHost;
  private replied = false;
  private localFin = false;
  private remoteFin = false;
  private finished = false;

  /** @internal streams are made by SpdySession */
  constructor(host: StreamHost, id: number, headers: Record<string, string>, unidirectional: boolean) {
    super({ allowHalfOpen: true, readableHighWaterMark: STREAM_BUFFER_BYTES, writableHighWaterMark: STREAM_BUFFER_BYTES });
    this.host = host;
    this.id = id;
    this.headers = Object.freeze(headers);
    if (unidirectional) {
      // The peer will not read this stream: no reply, and our side counts as finished.
      this.replied = true;
      this.localFin = true;
      this.end();
    }
  }

  /**
   * SYN_REPLY (spdystream expects a reply to every stream the server accepts, and drops DATA
   * that comes before it; Kubernetes servers reply with no headers). The first write() or end()
   * sends an empty reply if none was sent yet. `fin` also ends our writing side. Idempotent.
   */
  reply(headers: Record<string, string> = {}, fin = false): void {
    if (this.replied || this.finished) return;
    this.replied = true;
    this.host.reply(this, headers, fin);
    if (fin) {
      this.localFin = true;
      // Before end(): finishing both sides lets autoDestroy run, and _destroy must already
      // know the stream ended cleanly or it would send RST_STREAM.
      this.checkDone();
      this.end();
    }
  }

  /** RST_STREAM with a status code (CANCEL 5 by default); closes both directions at once. */
  reset(status: number = RstStatus.Cancel): void {
    if (this.finished) {
      if (!this.destroyed) this.destroy();
      return;
    }
    this.resetWith(status, undefined);
  }

  /** @internal Sends RST (unless the session is gone) and closes, with `err` if anyone listens. */
  resetWith(status: number, err: Error | undefined): void {
    if (this.finished) return;
    this.finished = true;
    if (this.host.alive()) this.host.rst(this.id, status);
    this.host.done(this);
    this.abort(err);
  }

  /** @internal the peer's FIN has been received */
  get readableFinishedByPeer(): boolean {
    return this.remoteFin;
  }

  /** @internal */
  peerData(chunk: Buffer): void {
    if (this.finished || chunk.length === 0) return;
    if (!this.push(chunk)) this.host.congested(this, true);
  }

  /** @internal */
  peerFin(): void {
    if (this.finished || this.remoteFin) return;
    this.remoteFin = true;
    this.push(null);
    this.checkDone();
  }

  /** @internal */
  peerReset(status: number): void {
    if (this.finished) return;
    this.finished = true;
    this.host.done(this);
    // CANCEL is how peers say "done with this stream", not a failure.
    this.abort(status === RstStatus.Cancel ? undefined : new CanceledError(`SPDY stream ${this.id} reset by the peer (status ${status})`));
  }

  /** @internal the connection is gone or being closed */
  sessionGone(err: Error | undefined): void {
    if (this.finished) return;
    this.finished = true;
    this.abort(err);
  }

  override _read(): void {
    this.host.congested(this, false);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.sendData(chunk, false, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.localFin) {
      cb();
      return;
    }
    this.sendData(Buffer.alloc(0), true, () => {
      this.checkDone(); // before cb(): see reply()
      cb();
    });
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // Destroyed by its user while still open: tell the peer, or it would wait forever.
    if (!this.finished) {
      this.finished = true;
      if (this.host.alive()) this.host.rst(this.id, RstStatus.Cancel);
      this.host.done(this);
    }
    cb(err);
  }

  private sendData(data: Buffer, fin: boolean, cb: () => void): void {
    if (!this.replied) this.reply();
    let offset = 0;
    const step = (): void => {
      for (;;) {
        // Reset or connection gone meanwhile: the rest has nowhere to go.
        if (this.finished || !this.host.alive()) {
          cb();
          return;
        }
        const n = Math.min(MAX_DATA_PAYLOAD, data.length - offset);
        const last = offset + n >= data.length;
        const ok = this.host.write(encodeDataFrame(this.id, data.subarray(offset, offset + n), last && fin));
        offset += n;
        if (last) {
          if (fin) this.localFin = true;
          if (ok) cb();
          else this.host.onDrain(cb);
          return;
        }
        if (!ok) {
          this.host.onDrain(step);
          return;
        }
      }
    };
    step();
  }

  private checkDone(): void {
    if (this.finished || !this.localFin || !this.remoteFin) return;
    // Protocol-wise the stream is over; the Duplex closes itself once its reader has consumed
    // the end (autoDestroy), which the session need not wait for.
    this.finished = true;
    this.host.done(this);
  }

  private abort(err: Error | undefined): void {
    if (this.destroyed) return;
    this.destroy(err !== undefined && this.listenerCount("error") > 0 ? err : undefined);
  }
}
