import { status as Status } from "@grpc/grpc-js";
import type { Logger } from "../logger/logger.js";
import type { Handlers, RpcContext, StreamRpc, UnaryRpc } from "../rpc/handlers.js";
import { PodshimError } from "../errors/errors.js";
import type { CallStatus, ServerCall, ServiceDefinition, ServiceImplementation, StreamMethod, UnaryMethod } from "./grpc-server.js";
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
 * The methods of a whole service for the CRI server: each implemented one wrapped once
 * (readiness gate, one log line per call, errors -> status through the one table), every
 * other one answering UNIMPLEMENTED with its name.
 */
export function implementService(def: ServiceDefinition, handlers: Partial<Handlers>, opts: BoundaryOptions): ServiceImplementation {
  const impl: Record<string, UnaryMethod | StreamMethod> = {};
  for (const [key, method] of Object.entries(def)) {
    const name = method.path.slice(method.path.lastIndexOf("/") + 1);
    const rpc: Rpc = { name, path: `${opts.service}/${name}`, readOnly: READ_ONLY.test(name) };
    if (method.responseStream) {
      const handler = handlers.stream?.[name];
      const run: StreamMethod = (call, send) => serve(call, rpc, handler, opts, (ctx) => (handler as StreamRpc<unknown, unknown>)(call.request, send, ctx));
      impl[key] = run;
    } else {
      const handler = handlers.unary?.[name];
      // The request is what this method's own deserializer decoded: the type its handler takes.
      const run: UnaryMethod = (call) => serve(call, rpc, handler, opts, (ctx) => (handler as UnaryRpc<unknown, unknown>)(call.request, ctx));
      impl[key] = run;
    }
  }
  return impl;
}

/** What the boundary knows of a method, worked out once: "Version", "RuntimeService/Version",
 * and whether it only reads (logged at debug). */
interface Rpc {
  name: string;
  path: string;
  readOnly: boolean;
}

/** A handler's context. Its logger and signal are made when first asked for: a status call
 * uses neither, and the two were ~7% of its CPU. */
class CallContext implements RpcContext {
  private logger: Logger | undefined;
  readonly deadline?: number;

  constructor(
    private readonly call: ServerCall,
    readonly base: Logger,
    private readonly rpc: string,
  ) {
    if (call.deadline !== undefined) this.deadline = call.deadline;
  }

  get log(): Logger {
    return (this.logger ??= this.base.child({ rpc: this.rpc }));
  }

  get signal(): AbortSignal {
    return this.call.signal;
  }
}

function refusal(rpc: Rpc, handler: unknown, opts: BoundaryOptions): CallStatus | undefined {
  if (!handler) return { code: Status.UNIMPLEMENTED, details: `podshim does not implement ${rpc.path} yet` };
  if (!opts.isReady() && !opts.alwaysServed?.has(rpc.name)) {
    return { code: Status.UNAVAILABLE, details: `podshim is recovering state from containerd; retry ${rpc.path} shortly (Status says why it is not ready)` };
  }
  return undefined;
}

/**
 * One call of a unary or a streaming method: refused while podshim cannot serve it, else the
 * handler `start`s; resolves to its answer or rejects with the status the client gets. Every
 * call is logged and counted once.
 */
function serve<T>(call: ServerCall, rpc: Rpc, handler: unknown, opts: BoundaryOptions, start: (ctx: CallContext) => Promise<T>): Promise<T> {
  const refused = refusal(rpc, handler, opts);
  if (refused) {
    opts.logger.debug({ rpc: rpc.path, code: codeName(refused.code) }, refused.details);
    opts.observe?.(rpc.path, codeName(refused.code), 0);
    return Promise.reject(refused);
  }
  const started = performance.now();
  const ctx = new CallContext(call, opts.logger, rpc.path);
  const run = start(ctx);
  opts.inFlight?.track(run);
  return run.then(
    (response) => {
      logDone(ctx, rpc, started);
      opts.observe?.(rpc.path, "OK", (performance.now() - started) / 1000);
      return response;
    },
    (err: unknown) => {
      const status = toGrpcStatus(err);
      logFailed(ctx.log, started, status.code, err);
      opts.observe?.(rpc.path, codeName(status.code), (performance.now() - started) / 1000);
      throw status;
    },
  );
}

function logDone(ctx: CallContext, rpc: Rpc, started: number) {
  // A read logs at debug: at info, touching its logger would only make one to drop the line.
  if (rpc.readOnly && !ctx.base.isLevelEnabled("debug")) return;
  const ms = Math.round((performance.now() - started) * 10) / 10;
  if (rpc.readOnly) ctx.log.debug({ ms }, "done");
  else ctx.log.info({ ms }, "done");
}

function logFailed(log: Logger, started: number, code: Status, err: unknown) {
  const ms = Math.round((performance.now() - started) * 10) / 10;
  const fields = err instanceof PodshimError
    ? { ms, code: codeName(code), error: err.message, ...(err.cause instanceof Error ? { cause: err.cause.message } : {}) }
    : { ms, code: codeName(code), err };
  // Client mistakes and expected misses are warnings; anything the runtime failed at is an error.
  if (code === Status.INTERNAL || code === Status.UNKNOWN) log.error(fields, "failed");
  else log.warn(fields, "failed");
}
