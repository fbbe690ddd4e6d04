import { status as Status, type ServerUnaryCall, type sendUnaryData, type ServerWritableStream, type UntypedServiceImplementation, type ServiceDefinition } from "@grpc/grpc-js";
import type { Logger } from "../log/logger.js";
import { PodshimError } from "../errors/errors.js";
import { codeName, toGrpcStatus } from "./status.js";

/** What every CRI handler gets besides its request. */
export interface RpcContext {
  log: Logger;
  /** Aborted when the client cancels or its deadline passes. */
  signal: AbortSignal;
  /** The client's deadline in epoch ms, when it gave one. */
  deadline?: number;
}

export type UnaryRpc<Req = any, Res = any> = (request: Req, ctx: RpcContext) => Promise<Res>;
/** A server-streaming handler writes through `send` and resolves when the stream is complete. */
export type StreamRpc<Req = any, Res = any> = (request: Req, send: (msg: Res) => Promise<void>, ctx: RpcContext) => Promise<void>;

export interface Handlers {
  unary: Record<string, UnaryRpc>;
  stream: Record<string, StreamRpc>;
}

export interface BoundaryOptions {
  /** Service name for logs and messages ("RuntimeService"). */
  service: string;
  logger: Logger;
  /** Calls are refused with UNAVAILABLE until this says podshim is ready (recovery done). */
  isReady: () => boolean;
}

// Reads are frequent (the kubelet polls them); log them at debug so info stays readable.
const READ_ONLY = /^(Version|Status|RuntimeConfig|ImageFsInfo|ListMetricDescriptors|List.*|Stream.*|.*Status|.*Stats|.*Metrics|ExecSync)$/;

/**
 * Builds a grpc-js implementation of a whole service: each implemented method wrapped once
 * (readiness gate, one log line per call, errors -> status through the one table), every
 * other method answering UNIMPLEMENTED with its name.
 */
export function implementService(def: ServiceDefinition, handlers: Partial<Handlers>, opts: BoundaryOptions): UntypedServiceImplementation {
  const impl: UntypedServiceImplementation = {};
  for (const [key, method] of Object.entries(def)) {
    const name = method.path.slice(method.path.lastIndexOf("/") + 1);
    const rpc = `${opts.service}/${name}`;
    if (method.responseStream) {
      const handler = handlers.stream?.[name];
      impl[key] = (call: ServerWritableStream<unknown, unknown>) => serveStream(call, rpc, handler, opts);
    } else {
      const handler = handlers.unary?.[name];
      impl[key] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => serveUnary(call, callback, rpc, handler, opts);
    }
  }
  return impl;
}

function context(call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>, log: Logger): RpcContext {
  const controller = new AbortController();
  call.on("cancelled", () => controller.abort());
  const d = call.getDeadline();
  const deadline = d instanceof Date ? d.getTime() : Number.isFinite(d) ? d : undefined;
  return { log, signal: controller.signal, ...(deadline !== undefined ? { deadline } : {}) };
}

function refusal(rpc: string, handler: unknown, opts: BoundaryOptions): { code: Status; details: string } | undefined {
  if (!handler) return { code: Status.UNIMPLEMENTED, details: `podshim does not implement ${rpc} yet` };
  if (!opts.isReady()) return { code: Status.UNAVAILABLE, details: `podshim is starting up (recovering state); retry ${rpc} shortly` };
  return undefined;
}

function serveUnary(call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>, rpc: string, handler: UnaryRpc | undefined, opts: BoundaryOptions) {
  const refused = refusal(rpc, handler, opts);
  if (refused) {
    opts.logger.debug({ rpc, code: codeName(refused.code) }, refused.details);
    callback(refused);
    return;
  }
  const started = performance.now();
  const log = opts.logger.child({ rpc });
  handler!(call.request, context(call, log)).then(
    (response) => {
      logDone(log, rpc, started);
      callback(null, response);
    },
    (err: unknown) => {
      const status = toGrpcStatus(err);
      logFailed(log, rpc, started, status.code, err);
      callback(status);
    },
  );
}

function serveStream(call: ServerWritableStream<unknown, unknown>, rpc: string, handler: StreamRpc | undefined, opts: BoundaryOptions) {
  const refused = refusal(rpc, handler, opts);
  if (refused) {
    call.emit("error", refused);
    return;
  }
  const started = performance.now();
  const log = opts.logger.child({ rpc });
  // Honour backpressure: a slow client makes the handler wait instead of podshim buffering.
  const send = (msg: unknown) =>
    new Promise<void>((resolve) => {
      if (call.write(msg)) resolve();
      else call.once("drain", () => resolve());
    });
  handler!(call.request, send, context(call, log)).then(
    () => {
      logDone(log, rpc, started);
      call.end();
    },
    (err: unknown) => {
      const status = toGrpcStatus(err);
      logFailed(log, rpc, started, status.code, err);
      call.emit("error", status);
    },
  );
}

function logDone(log: Logger, rpc: string, started: number) {
  const ms = Math.round((performance.now() - started) * 10) / 10;
  const name = rpc.slice(rpc.indexOf("/") + 1);
  if (READ_ONLY.test(name)) log.debug({ ms }, "done");
  else log.info({ ms }, "done");
}

function logFailed(log: Logger, rpc: string, started: number, code: Status, err: unknown) {
  const ms = Math.round((performance.now() - started) * 10) / 10;
  const fields = err instanceof PodshimError
    ? { ms, code: codeName(code), error: err.message, ...(err.cause instanceof Error ? { cause: err.cause.message } : {}) }
    : { ms, code: codeName(code), err };
  // Client mistakes and expected misses are warnings; anything the runtime failed at is an error.
  if (code === Status.INTERNAL || code === Status.UNKNOWN) log.error(fields, "failed");
  else log.warn(fields, "failed");
}
