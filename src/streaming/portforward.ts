// Port-forward over SPDY (`portforward.k8s.io`), the protocol kubectl, crictl and the kubelet
// use. One SPDY connection carries any number of forwarded TCP connections; each is a pair of
// client-opened streams, `error` then `data`, sharing a `requestid` and naming the pod port in
// a `port` header. Every pair gets its own connection into the pod.
//
// End of a forward: the client's FIN on data half-closes the pod connection; the pod's EOF
// FINs the data stream; when the pod connection is gone the error stream is FIN'd (empty on
// success, the failure's text otherwise). client-go treats any text there as fatal for the
// whole session, so only real failures are written.
import type { Duplex } from "node:stream";
import { messageOf } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import type { StreamingBackend } from "./backend.js";
import type { ForwardLimiter } from "./limits.js";
import { RstStatus } from "./spdy-frames.js";
import type { SpdySession } from "./spdy-session.js";
import type { SpdyStream } from "./spdy-stream.js";
import { forwardErrorText } from "./websocket.js";

export const PORT_FORWARD_PROTOCOL = "portforward.k8s.io";

export const PortForwardStreamType = {
  Data: "data",
  Error: "error",
} as const;

export interface SpdyPortForwardOptions {
  session: SpdySession;
  podSandboxId: string;
  backend: StreamingBackend;
  logger: Logger;
  /** How long the second stream of a pair may take to arrive. */
  streamCreationTimeoutMs: number;
  /** Caps on concurrent forwarded connections; none = no cap. */
  limiter?: ForwardLimiter;
}

interface Pair {
  requestId: string;
  data?: SpdyStream;
  error?: SpdyStream;
  timer?: NodeJS.Timeout;
  started: boolean;
  done: boolean;
  conn?: Duplex;
  release?: () => void;
}

/** A TCP port from a header value: decimal digits only, 1..65535. */
export function parsePort(value: string | undefined): number | undefined {
  if (value === undefined || !/^[0-9]{1,5}$/.test(value)) return undefined;
  const port = Number(value);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** Attaches to a fresh SpdySession (before its first tick, so no stream is refused). */
export function serveSpdyPortForward(opts: SpdyPortForwardOptions): void {
  const { session, logger, podSandboxId } = opts;
  const pairs = new Map<string, Pair>();

  session.on("close", () => {
    for (const pair of pairs.values()) {
      clearTimeout(pair.timer);
      pair.done = true;
      pair.release?.();
      pair.conn?.destroy();
    }
    pairs.clear();
  });

  session.on("stream", (stream: SpdyStream) => {
    stream.on("error", (err) => logger.debug({ streamId: stream.id, err: messageOf(err) }, "streaming: SPDY port-forward stream failed"));
    const type = stream.headers.streamtype;
    const port = parsePort(stream.headers.port);
    if (port === undefined || (type !== PortForwardStreamType.Data && type !== PortForwardStreamType.Error)) {
      logger.debug({ streamId: stream.id, type, port: stream.headers.port }, "streaming: refusing a port-forward stream with a bad type or port");
      stream.reset(RstStatus.ProtocolError);
      return;
    }
    // Very old clients send no requestid; theirs follows from the ids (error first, data next).
    const requestId = stream.headers.requestid ?? String(type === PortForwardStreamType.Error ? stream.id : stream.id - 2);
    let pair = pairs.get(requestId);
    if (!pair) {
      pair = { requestId, started: false, done: false };
      pairs.set(requestId, pair);
      const p = pair;
      p.timer = setTimeout(() => fail(p, "timed out waiting for streams"), opts.streamCreationTimeoutMs);
      p.timer.unref();
    }
    if (pair[type] !== undefined || pair.done) {
      stream.reset(RstStatus.ProtocolError);
      fail(pair, `received a second ${type} stream for request ${requestId}`);
      return;
    }
    pair[type] = stream;
    stream.reply();
    if (type === PortForwardStreamType.Error) {
      // The client half-closes its error stream at once and never writes on it.
      stream.resume();
    }
    stream.once("close", () => {
      // The client reset a stream of a running forward (it does so to data once it read the
      // EOF), or the connection went: either way the forward is over.
      if (pair.started) finish(pair);
    });
    if (pair.data && pair.error) {
      clearTimeout(pair.timer);
      pair.started = true;
      void forward(pair, pair.data, pair.error, parsePort(pair.data.headers.port)!);
    }
  });

  async function forward(pair: Pair, data: SpdyStream, error: SpdyStream, port: number): Promise<void> {
    const log = logger.child({ port, requestId: pair.requestId });
    const slot = opts.limiter?.acquire(podSandboxId);
    if (slot && "refused" in slot) {
      log.info({ reason: slot.refused }, "streaming: refusing a port-forward connection");
      fail(pair, slot.refused);
      return;
    }
    pair.release = slot?.release;
    let conn: Duplex;
    try {
      conn = await opts.backend.portForward(podSandboxId, port);
    } catch (err) {
      log.info({ err: messageOf(err) }, "streaming: could not connect to the pod port");
      fail(pair, forwardErrorText(port, podSandboxId, err));
      return;
    }
    if (pair.done) {
      conn.destroy();
      return;
    }
    pair.conn = conn;
    log.debug("streaming: forwarding a connection");
    conn.on("error", (err) => {
      log.info({ err: messageOf(err) }, "streaming: pod connection failed");
      fail(pair, forwardErrorText(port, podSandboxId, err));
    });
    // The client's FIN half-closes the pod side (pipe ends conn); the pod's EOF FINs data.
    data.pipe(conn);
    conn.pipe(data);
    conn.once("close", () => finish(pair));
  }

  /** Ends a pair: FIN on error (with `message` when it failed) and data, pod connection dropped. */
  function finish(pair: Pair, message?: string): void {
    if (pair.done) return;
    pair.done = true;
    clearTimeout(pair.timer);
    pair.release?.();
    if (pairs.get(pair.requestId) === pair) pairs.delete(pair.requestId);
    const { data, error, conn } = pair;
    if (conn) {
      data?.unpipe(conn);
      conn.unpipe();
      conn.destroy();
    }
    if (error && !error.destroyed && !error.writableEnded) {
      if (message) error.end(message);
      else error.end();
    }
    if (data && !data.destroyed && !data.writableEnded) data.end();
  }

  function fail(pair: Pair, message: string): void {
    if (pair.done) return;
    logger.debug({ requestId: pair.requestId, message }, "streaming: port-forward failed");
    if (!pair.error) {
      // Nowhere to say why: the data stream alone is reset.
      pair.done = true;
      clearTimeout(pair.timer);
      pair.release?.();
      if (pairs.get(pair.requestId) === pair) pairs.delete(pair.requestId);
      pair.conn?.destroy();
      pair.data?.reset(RstStatus.Cancel);
      return;
    }
    finish(pair, message);
  }
}
