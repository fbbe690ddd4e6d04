// One exec or attach session, whatever carries it. SPDY streams and WebSocket channels are both
// adapted to RemoteCommandChannels; this file decides what a client's stdin EOF means, when the
// session is over and what the error stream says, so those rules exist once.
//
// Stdin EOF (the client half-closed stdin), as containerd does it:
//   exec without TTY   -> the process's stdin is closed; output keeps flowing until it exits.
//   exec with TTY      -> output stops being forwarded; the session still ends with the exit.
//   attach with TTY    -> detach.
//   attach without TTY -> the backend's stdin is ended; the backend closes the container's
//                         stdin when it is stdin_once and detaches (ends its outputs) otherwise.
// The session ends: exec when the process exits (after its output reached the transport);
// attach when the container exits, when all its outputs have ended (detached), or, with no
// output requested, when the client's stdin ended. A vanished client detaches at once.
import type { Readable, Writable } from "node:stream";
import { messageOf } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import { sleep } from "../util/timeout.js";
import type { AttachParams, ExecParams, ProcessStreams, StreamingBackend, TerminalSize } from "./backend.js";

export const RemoteCommandProtocol = {
  V1: "channel.k8s.io",
  V2: "v2.channel.k8s.io",
  V3: "v3.channel.k8s.io",
  V4: "v4.channel.k8s.io",
  V5: "v5.channel.k8s.io",
} as const;
export type RemoteCommandProtocol = (typeof RemoteCommandProtocol)[keyof typeof RemoteCommandProtocol];

/**
 * What podshim accepts over SPDY. v5 behaves exactly like v4 there (its one addition, the close
 * signal, is a WebSocket frame); client-go offers it first, so accepting it costs nothing.
 */
export const SPDY_REMOTECOMMAND_PROTOCOLS: readonly string[] = [
  RemoteCommandProtocol.V5,
  RemoteCommandProtocol.V4,
  RemoteCommandProtocol.V3,
  RemoteCommandProtocol.V2,
  RemoteCommandProtocol.V1,
];

/** The protocol generation (1..5) a negotiated name speaks; unknown names and "" are v1. */
export function protocolGeneration(protocol: string): number {
  switch (protocol) {
    case RemoteCommandProtocol.V5:
      return 5;
    case RemoteCommandProtocol.V4:
      return 4;
    case RemoteCommandProtocol.V3:
      return 3;
    case RemoteCommandProtocol.V2:
      return 2;
    default:
      return 1;
  }
}

/** The `streamtype` header values of remotecommand SPDY streams. */
export const StreamType = {
  Error: "error",
  Stdin: "stdin",
  Stdout: "stdout",
  Stderr: "stderr",
  Resize: "resize",
} as const;
export type StreamType = (typeof StreamType)[keyof typeof StreamType];

/**
 * A transport's view of one session. Present members are exactly what the request asked for
 * (resize only with a TTY and a protocol that has it).
 */
export interface RemoteCommandChannels {
  /** The client's stdin; 'end' means the client half-closed it. */
  stdin?: Readable;
  /** To the client; end() tells the client this stream is over. */
  stdout?: Writable;
  stderr?: Writable;
  /** Terminal sizes as a stream of JSON objects. */
  resize?: Readable;
  /**
   * Writes the error-stream payload (none: nothing is written) and ends the session. Called at
   * most once, and never after `signal` aborted.
   */
  finish(status: Buffer | undefined): void;
  /** Aborts when the client connection is gone before finish(). */
  signal: AbortSignal;
}

export type RemoteCommandRequest =
  | { kind: "exec"; params: ExecParams }
  | { kind: "attach"; params: AttachParams };

// ---------------------------------------------------------------------------------------------
// Error stream payloads

/** The Kubernetes Status object v4+ clients decode from the error stream. */
interface WireStatus {
  metadata: Record<string, never>;
  status: "Success" | "Failure";
  message?: string;
  reason?: string;
  details?: { causes: Array<{ reason: string; message: string }> };
  code?: number;
}

/** What a session ended with, before it is encoded for a protocol generation. */
export type SessionOutcome =
  | { kind: "success" }
  | { kind: "exit"; exitCode: number; cmd: string[] }
  | { kind: "error"; message: string };

/** containerd's wording of a non-zero exit; kubectl prints its own text from the cause. */
function exitText(cmd: string[], exitCode: number): string {
  return `command terminated with non-zero exit code: error executing command [${cmd.join(" ")}], exit code ${exitCode}`;
}

export function wireStatus(outcome: SessionOutcome): WireStatus {
  switch (outcome.kind) {
    case "success":
      return { metadata: {}, status: "Success" };
    case "exit":
      return {
        metadata: {},
        status: "Failure",
        message: exitText(outcome.cmd, outcome.exitCode),
        reason: "NonZeroExitCode",
        details: { causes: [{ reason: "ExitCode", message: String(outcome.exitCode) }] },
      };
    case "error":
      return { metadata: {}, status: "Failure", message: `Internal error occurred: ${outcome.message}`, reason: "InternalError", code: 500 };
  }
}

/**
 * The error-stream bytes for a protocol generation: v4+ always a JSON Status; v1-v3 nothing on
 * success and the Status message as plain text otherwise.
 */
export function encodeStatus(outcome: SessionOutcome, generation: number): Buffer | undefined {
  const status = wireStatus(outcome);
  if (generation >= 4) return Buffer.from(JSON.stringify(status));
  return status.status === "Success" ? undefined : Buffer.from(status.message ?? "");
}

// ---------------------------------------------------------------------------------------------
// Resize events

/** How long an ending attach waits for the backend to end its output copies. */
const ATTACH_DRAIN_MS = 5_000;

/** A garbage resize stream must not grow memory without bound; real objects are ~30 bytes. */
const MAX_RESIZE_PENDING = 64 * 1024;

/**
 * Splits a byte stream into top-level JSON objects. Go's encoder ends each with a newline, but
 * its decoder takes them back to back too, and frames may cut an object anywhere.
 */
export class JsonObjectSplitter {
  private pending = "";
  private depth = 0;
  private inString = false;
  private escaped = false;
  private scanned = 0;

  /** Feeds bytes; returns the complete objects they finished, parsed (unparseable ones dropped). */
  push(chunk: Buffer | string): unknown[] {
    this.pending += typeof chunk === "string" ? chunk : chunk.toString("utf8");
    const out: unknown[] = [];
    let start = 0;
    for (let i = this.scanned; i < this.pending.length; i++) {
      const c = this.pending[i];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === "\\") this.escaped = true;
        else if (c === '"') this.inString = false;
        continue;
      }
      if (c === '"') this.inString = this.depth > 0;
      else if (c === "{") this.depth++;
      else if (c === "}" && this.depth > 0) {
        this.depth--;
        if (this.depth === 0) {
          const text = this.pending.slice(start, i + 1);
          start = i + 1;
          try {
            out.push(JSON.parse(text.slice(text.indexOf("{"))));
          } catch {
            // A malformed object is skipped; the next one may be fine.
          }
        }
      } else if (this.depth === 0 && c !== undefined && c.trim() !== "") {
        // Bytes between objects that cannot start one are noise.
        start = i + 1;
      }
    }
    this.pending = this.pending.slice(start);
    this.scanned = this.pending.length;
    if (this.pending.length > MAX_RESIZE_PENDING) this.reset();
    return out;
  }

  private reset(): void {
    this.pending = "";
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
    this.scanned = 0;
  }
}

/** A terminal size from a decoded resize object; Go matches the field names case-insensitively. */
export function toTerminalSize(value: unknown): TerminalSize | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  let width: unknown;
  let height: unknown;
  for (const [key, v] of Object.entries(value)) {
    const k = key.toLowerCase();
    if (k === "width") width = v;
    else if (k === "height") height = v;
  }
  const valid = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 0xffff;
  if (!valid(width) || !valid(height)) return undefined;
  return { width, height };
}

// ---------------------------------------------------------------------------------------------
// The session

export interface RunRemoteCommandOptions {
  request: RemoteCommandRequest;
  /** Negotiated protocol generation (1..5): decides the error-stream encoding. */
  generation: number;
  channels: RemoteCommandChannels;
  backend: StreamingBackend;
  logger: Logger;
}

/** Pipes with backpressure; errors on either side end the forwarding instead of the process. */
function forward(from: Readable, to: Writable, logger: Logger, what: string): { stop(): void } {
  const onError = (err: unknown): void => {
    logger.debug({ err: messageOf(err) }, `streaming: ${what} failed`);
    stop();
  };
  const stop = (): void => {
    from.unpipe(to);
    from.off("error", onError);
    to.off("error", onError);
    to.off("close", stop);
    // Keep draining a source nobody reads any more, or the process blocks on a full pipe.
    if (!from.destroyed) from.resume();
  };
  from.on("error", onError);
  to.on("error", onError);
  // A client that resets its stream closes it without an error; the source must not stall.
  to.on("close", stop);
  from.pipe(to);
  return { stop };
}

/** Resolves when a writable has flushed and ended, or can take nothing more; never rejects. */
function settled(w: Writable): Promise<void> {
  if (w.writableFinished || w.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      w.off("finish", done);
      w.off("close", done);
      w.off("error", done);
      resolve();
    };
    w.on("finish", done);
    w.on("close", done);
    w.on("error", done);
  });
}

/** Resolves when a readable has ended or is unusable; never rejects. */
function ended(r: Readable): Promise<void> {
  if (r.readableEnded || r.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      r.off("end", done);
      r.off("close", done);
      r.off("error", done);
      resolve();
    };
    r.on("end", done);
    r.on("close", done);
    r.on("error", done);
  });
}

function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}

/**
 * Runs one exec or attach session over a transport. Never rejects: backend failures are
 * reported on the error stream, transport failures end the session quietly.
 */
export async function runRemoteCommand(opts: RunRemoteCommandOptions): Promise<void> {
  const { request, channels, backend, generation } = opts;
  const logger = opts.logger.child({ stream: request.kind, containerId: request.params.containerId });
  const { signal } = channels;
  const finish = (outcome: SessionOutcome): void => {
    if (signal.aborted) return;
    try {
      channels.finish(encodeStatus(outcome, generation));
    } catch (err) {
      logger.debug({ err: messageOf(err) }, "streaming: could not write the session status");
    }
  };

  // Resizes may come before the process exists (clients send the size first); they queue on
  // this chain and run in order once it does.
  let started: (streams: ProcessStreams) => void = () => {};
  let resizeChain = new Promise<ProcessStreams>((resolve) => (started = resolve));
  if (channels.resize) {
    const splitter = new JsonObjectSplitter();
    channels.resize.on("error", (err) => logger.debug({ err: messageOf(err) }, "streaming: resize stream failed"));
    channels.resize.on("data", (chunk: Buffer | string) => {
      for (const value of splitter.push(chunk)) {
        const size = toTerminalSize(value);
        // containerd ignores empty sizes: a 0x0 terminal only confuses the program inside.
        if (!size || size.width < 1 || size.height < 1) continue;
        resizeChain = resizeChain.then(async (s) => {
          try {
            await s.resize(size);
          } catch (err) {
            logger.debug({ err: messageOf(err) }, "streaming: resize failed");
          }
          return s;
        });
      }
    });
  }
  // The client's stdin buffers (paused) until the process exists; errors must not escape.
  channels.stdin?.on("error", (err) => logger.debug({ err: messageOf(err) }, "streaming: client stdin failed"));

  let streams: ProcessStreams;
  try {
    streams = request.kind === "exec" ? await backend.exec(request.params) : await backend.attach(request.params);
  } catch (err) {
    logger.info({ err: messageOf(err) }, `streaming: ${request.kind} could not start`);
    finish({ kind: "error", message: messageOf(err) });
    return;
  }
  started(streams);
  if (signal.aborted) {
    streams.detach();
    return;
  }

  const forwards: Array<{ stop(): void }> = [];
  const outputsFlushed: Array<Promise<void>> = [];
  const outputSources: Readable[] = [];
  const wireOutput = (from: Readable | undefined, to: Writable | undefined, name: string): void => {
    if (from && to) {
      outputSources.push(from);
      forwards.push(forward(from, to, logger, name));
      outputsFlushed.push(settled(to));
    } else {
      if (to) to.end();
      // Output nobody asked for is drained so the process never blocks on it.
      if (from) {
        from.on("error", () => {});
        from.resume();
      }
    }
  };
  wireOutput(streams.stdout, channels.stdout, "stdout");
  wireOutput(streams.stderr, channels.stderr, "stderr");
  const stopOutputs = (): void => {
    for (const f of forwards) f.stop();
    channels.stdout?.end();
    channels.stderr?.end();
  };

  let stdinDone: Promise<void> = new Promise(() => {});
  const clientStdin = channels.stdin;
  if (clientStdin) {
    const procStdin = streams.stdin;
    const tty = request.params.tty;
    if (procStdin) {
      procStdin.on("error", (err) => logger.debug({ err: messageOf(err) }, "streaming: process stdin failed"));
      forwards.push(forwardNoEnd(clientStdin, procStdin));
    } else {
      clientStdin.resume();
    }
    stdinDone = ended(clientStdin).then(() => {
      // A stdin torn down with its connection is not an EOF the client chose.
      if (signal.aborted || (clientStdin.destroyed && !clientStdin.readableEnded)) return;
      if (request.kind === "exec") {
        if (!tty) procStdin?.end();
        else stopOutputs();
      } else if (tty) {
        streams.detach();
      } else {
        procStdin?.end();
      }
    });
  }

  let outcome: SessionOutcome | "gone";
  try {
    if (request.kind === "exec") {
      const exit = await Promise.race([streams.exited, aborted(signal).then(() => undefined)]);
      if (exit === undefined) outcome = "gone";
      else {
        await Promise.race([Promise.all(outputsFlushed), aborted(signal)]);
        outcome = signal.aborted ? "gone" : exit.exitCode === 0 ? { kind: "success" } : { kind: "exit", exitCode: exit.exitCode, cmd: request.params.cmd };
      }
    } else {
      const endOfAttach: Array<Promise<unknown>> = [streams.exited, aborted(signal)];
      if (outputsFlushed.length > 0) endOfAttach.push(Promise.all(outputsFlushed));
      else endOfAttach.push(stdinDone);
      await Promise.race(endOfAttach);
      if (!signal.aborted) {
        // Detaching ends the backend's copies of the output; what they still hold reaches the
        // client before the status does. A backend that never ends them is cut off.
        streams.detach();
        const drainTimer = new AbortController();
        await Promise.race([Promise.all(outputSources.map(ended)), sleep(ATTACH_DRAIN_MS, drainTimer.signal), aborted(signal)]);
        drainTimer.abort();
        stopOutputs();
        await Promise.race([Promise.all(outputsFlushed), aborted(signal)]);
      }
      outcome = signal.aborted ? "gone" : { kind: "success" };
    }
  } catch (err) {
    // The backend lost track of the process; an attach must not keep teeing to this session.
    if (request.kind === "attach") streams.detach();
    outcome = { kind: "error", message: messageOf(err) };
  }

  if (outcome === "gone") {
    logger.debug("streaming: client went away");
    streams.detach();
    for (const f of forwards) f.stop();
    return;
  }
  for (const f of forwards) f.stop();
  finish(outcome);
}

/** Stdin is piped without end: what a client's EOF means depends on the session (see top). */
function forwardNoEnd(from: Readable, to: Writable): { stop(): void } {
  from.pipe(to, { end: false });
  return {
    stop(): void {
      from.unpipe(to);
    },
  };
}
