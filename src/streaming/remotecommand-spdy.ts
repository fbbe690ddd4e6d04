// Exec and attach over SPDY: collects the client's streams by their `streamtype` header and,
// once every stream the request implies is there, runs the session over them.
//
// client-go opens the streams one at a time and waits for each SYN_REPLY before the next, so
// every stream is answered the moment it arrives; waiting for the full set first would
// deadlock the client on its first stream.
import type { Logger } from "../logger/logger.js";
import { messageOf } from "../errors/errors.js";
import type { StreamingBackend } from "./backend.js";
import { protocolGeneration, runRemoteCommand, StreamType, type RemoteCommandRequest } from "./remotecommand.js";
import { RstStatus } from "./spdy-frames.js";
import type { SpdySession } from "./spdy-session.js";
import type { SpdyStream } from "./spdy-stream.js";

export interface SpdyRemoteCommandOptions {
  session: SpdySession;
  protocol: string;
  request: RemoteCommandRequest;
  backend: StreamingBackend;
  logger: Logger;
  /** How long the client has to open every expected stream. */
  streamCreationTimeoutMs: number;
}

/** The stream types a request implies, the error stream always among them. */
export function expectedStreamTypes(request: RemoteCommandRequest, generation: number): Set<string> {
  const p = request.params;
  const types = new Set<string>([StreamType.Error]);
  if (p.stdin) types.add(StreamType.Stdin);
  if (p.stdout) types.add(StreamType.Stdout);
  // A terminal has one output stream; client-go opens no stderr stream with a TTY.
  if (p.stderr && !p.tty) types.add(StreamType.Stderr);
  // Resize arrived with v3.
  if (p.tty && generation >= 3) types.add(StreamType.Resize);
  return types;
}

/** Attaches to a fresh SpdySession (before its first tick, so no stream is refused). */
export function serveSpdyRemoteCommand(opts: SpdyRemoteCommandOptions): void {
  const { session, request, logger } = opts;
  const generation = protocolGeneration(opts.protocol);
  const expected = expectedStreamTypes(request, generation);
  const streams = new Map<string, SpdyStream>();
  let running = false;

  const timer = setTimeout(() => {
    logger.info({ missing: [...expected].filter((t) => !streams.has(t)) }, "streaming: client did not open its streams in time; closing");
    session.close();
  }, opts.streamCreationTimeoutMs);
  timer.unref();

  const controller = new AbortController();
  session.on("close", () => {
    clearTimeout(timer);
    controller.abort();
  });

  session.on("stream", (stream: SpdyStream) => {
    // A reset or a vanished connection surfaces as 'error' when someone listens; this
    // listener keeps it from becoming an uncaught exception.
    stream.on("error", (err) => logger.debug({ streamId: stream.id, err: messageOf(err) }, "streaming: SPDY stream failed"));
    const type = stream.headers.streamtype ?? "";
    if (running || streams.has(type)) {
      logger.debug({ streamId: stream.id, type }, "streaming: refusing an extra SPDY stream");
      stream.reset(RstStatus.RefusedStream);
      return;
    }
    stream.reply();
    if (!expected.has(type)) {
      // Answered (the client waits for that) but otherwise ignored; what it sends is drained
      // so it cannot stall the connection.
      logger.debug({ streamId: stream.id, type }, "streaming: ignoring a SPDY stream of an unknown type");
      stream.resume();
      return;
    }
    streams.set(type, stream);
    if (streams.size < expected.size) return;
    clearTimeout(timer);
    running = true;
    start();
  });

  function start(): void {
    const error = streams.get(StreamType.Error)!;
    const stdin = streams.get(StreamType.Stdin);
    const stdout = streams.get(StreamType.Stdout);
    const stderr = streams.get(StreamType.Stderr);
    const resize = streams.get(StreamType.Resize);
    // The client writes nothing on the streams it reads; drain them anyway (see above).
    for (const s of [error, stdout, stderr]) s?.resume();
    // v1 servers half-close stdin right away: v1 clients wait for it.
    if (generation === 1) stdin?.end();
    void runRemoteCommand({
      request,
      generation,
      backend: opts.backend,
      logger,
      channels: {
        ...(stdin ? { stdin } : {}),
        ...(stdout ? { stdout } : {}),
        ...(stderr ? { stderr } : {}),
        ...(resize ? { resize } : {}),
        signal: controller.signal,
        finish(status) {
          if (status && status.length > 0) error.end(status);
          else error.end();
          // Streams already ended (stdout, stderr, error) flush first; then GOAWAY and EOF.
          session.close();
        },
      },
    });
  }
}
