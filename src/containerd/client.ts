import {
  Client, Metadata, credentials, status as Status,
  type CallOptions as GrpcCallOptions, type Interceptor, type ClientReadableStream, type ClientDuplexStream, type ServiceError,
} from "@grpc/grpc-js";
import type { Logger } from "../logger/logger.js";
import { fromContainerdError } from "./errors.js";

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
  /** grpc-js client interceptors (metrics) run on every call. */
  interceptors?: Interceptor[];
}

// containerd's gRPC server reads the namespace of every call from this header, and the
// lease that protects new content and snapshots from its garbage collector from the other.
const NAMESPACE_HEADER = "containerd-namespace";
const LEASE_HEADER = "containerd-lease";

/**
 * The only door to containerd: one channel on its socket, every call stamped with the
 * namespace and a deadline, every failure turned into a typed error. grpc-js reconnects the
 * channel by itself; the short backoff below makes a restarted containerd usable within a
 * second instead of after the default two minutes.
 */
export class ContainerdClient {
  readonly socket: string;
  readonly namespace: string;
  private readonly grpc: Client;
  private readonly defaultTimeoutMs: number;
  private readonly logger: Logger;

  constructor(opts: ContainerdClientOptions) {
    this.socket = opts.socket;
    this.namespace = opts.namespace;
    this.logger = opts.logger;
    this.defaultTimeoutMs = opts.defaultTimeoutMs ?? 30_000;
    this.grpc = new Client(`unix://${opts.socket}`, credentials.createInsecure(), {
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 1000,
      "grpc.min_reconnect_backoff_ms": 100,
      // Containers.List carries whole OCI specs; a busy node passes the 4 MiB default.
      "grpc.max_receive_message_length": 256 * 1024 * 1024,
      "grpc.max_send_message_length": 256 * 1024 * 1024,
      // HTTP/2's default 64 KiB receive window holds a content Read stream (a peer serving a
      // layer) to ~150 MB/s here; 8 MiB lets it run at ~350-400 MB/s.
      "grpc-node.flow_control_window": 8 * 1024 * 1024,
      // channelz (a debugging service nothing here serves) would track every call.
      "grpc.enable_channelz": 0,
      ...(opts.interceptors ? { interceptors: opts.interceptors } : {}),
    });
  }

  private metadata(opts: CallOptions): Metadata {
    const md = new Metadata();
    const ns = opts.namespace === undefined ? this.namespace : opts.namespace;
    if (ns !== null) md.set(NAMESPACE_HEADER, ns);
    if (opts.lease) md.set(LEASE_HEADER, opts.lease);
    return md;
  }

  private grpcOptions(opts: CallOptions, timeoutDefault: number | undefined): Partial<GrpcCallOptions> {
    const timeout = opts.timeoutMs ?? timeoutDefault;
    return timeout === undefined ? {} : { deadline: Date.now() + timeout };
  }

  /** A unary call. Rejects with a typed podshim error. */
  call<Req, Res>(def: MethodDef<Req, Res>, request: Req, opts: CallOptions = {}): Promise<Res> {
    const what = methodName(def.path);
    return new Promise<Res>((resolve, reject) => {
      if (opts.signal?.aborted) {
        reject(fromContainerdError({ code: Status.CANCELLED, details: "cancelled before it was sent" }, what, this.socket));
        return;
      }
      const call = this.grpc.makeUnaryRequest(
        def.path, (v: Req) => def.requestSerialize(v), (b: Buffer) => def.responseDeserialize(b),
        request, this.metadata(opts), this.grpcOptions(opts, this.defaultTimeoutMs),
        (err: ServiceError | null, res?: Res) => {
          opts.signal?.removeEventListener("abort", onAbort);
          if (err) reject(fromContainerdError(err, what, this.socket));
          else resolve(res as Res);
        },
      );
      const onAbort = () => call.cancel();
      opts.signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** A server-streaming call (Events.Subscribe, Containers.ListStream). No default deadline. */
  serverStream<Req, Res>(def: MethodDef<Req, Res>, request: Req, opts: CallOptions = {}): ClientReadableStream<Res> {
    const stream = this.grpc.makeServerStreamRequest(
      def.path, (v: Req) => def.requestSerialize(v), (b: Buffer) => def.responseDeserialize(b),
      request, this.metadata(opts), this.grpcOptions(opts, undefined),
    );
    opts.signal?.addEventListener("abort", () => stream.cancel(), { once: true });
    return stream;
  }

  /** A bidirectional call (Content.Write). No default deadline. */
  duplex<Req, Res>(def: MethodDef<Req, Res>, opts: CallOptions = {}): ClientDuplexStream<Req, Res> {
    const stream = this.grpc.makeBidiStreamRequest(
      def.path, (v: Req) => def.requestSerialize(v), (b: Buffer) => def.responseDeserialize(b),
      this.metadata(opts), this.grpcOptions(opts, undefined),
    );
    opts.signal?.addEventListener("abort", () => stream.cancel(), { once: true });
    return stream;
  }

  /** Maps a stream's error the same way unary errors are mapped. */
  streamError(def: MethodDef<unknown, unknown>, err: unknown) {
    return fromContainerdError(err, methodName(def.path), this.socket);
  }

  close(): void {
    this.grpc.close();
    this.logger.debug({ socket: this.socket }, "containerd connection closed");
  }
}

/** "/containerd.services.containers.v1.Containers/Get" -> "Containers.Get" */
export function methodName(path: string): string {
  const [service = "", method = ""] = path.replace(/^\//, "").split("/");
  return `${service.split(".").pop()}.${method}`;
}
