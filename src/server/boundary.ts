import { status as Status, type ServerUnaryCall, type sendUnaryData, type ServerWritableStream, type UntypedServiceImplementation, type ServiceDefinition } from "@grpc/grpc-js";
import type { Logger } from "../logger/logger.js";
import type { AnyStreamRpc, AnyUnaryRpc, Handlers, RpcContext, StreamRpc, UnaryRpc } from "../rpc/handlers.js";
import { CanceledError, PodshimError } from "../errors/errors.js";
import { codeName, toGrpcStatus } from "./status.js";

export interface BoundaryOptions {
  /** Service name for logs and messages ("RuntimeService"). */
  service: string;
  logger: Logger;
  /** Calls are refused with UNAVAILABLE until this says podshim is ready (recovery done);
   * the methods in `alwaysServed` answer regardless (Version, Status). */
  isReady: () => boolean;
  alwaysServed?: ReadonlySet<string>;
  /** Every handler run is added while it runs, so shutdown can wait for their undo steps. */
  inFlight?: InFlightCalls;
  /** Told of every answered call (metrics): "RuntimeService/Version", the code's name, seconds. */
  observe?: (rpc: string, code: string, seconds: number) => void;
}

/** The handler runs still going: shutdown waits for them after the transport stops. */
export class InFlightCalls {
  private readonly running = new Set<Promise<unknown>>();

  track(work: Promise<unknown>): void {
    this.running.add(work);
    const forget = () => this.running.delete(work);
    work.then(forget, forget);
  }

  get size(): number {
    return this.running.size;
  }

  /** Resolves when every run tracked now has settled. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }
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

/** The handler's context, and `settle()` to call once the handler is done: grpc-js reports
 * every stream's close as "cancelled", answered calls too, and aborting those would build an
 * AbortError (a stack trace) per call for no one to read. */
function context(call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>, log: Logger): { ctx: RpcContext; settle(): void } {
  const controller = new AbortController();
  let settled = false;
  call.on("cancelled", () => {
    if (!settled) controller.abort();
  });
  const d = call.getDeadline();
  const deadline = d instanceof Date ? d.getTime() : Number.isFinite(d) ? d : undefined;
  return { ctx: { log, signal: controller.signal, ...(deadline !== undefined ? { deadline } : {}) }, settle: () => (settled = true) };
}

function refusal(rpc: string, handler: unknown, opts: BoundaryOptions): { code: Status; details: string } | undefined {
  if (!handler) return { code: Status.UNIMPLEMENTED, details: `podshim does not implement ${rpc} yet` };
  const name = rpc.slice(rpc.indexOf("/") + 1);
  if (!opts.isReady() && !opts.alwaysServed?.has(name)) {
    return { code: Status.UNAVAILABLE, details: `podshim is recovering state from containerd; retry ${rpc} shortly (Status says why it is not ready)` };
  }
  return undefined;
}

function serveUnary(call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>, rpc: string, handler: AnyUnaryRpc | undefined, opts: BoundaryOptions) {
  const refused = refusal(rpc, handler, opts);
  if (refused) {
    opts.logger.debug({ rpc, code: codeName(refused.code) }, refused.details);
    opts.observe?.(rpc, codeName(refused.code), 0);
    callback(refused);
    return;
  }
  const started = performance.now();
  const log = opts.logger.child({ rpc });
  const { ctx, settle } = context(call, log);
  // The request is what this method's own deserializer decoded: the type its handler takes.
  const run = (handler as UnaryRpc<unknown, unknown>)(call.request, ctx);
  opts.inFlight?.track(run);
  run.then(
    (response) => {
      settle();
      logDone(log, rpc, started);
      opts.observe?.(rpc, "OK", (performance.now() - started) / 1000);
      callback(null, response);
    },
    (err: unknown) => {
      settle();
      const status = toGrpcStatus(err);
      logFailed(log, rpc, started, status.code, err);
      opts.observe?.(rpc, codeName(status.code), (performance.now() - started) / 1000);
      callback(status);
    },
  );
}

function serveStream(call: ServerWritableStream<unknown, unknown>, rpc: string, handler: AnyStreamRpc | undefined, opts: BoundaryOptions) {
  const refused = refusal(rpc, handler, opts);
  if (refused) {
    opts.observe?.(rpc, codeName(refused.code), 0);
    call.emit("error", refused);
    return;
  }
  const started = performance.now();
  const log = opts.logger.child({ rpc });
  // Honour backpressure: a slow client makes the handler wait instead of podshim buffering.
  // grpc-js never emits drain after a cancel, so a cancel rejects the wait instead.
  let cancelled = false;
  call.once("cancelled", () => (cancelled = true));
  const send = (msg: unknown) =>
    new Promise<void>((resolve, reject) => {
      if (cancelled) return reject(new CanceledError(`${rpc}: the client cancelled the stream`));
      if (call.write(msg)) return resolve();
      const onDrain = () => {
        call.off("cancelled", onCancel);
        resolve();
      };
      const onCancel = () => {
        call.off("drain", onDrain);
        reject(new CanceledError(`${rpc}: the client cancelled the stream`));
      };
      call.once("drain", onDrain);
      call.once("cancelled", onCancel);
    });
  const { ctx, settle } = context(call, log);
  const run = (handler as StreamRpc<unknown, unknown>)(call.request, send, ctx);
  opts.inFlight?.track(run);
  run.then(
    () => {
      settle();
      logDone(log, rpc, started);
      opts.observe?.(rpc, "OK", (performance.now() - started) / 1000);
      call.end();
    },
    (err: unknown) => {
      settle();
      const status = toGrpcStatus(err);
      logFailed(log, rpc, started, status.code, err);
      opts.observe?.(rpc, codeName(status.code), (performance.now() - started) / 1000);
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
