// gRPC calls to containerd over one HTTP/2 connection on its socket, without grpc-js's client
// machinery: unary calls, and bidirectional calls whose messages go out as the caller's own
// buffers.
//
// A containerd unary call is always the same small thing: one request message, one answer or
// a status, a namespace header and a deadline. grpc-js builds a resolver, a load balancer, a
// call stack of filters and interceptors and a metadata object around each one; on this
// machine that cost 0.47 ms of CPU per call against 0.22 ms for the HTTP/2 exchange itself,
// and podshim makes several calls for every pod, container and exec.
//
// A content write (a pulled layer) is the one stream that moves bulk data. Through grpc-js
// each message was gathered, encoded and framed, three copies of every byte in fresh buffers;
// a 100 MB pull spent a third of podshim's CPU on those copies and the major collections their
// external memory set off. Here a message is written as a small header followed by the
// caller's buffers (an HTTP body's own chunks), with no copy. The other streams (events,
// content reads, snapshot lists) stay with grpc-js, where they are few and long.
//
// The wire is gRPC over HTTP/2 (grpc/doc/PROTOCOL-HTTP2.md): a POST to /package.Service/Method
// with content-type application/grpc and te: trailers; each message is length-prefixed
// (1 byte compressed flag, 4 bytes big-endian length); the answer carries the same framing and
// ends with trailers grpc-status and grpc-message (percent-encoded), or is a trailers-only
// answer with the status in its headers.
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type IncomingHttpStatusHeader } from "node:http2";
import { connect } from "node:net";
import { Deframer, decodeMessage, frameHeader, framed, GrpcCode, timeoutHeader } from "../util/grpc-wire.js";


/** A call that ended with a status other than OK: what the server said, or what went wrong here. */
export class GrpcStatusError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`${code} ${details}`);
    this.name = "GrpcStatusError";
  }
}

export interface GrpcChannelOptions {
  /** The unix socket the server listens on. */
  socket: string;
  /** Answers larger than this fail with RESOURCE_EXHAUSTED. */
  maxReceiveBytes: number;
  /** HTTP/2 receive window, per stream and for the connection. */
  windowBytes: number;
}

export interface CallOptions {
  /** Extra request headers (lower-case names): containerd's namespace and lease. */
  headers: Readonly<Record<string, string>>;
  /** Epoch ms; the call is cancelled and fails with DEADLINE_EXCEEDED when it passes. */
  deadline?: number;
  signal?: AbortSignal;
}

export interface BidiCallOptions extends CallOptions {
  /** Told once when the call ends, with its status code (metrics). */
  onEnd?: (code: number) => void;
}

/** HTTP/2 stream ids are 31 bits and a client's are odd: a connection carries ~2^30 calls. A
 * busy node makes that many in months, so a connection is retired well before. */
const CALLS_PER_CONNECTION = 2 ** 29;
const { NGHTTP2_CANCEL } = http2.constants;

/**
 * One connection, made on first use and made again by the first call after it closed (the
 * server restarted, the socket went away). A call that cannot connect, or whose connection
 * dies before it is answered, fails with UNAVAILABLE at once: containerd is local, so waiting
 * for it is the caller's decision, not the transport's.
 */
export class GrpcChannel {
  private session: ClientHttp2Session | undefined;
  private callsOnSession = 0;
  /** Calls not yet ended: while there are any, the connection keeps the process alive. */
  private running = 0;

  constructor(private readonly opts: GrpcChannelOptions) {}

  /** One request, one answer. Rejects with GrpcStatusError. */
  call(path: string, message: Uint8Array, opts: CallOptions): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const answers: Buffer[] = [];
      const call = this.start(path, opts, {
        message: (m) => {
          if (answers.length > 0) return new GrpcStatusError(GrpcCode.INTERNAL, "the server sent more than one answer to a unary call");
          answers.push(m);
          return undefined;
        },
        end: (err) => {
          if (err) return reject(err);
          const answer = answers[0];
          if (answer) resolve(answer);
          else reject(new GrpcStatusError(GrpcCode.INTERNAL, "the answer holds no message"));
        },
      });
      if (call) call.stream.end(framed(message));
    });
  }

  /**
   * A bidirectional call. Rejects nothing itself: a call that cannot start fails its first
   * send or next with the reason.
   */
  bidi(path: string, opts: BidiCallOptions): BidiCall {
    return new BidiCall((events) => this.start(path, opts, events), opts.onEnd);
  }

  /** Closes the connection; calls still running on it fail with UNAVAILABLE. */
  close(): void {
    const s = this.session;
    this.session = undefined;
    s?.destroy();
  }

  /**
   * Sends a call's headers and follows it to its end: each answer message goes to
   * `events.message` (which may refuse it with a status), and `events.end` is told exactly once,
   * with no error when the server ended with OK. Returns undefined when the call ended before
   * it began (cancelled, past its deadline, no connection).
   */
  private start(path: string, opts: CallOptions, events: CallEvents): StartedCall | undefined {
    if (opts.signal?.aborted) {
      events.end(new GrpcStatusError(GrpcCode.CANCELLED, "cancelled before it was sent"));
      return undefined;
    }
    const remaining = opts.deadline === undefined ? undefined : opts.deadline - Date.now();
    if (remaining !== undefined && remaining <= 0) {
      events.end(new GrpcStatusError(GrpcCode.DEADLINE_EXCEEDED, "deadline exceeded before the call was sent"));
      return undefined;
    }

    let stream: ClientHttp2Stream;
    let session: ClientHttp2Session;
    try {
      session = this.connection();
      stream = session.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        te: "trailers",
        ...(remaining !== undefined ? { "grpc-timeout": timeoutHeader(remaining) } : {}),
        ...opts.headers,
      });
    } catch (err) {
      this.forget(this.session);
      events.end(new GrpcStatusError(GrpcCode.UNAVAILABLE, `cannot start a call: ${(err as Error).message}`));
      return undefined;
    }

    this.running++;
    session.ref();
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (err: GrpcStatusError | undefined): void => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      if (--this.running === 0) this.session?.unref();
      opts.signal?.removeEventListener("abort", onAbort);
      if (!stream.closed) {
        if (err) stream.close(NGHTTP2_CANCEL);
        else if (!stream.writableEnded) stream.close();
      }
      events.end(err);
    };
    const onAbort = (): void => finish(new GrpcStatusError(GrpcCode.CANCELLED, "cancelled by the caller"));
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    if (remaining !== undefined) timer = setTimeout(() => finish(new GrpcStatusError(GrpcCode.DEADLINE_EXCEEDED, "deadline exceeded")), remaining);

    let httpStatus = 0;
    let headerStatus: IncomingHttpHeaders | undefined;
    const deframer = new Deframer(this.opts.maxReceiveBytes);
    stream.on("response", (headers: IncomingHttpHeaders & IncomingHttpStatusHeader) => {
      httpStatus = headers[":status"] ?? 0;
      // A trailers-only answer (an error without a message) has its status here.
      if (headers["grpc-status"] !== undefined) headerStatus = headers;
    });
    stream.on("data", (chunk: Buffer) => {
      if (settled) return;
      const messages = deframer.push(chunk);
      if (!Array.isArray(messages)) return finish(messages.problem === "compressed"
        ? new GrpcStatusError(GrpcCode.INTERNAL, "the answer is compressed, which this client never asked for")
        : new GrpcStatusError(GrpcCode.RESOURCE_EXHAUSTED, `answer larger than ${this.opts.maxReceiveBytes} bytes (${messages.length})`));
      for (const m of messages) {
        const refused = events.message(m);
        if (refused) return finish(refused);
      }
    });
    let trailers: IncomingHttpHeaders | undefined;
    stream.on("trailers", (t: IncomingHttpHeaders) => (trailers = t));
    stream.on("error", (err: NodeJS.ErrnoException) => finish(streamFailure(err, stream.rstCode, this.opts.socket)));
    // The server's status ends the call when it arrives, even while this side still sends
    // (a content write refused at its first message): the end of the answer, or the stream's
    // close when that never came.
    const conclude = (): void => {
      if (settled) return;
      const status = trailers ?? headerStatus;
      if (!status) {
        finish(new GrpcStatusError(GrpcCode.UNAVAILABLE, httpStatus ? `the call ended without a status (HTTP ${httpStatus})` : `the connection to ${this.opts.socket} closed before an answer`));
        return;
      }
      const code = Number(status["grpc-status"]);
      if (code !== GrpcCode.OK) {
        finish(new GrpcStatusError(Number.isInteger(code) ? code : GrpcCode.UNKNOWN, decodeMessage(status["grpc-message"])));
        return;
      }
      if (deframer.buffered > 0) return finish(new GrpcStatusError(GrpcCode.INTERNAL, `the answer's framing is broken (${deframer.buffered} bytes after the last whole message)`));
      finish(undefined);
    };
    stream.on("end", conclude);
    stream.on("close", conclude);
    return { stream, cancel: () => finish(new GrpcStatusError(GrpcCode.CANCELLED, "cancelled by the caller")) };
  }

  private connection(): ClientHttp2Session {
    const current = this.session;
    if (current && !current.closed && !current.destroyed) {
      if (++this.callsOnSession < CALLS_PER_CONNECTION) return current;
      // Retire it: calls running on it finish there, new ones go to a new connection.
      this.session = undefined;
      current.close();
    }
    this.callsOnSession = 1;
    const { socket, windowBytes } = this.opts;
    const session = http2.connect("http://localhost", {
      createConnection: () => connect(socket),
      settings: { initialWindowSize: windowBytes },
      // Node caps what a connection may buffer at 10 MB and then fails its streams; the bound
      // that matters here is maxReceiveBytes per answer, checked as the answer arrives.
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
    });
    session.once("connect", () => session.setLocalWindowSize(windowBytes));
    // Errors reach the calls through their streams; the session only has to be forgotten.
    session.on("error", () => this.forget(session));
    session.once("goaway", () => this.forget(session));
    session.once("close", () => this.forget(session));
    // Idle, the connection keeps nothing alive (a CLI run of podshim must be able to exit).
    if (this.running === 0) session.unref();
    this.session = session;
    return session;
  }

  private forget(session: ClientHttp2Session | undefined): void {
    if (session && this.session === session) this.session = undefined;
  }
}

interface CallEvents {
  /** An answer message; a status returned ends the call with it. */
  message(m: Buffer): GrpcStatusError | undefined;
  end(err: GrpcStatusError | undefined): void;
}

interface StartedCall {
  stream: ClientHttp2Stream;
  cancel(): void;
}

/**
 * The caller's side of a bidirectional call: messages out with `send`, answers in with `next`,
 * `end` when there is nothing more to send. The first failure (the server's status, a reset,
 * the deadline, a cancel) fails every send and next from then on.
 */
export class BidiCall {
  private readonly call: StartedCall | undefined;
  private readonly answers: Buffer[] = [];
  private readonly waiters: Array<{ resolve: (m: Buffer | undefined) => void; reject: (err: GrpcStatusError) => void }> = [];
  private readonly drainWaiters = new Set<(err?: GrpcStatusError) => void>();
  private ended = false;
  private failure: GrpcStatusError | undefined;

  constructor(start: (events: CallEvents) => StartedCall | undefined, onEnd?: (code: number) => void) {
    this.call = start({
      message: (m) => {
        const waiter = this.waiters.shift();
        if (waiter) waiter.resolve(m);
        else this.answers.push(m);
        return undefined;
      },
      end: (err) => {
        this.ended = true;
        this.failure = err;
        onEnd?.(err ? err.code : GrpcCode.OK);
        for (const w of this.waiters.splice(0)) {
          if (err) w.reject(err);
          else w.resolve(undefined);
        }
        for (const d of [...this.drainWaiters]) d(err ?? new GrpcStatusError(GrpcCode.INTERNAL, "the server ended the call while a message was being sent"));
      },
    });
    this.call?.stream.on("drain", () => {
      for (const d of [...this.drainWaiters]) d();
    });
  }

  /**
   * Sends one message made of `parts`, in order, without copying them (they must not change
   * until the call ends). Resolves when the connection takes more.
   */
  send(parts: readonly Uint8Array[]): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended || !this.call) return Promise.reject(new GrpcStatusError(GrpcCode.INTERNAL, "send after the call ended"));
    const stream = this.call.stream;
    const length = parts.reduce((n, p) => n + p.length, 0);
    stream.cork();
    stream.write(frameHeader(length));
    let more = true;
    for (const p of parts) more = stream.write(p);
    stream.uncork();
    if (more) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onDrain = (err?: GrpcStatusError) => {
        this.drainWaiters.delete(onDrain);
        if (err) reject(err);
        else resolve();
      };
      this.drainWaiters.add(onDrain);
    });
  }

  /** The next answer; undefined once the server ended the call with OK. */
  next(): Promise<Buffer | undefined> {
    const queued = this.answers.shift();
    if (queued) return Promise.resolve(queued);
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Nothing more to send; answers keep coming until the server ends the call. */
  end(): void {
    if (!this.ended) this.call?.stream.end();
  }

  /** Ends the call now (the server sees a cancel); pending sends and nexts fail CANCELLED. */
  cancel(): void {
    this.call?.cancel();
  }
}

/**
 * What a stream that failed before its status came means. A reset from the server carries an
 * HTTP/2 error code, mapped much as gRPC maps them (REFUSED_STREAM: never processed, so
 * UNAVAILABLE; a protocol error is a bug, INTERNAL), except that a CANCEL from the server (one
 * going down) is UNAVAILABLE too: this caller cancelled nothing, and a call it cancels ends
 * before its stream does. Anything else is the connection failing.
 */
function streamFailure(err: NodeJS.ErrnoException, rstCode: number | undefined, socket: string): GrpcStatusError {
  if (err.code !== "ERR_HTTP2_STREAM_ERROR" || rstCode === undefined) {
    return new GrpcStatusError(GrpcCode.UNAVAILABLE, `connection to ${socket} failed: ${err.message}`);
  }
  const c = http2.constants;
  const code = rstCode === c.NGHTTP2_REFUSED_STREAM || rstCode === c.NGHTTP2_CANCEL ? GrpcCode.UNAVAILABLE
    : rstCode === c.NGHTTP2_ENHANCE_YOUR_CALM ? GrpcCode.RESOURCE_EXHAUSTED
    : rstCode === c.NGHTTP2_INADEQUATE_SECURITY ? GrpcCode.PERMISSION_DENIED
    : GrpcCode.INTERNAL;
  return new GrpcStatusError(code, `the server at ${socket} reset the call: ${err.message}`);
}
