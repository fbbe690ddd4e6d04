// The CRI gRPC server on its unix socket: gRPC over HTTP/2 (grpc/doc/PROTOCOL-HTTP2.md) on
// node:http2, for the two call shapes CRI and gRPC health use, unary and server-streaming.
//
// grpc-js's server wraps each call in interceptors, a metadata object, a call stream with its
// own event machinery and a deadline filter; without them a status call costs podshim 15-25%
// less CPU (what is left is node:http2's own). A call here is: the request's frames read to
// the end of the stream, one decode, the method, one encode, and headers + data + trailers (or
// a trailers-only answer for an error).
//
// What a call gets: `signal`, aborted when the client resets the stream or goes away, when the
// grpc-timeout passes (the client is then answered DEADLINE_EXCEEDED) or when shutdown gives
// up waiting; never once the call is answered. Limits: a request or an answer over 16 MiB is
// RESOURCE_EXHAUSTED, as the kubelet's own client limits are.
import http2, { type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from "node:http2";
import { chmod, lstat } from "node:fs/promises";
import { CanceledError, messageOf } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import { Deframer, encodeMessage, framed, GrpcCode, parseTimeout } from "../util/grpc-wire.js";
import { MAX_TIMER_MS, msUntil, withTimeout } from "../util/timeout.js";
import { prepareSocketPath, removeSocket } from "./socket.js";

/** One method as ts-proto's service definitions describe it. */
export interface MethodDefinition {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestDeserialize(bytes: Buffer): unknown;
  responseSerialize(value: never): Uint8Array;
}

export type ServiceDefinition = Readonly<Record<string, MethodDefinition>>;

/** What a method gets for one call. */
export interface ServerCall {
  readonly request: unknown;
  /** Aborted when the call ends unanswered: the client cancelled, the deadline passed, or shutdown forced it. */
  readonly signal: AbortSignal;
  /** The client's deadline, epoch ms. */
  readonly deadline: number | undefined;
}

/** A status a method rejects with; any other rejection is INTERNAL. */
export interface CallStatus {
  code: number;
  details: string;
}

export type UnaryMethod = (call: ServerCall) => Promise<unknown>;
/** `send` resolves when the connection takes more, and rejects once the call has ended. */
export type StreamMethod = (call: ServerCall, send: (message: unknown) => Promise<void>) => Promise<void>;

/** Each method of a service definition by its key there ("version"), unary or streaming as defined. */
export type ServiceImplementation = Readonly<Partial<Record<string, UnaryMethod | StreamMethod>>>;

export interface ServiceBinding {
  definition: ServiceDefinition;
  implementation: ServiceImplementation;
}

// The kubelet's CRI client allows 16 MiB messages; match it in both directions.
const MAX_MESSAGE = 16 * 1024 * 1024;
const SOCKET_MODE = 0o660;

interface Route {
  method: MethodDefinition;
  run: UnaryMethod | StreamMethod;
}

/** The CRI gRPC server on its unix socket. */
export class CriServer {
  private readonly routes = new Map<string, Route>();
  private readonly sessions = new Set<ServerHttp2Session>();
  private http: Http2Server | undefined;
  private socketIno: number | undefined;

  constructor(
    private readonly path: string,
    private readonly logger: Logger,
  ) {}

  add(binding: ServiceBinding): void {
    for (const [key, method] of Object.entries(binding.definition)) {
      if (method.requestStream) throw new Error(`${method.path}: client-streaming methods are not served`);
      const run = binding.implementation[key];
      if (run) this.routes.set(method.path, { method, run });
    }
  }

  /** Fails when a live server holds the socket; removes a stale one. */
  async checkSocket(): Promise<void> {
    await prepareSocketPath(this.path);
  }

  async listen(): Promise<void> {
    await prepareSocketPath(this.path);
    const http = http2.createServer({
      // Node refuses new streams once a connection buffers 10 MB; a few large list answers to
      // a slow reader would reach that. The bound that matters is per message, checked here.
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
    });
    http.on("session", (session) => this.track(session));
    http.on("stream", (stream, headers) => this.serve(stream, headers));
    // The umask makes the socket 0660 from its first moment; the chmod makes it so whatever
    // the umask was.
    const umask = process.umask(0o117);
    try {
      await new Promise<void>((resolve, reject) => {
        http.once("error", reject);
        http.listen(this.path, () => {
          http.off("error", reject);
          resolve();
        });
      });
    } finally {
      process.umask(umask);
    }
    http.on("error", (err) => this.logger.error({ err }, "the CRI socket failed"));
    this.http = http;
    await chmod(this.path, SOCKET_MODE);
    this.socketIno = (await lstat(this.path)).ino;
  }

  /**
   * Stops accepting connections and tells every client to go away (GOAWAY: calls in flight
   * finish, new ones go elsewhere), waits up to graceMs for them, then cuts the rest off (their
   * methods see their signal abort); removes the socket. Resolves to whether every call
   * finished in time.
   */
  async stop(graceMs: number): Promise<boolean> {
    const http = this.http;
    this.http = undefined;
    let clean = true;
    if (http) {
      const closed = new Promise<void>((resolve) => http.close(() => resolve()));
      for (const s of this.sessions) s.close();
      clean = await withTimeout("the CRI server's drain", graceMs, closed).then(() => true, () => false);
      if (!clean) {
        this.logger.warn({ graceMs }, "in-flight calls did not finish in time; cancelling them");
        for (const s of this.sessions) s.destroy();
        await closed;
      }
    }
    await removeSocket(this.path, this.socketIno);
    return clean;
  }

  private track(session: ServerHttp2Session): void {
    this.sessions.add(session);
    session.once("close", () => this.sessions.delete(session));
    // A connection that breaks ends its calls through their streams' close.
    session.on("error", (err) => this.logger.debug({ err }, "a CRI client connection failed"));
  }

  private serve(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    // A reset or a broken connection ends the call through "close"; the error itself says no more.
    stream.on("error", noop);
    if (headers[":method"] !== "POST") return void respondHttp(stream, 405);
    const type = headers["content-type"];
    if (typeof type !== "string" || !type.startsWith("application/grpc")) return void respondHttp(stream, 415);
    const path = headers[":path"] ?? "";
    const route = this.routes.get(path);
    if (!route) return void respondStatus(stream, { code: GrpcCode.UNIMPLEMENTED, details: `podshim does not serve the method ${path}` });
    let deadline: number | undefined;
    const timeout = headers["grpc-timeout"];
    if (timeout !== undefined) {
      const ms = typeof timeout === "string" ? parseTimeout(timeout) : undefined;
      if (ms === undefined) return void respondStatus(stream, { code: GrpcCode.INVALID_ARGUMENT, details: `grpc-timeout "${String(timeout)}" is not a timeout` });
      deadline = Date.now() + ms;
    }
    new Call(stream, route, deadline, this.logger).start();
  }
}

const RESPONSE_HEADERS = { ":status": 200, "content-type": "application/grpc", "grpc-accept-encoding": "identity" };
const OK_TRAILERS = { "grpc-status": "0" };

/** One call from its request's first byte to its status. */
class Call implements ServerCall {
  request: unknown;
  /** Made when a method first asks for its signal: most never do, and one costs ~10 us. */
  private controller: AbortController | undefined;
  private aborted = false;
  private timer: NodeJS.Timeout | undefined;
  /** The status is sent (or the stream is gone): nothing more goes out. */
  private done = false;
  private headersSent = false;
  private trailers: Record<string, string> = OK_TRAILERS;

  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly route: Route,
    readonly deadline: number | undefined,
    private readonly logger: Logger,
  ) {}

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort();
    }
    return this.controller.signal;
  }

  private abort(): void {
    this.aborted = true;
    this.controller?.abort();
  }

  start(): void {
    const { stream } = this;
    stream.once("close", () => this.gone());
    // A deadline beyond what a timer can hold (~24 days) is as good as none.
    const left = this.deadline === undefined ? undefined : msUntil(this.deadline);
    if (left !== undefined && left <= MAX_TIMER_MS) {
      this.timer = setTimeout(() => this.fail({ code: GrpcCode.DEADLINE_EXCEEDED, details: "deadline exceeded" }, true), left);
    }
    const deframer = new Deframer(MAX_MESSAGE);
    const messages: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => {
      if (this.done) return;
      const got = deframer.push(chunk);
      if (!Array.isArray(got)) {
        this.fail(got.problem === "compressed"
          ? { code: GrpcCode.UNIMPLEMENTED, details: "the request is compressed; podshim reads only uncompressed messages (grpc-accept-encoding: identity)" }
          : { code: GrpcCode.RESOURCE_EXHAUSTED, details: `request of ${got.length} bytes is larger than the limit of ${MAX_MESSAGE}` });
        return;
      }
      for (const m of got) messages.push(m);
    });
    stream.once("end", () => {
      if (this.done) return;
      if (messages.length !== 1 || deframer.buffered > 0) {
        this.fail({ code: GrpcCode.INVALID_ARGUMENT, details: `${this.route.method.path} takes exactly one whole request message (got ${messages.length}${deframer.buffered > 0 ? " and a cut-off one" : ""})` });
        return;
      }
      try {
        this.request = this.route.method.requestDeserialize(messages[0]!);
      } catch (err) {
        this.fail({ code: GrpcCode.INVALID_ARGUMENT, details: `cannot decode the ${this.route.method.path} request: ${messageOf(err)}` });
        return;
      }
      this.run();
    });
  }

  private run(): void {
    let work: Promise<unknown>;
    try {
      work = this.route.method.responseStream
        ? (this.route.run as StreamMethod)(this, (m) => this.send(m))
        : (this.route.run as UnaryMethod)(this);
    } catch (err) {
      work = Promise.reject(err);
    }
    work.then(
      (answer) => (this.route.method.responseStream ? this.finish(OK_TRAILERS) : this.answer(answer)),
      (err: unknown) => this.fail(asStatus(err)),
    );
  }

  private answer(value: unknown): void {
    if (this.done || this.lost()) return;
    let bytes: Uint8Array;
    try {
      bytes = this.route.method.responseSerialize(value as never);
    } catch (err) {
      this.logger.error({ rpc: this.route.method.path, err }, "cannot encode the answer");
      this.fail({ code: GrpcCode.INTERNAL, details: `cannot encode the answer: ${messageOf(err)}` });
      return;
    }
    if (bytes.length > MAX_MESSAGE) {
      this.fail({ code: GrpcCode.RESOURCE_EXHAUSTED, details: `the answer of ${bytes.length} bytes is larger than the limit of ${MAX_MESSAGE}` });
      return;
    }
    this.finish(OK_TRAILERS, framed(bytes));
  }

  /** One message of a streaming answer; waits while the client reads slower than podshim sends. */
  private send(value: unknown): Promise<void> {
    if (this.done || this.lost()) return Promise.reject(new CanceledError(`${this.route.method.path}: the call has ended`));
    let bytes: Uint8Array;
    try {
      bytes = this.route.method.responseSerialize(value as never);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(messageOf(err)));
    }
    if (bytes.length > MAX_MESSAGE) return Promise.reject(new CanceledError(`${this.route.method.path}: a message of ${bytes.length} bytes is larger than the limit of ${MAX_MESSAGE}`));
    this.sendHeaders();
    if (this.stream.write(framed(bytes))) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const drained = () => {
        this.stream.off("close", closed);
        resolve();
      };
      const closed = () => {
        this.stream.off("drain", drained);
        reject(new CanceledError(`${this.route.method.path}: the client went away`));
      };
      this.stream.once("drain", drained);
      this.stream.once("close", closed);
    });
  }

  private sendHeaders(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    this.stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    this.stream.once("wantTrailers", () => this.stream.sendTrailers(this.trailers));
  }

  /** Ends the call with a status; `abort` when the method may still be running (the deadline). */
  private fail(status: CallStatus, abort = false): void {
    if (this.done || this.lost()) return;
    if (this.headersSent) this.finish(statusTrailers(status));
    else {
      this.settle();
      respondStatus(this.stream, status);
    }
    if (abort) this.abort();
  }

  private finish(trailers: Record<string, string>, last?: Buffer): void {
    if (this.done || this.lost()) return;
    this.settle();
    this.sendHeaders();
    this.trailers = trailers;
    if (last) this.stream.end(last);
    else this.stream.end();
  }

  private settle(): void {
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Whether the stream is gone before its "close" told us (a reset just arrived): then it is. */
  private lost(): boolean {
    if (!this.stream.destroyed) return false;
    this.gone();
    return true;
  }

  /** The stream closed: if the call was not answered yet, the client is gone. */
  private gone(): void {
    if (this.done) return;
    this.settle();
    this.abort();
  }
}

function noop(): void {}

function isStatus(err: unknown): err is CallStatus {
  return typeof err === "object" && err !== null && Number.isInteger((err as CallStatus).code) && typeof (err as CallStatus).details === "string";
}

function asStatus(err: unknown): CallStatus {
  if (isStatus(err) && err.code > 0 && err.code <= GrpcCode.UNAUTHENTICATED) return err;
  return { code: GrpcCode.INTERNAL, details: `internal error: ${messageOf(err)}` };
}

/** A status message's most characters: it travels in a header, and clients refuse header blocks
 * of more than 16-64 KiB with a reset instead of the status (an error quoting a hostile
 * 70 KB field would lose its code). */
const MAX_DETAILS = 4096;

function statusTrailers(status: CallStatus): Record<string, string> {
  const details = status.details.length > MAX_DETAILS ? `${status.details.slice(0, MAX_DETAILS)}... (${status.details.length - MAX_DETAILS} more characters cut)` : status.details;
  return { "grpc-status": String(status.code), "grpc-message": encodeMessage(details) };
}

/** A trailers-only answer: the status in the response's one header block. */
function respondStatus(stream: ServerHttp2Stream, status: CallStatus): void {
  if (stream.destroyed || stream.headersSent) return;
  stream.respond({ ...RESPONSE_HEADERS, ...statusTrailers(status) }, { endStream: true });
}

function respondHttp(stream: ServerHttp2Stream, code: number): void {
  if (stream.destroyed || stream.headersSent) return;
  stream.respond({ ":status": code }, { endStream: true });
}
