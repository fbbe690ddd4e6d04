import {
  Client, Metadata, credentials,
  type CallOptions as GrpcCallOptions, type Interceptor, type ClientReadableStream,
} from "@grpc/grpc-js";
import type { Logger } from "../logger/logger.js";
import { fromContainerdError } from "./errors.js";
import { GrpcStatusError, GrpcChannel } from "./grpc-channel.js";
import { GrpcCode } from "../util/grpc-wire.js";

/** What ts-proto generates for each method of a grpc-js service definition. */
export interface MethodDef<Req, Res> {
  path: string;
  requestSerialize(value: Req): Buffer;
  responseDeserialize(value: Buffer): Res;
}

export interface CallOptions {
  /** Overrides the client's default deadline. */
  timeoutMs?: number;
  /** Cancels the call (the caller's request was cancelled, or podshim is shutting down). */
  signal?: AbortSignal;
  /** Another containerd namespace than podshim's own; null sends none (namespace-less services). */
  namespace?: string | null;
  /** A lease that holds what this call creates until the lease is deleted. */
  lease?: string;
}

export interface ContainerdClientOptions {
  socket: string;
  namespace: string;
  logger: Logger;
  /** Deadline of calls that give none; containerd calls are local and should be quick. */
  defaultTimeoutMs?: number;
  /** grpc-js client interceptors (metrics) run on every streaming call. */
  interceptors?: Interceptor[];
  /** Told of every call's end made outside grpc-js: its path, gRPC status code and duration (metrics). */
  observe?: (path: string, code: number, seconds: number) => void;
}

// Containers.List carries whole OCI specs; a busy node passes gRPC's 4 MiB default.
const MAX_MESSAGE = 256 * 1024 * 1024;
// HTTP/2's default 64 KiB receive window holds a content Read stream (a peer serving a layer)
// to ~150 MB/s here, and large answers to several round trips; 8 MiB lets a stream run at
// ~350-400 MB/s.
const WINDOW = 8 * 1024 * 1024;

// containerd's gRPC server reads the namespace of every call from this header, and the
// lease that protects new content and snapshots from its garbage collector from the other.
const NAMESPACE_HEADER = "containerd-namespace";
const LEASE_HEADER = "containerd-lease";

/**
 * The only door to containerd: every call stamped with the namespace and a deadline, every
 * failure turned into a typed error. Unary calls, the many small ones, and content writes, the
 * bulk ones, go through a lean HTTP/2 channel of their own (grpc-channel.ts), which connects
 * again on the first call after containerd came back. The other streams go through grpc-js,
 * which reconnects by itself; the short backoff below makes a restarted containerd usable
 * within a second instead of after the default two minutes.
 */
export class ContainerdClient {
  readonly socket: string;
  readonly namespace: string;
  private readonly grpc: Client;
  private readonly channel: GrpcChannel;
  private readonly defaultTimeoutMs: number;
  private readonly logger: Logger;
  private readonly observe: ContainerdClientOptions["observe"];

  constructor(opts: ContainerdClientOptions) {
    this.socket = opts.socket;
    this.namespace = opts.namespace;
    this.logger = opts.logger;
    this.defaultTimeoutMs = opts.defaultTimeoutMs ?? 30_000;
    this.observe = opts.observe;
    this.channel = new GrpcChannel({ socket: opts.socket, maxReceiveBytes: MAX_MESSAGE, windowBytes: WINDOW });
    this.grpc = new Client(`unix://${opts.socket}`, credentials.createInsecure(), {
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 1000,
      "grpc.min_reconnect_backoff_ms": 100,
      "grpc.max_receive_message_length": MAX_MESSAGE,
      "grpc.max_send_message_length": MAX_MESSAGE,
      "grpc-node.flow_control_window": WINDOW,
      // channelz (a debugging service nothing here serves) would track every call.
      "grpc.enable_channelz": 0,
      ...(opts.interceptors ? { interceptors: opts.interceptors } : {}),
    });
  }

  /** The namespace and lease headers a call carries. */
  private headers(opts: CallOptions): Record<string, string> {
    const ns = opts.namespace === undefined ? this.namespace : opts.namespace;
    const headers: Record<string, string> = {};
    if (ns !== null) headers[NAMESPACE_HEADER] = ns;
    if (opts.lease) headers[LEASE_HEADER] = opts.lease;
    return headers;
  }

  /** The same headers for a grpc-js stream. */
  private metadata(opts: CallOptions): Metadata {
    const md = new Metadata();
    for (const [key, value] of Object.entries(this.headers(opts))) md.set(key, value);
    return md;
  }

  /** Streams have no deadline unless the caller gives one. */
  private streamOptions(opts: CallOptions): Partial<GrpcCallOptions> {
    return opts.timeoutMs === undefined ? {} : { deadline: Date.now() + opts.timeoutMs };
  }

  /** A unary call. Rejects with a typed podshim error. */
  async call<Req, Res>(def: MethodDef<Req, Res>, request: Req, opts: CallOptions = {}): Promise<Res> {
    const started = performance.now();
    let code: number = GrpcCode.OK;
    try {
      const answer = await this.channel.call(def.path, def.requestSerialize(request), {
        headers: this.headers(opts),
        deadline: Date.now() + (opts.timeoutMs ?? this.defaultTimeoutMs),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      return def.responseDeserialize(answer);
    } catch (err) {
      code = err instanceof GrpcStatusError ? err.code : GrpcCode.INTERNAL;
      throw fromContainerdError(err, methodName(def.path), this.socket);
    } finally {
      this.observe?.(def.path, code, (performance.now() - started) / 1000);
    }
  }

  /** A server-streaming call (Events.Subscribe, Containers.ListStream). No default deadline. */
  serverStream<Req, Res>(def: MethodDef<Req, Res>, request: Req, opts: CallOptions = {}): ClientReadableStream<Res> {
    const stream = this.grpc.makeServerStreamRequest(
      def.path, (v: Req) => def.requestSerialize(v), (b: Buffer) => def.responseDeserialize(b),
      request, this.metadata(opts), this.streamOptions(opts),
    );
    opts.signal?.addEventListener("abort", () => stream.cancel(), { once: true });
    return stream;
  }

  /** A bidirectional call (Content.Write). No default deadline. Fails with typed errors. */
  bidi<Req, Res>(def: MethodDef<Req, Res>, opts: CallOptions = {}): ContainerdBidi<Req, Res> {
    const started = performance.now();
    const call = this.channel.bidi(def.path, {
      headers: this.headers(opts),
      ...(opts.timeoutMs !== undefined ? { deadline: Date.now() + opts.timeoutMs } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      onEnd: (code) => this.observe?.(def.path, code, (performance.now() - started) / 1000),
    });
    const typed = (err: unknown) => fromContainerdError(err, methodName(def.path), this.socket);
    return {
      send: (req) => call.send([def.requestSerialize(req)]).catch((err: unknown) => Promise.reject(typed(err))),
      sendEncoded: (parts) => call.send(parts).catch((err: unknown) => Promise.reject(typed(err))),
      next: () => call.next().then((m) => (m === undefined ? undefined : def.responseDeserialize(m)), (err: unknown) => Promise.reject(typed(err))),
      end: () => call.end(),
      cancel: () => call.cancel(),
    };
  }

  /** Maps a stream's error the same way unary errors are mapped. */
  streamError(def: MethodDef<unknown, unknown>, err: unknown) {
    return fromContainerdError(err, methodName(def.path), this.socket);
  }

  close(): void {
    this.channel.close();
    this.grpc.close();
    this.logger.debug({ socket: this.socket }, "containerd connection closed");
  }
}

/** A bidirectional containerd call; every failure is a typed podshim error. */
export interface ContainerdBidi<Req, Res> {
  send(req: Req): Promise<void>;
  /** One message already encoded, as parts written in order without a copy (a content
   * write's header, then the data it carries). */
  sendEncoded(parts: readonly Uint8Array[]): Promise<void>;
  /** The next answer; undefined once containerd ended the call with OK. */
  next(): Promise<Res | undefined>;
  end(): void;
  cancel(): void;
}

/** "/containerd.services.containers.v1.Containers/Get" -> "Containers.Get" */
export function methodName(path: string): string {
  const [service = "", method = ""] = path.replace(/^\//, "").split("/");
  return `${service.split(".").pop()}.${method}`;
}
