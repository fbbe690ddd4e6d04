// The contract between the gRPC transport (server/) and the CRI handlers (cri/): what a
// handler gets besides its request, and the shapes of unary and server-streaming handlers.
import type { Logger } from "../logger/logger.js";

/** What every CRI handler gets besides its request. */
export interface RpcContext {
  log: Logger;
  /** Aborted when the client cancels or its deadline passes. */
  signal: AbortSignal;
  /** The client's deadline in epoch ms, when it gave one. */
  deadline?: number;
}

export type UnaryRpc<Req, Res> = (request: Req, ctx: RpcContext) => Promise<Res>;
/** A server-streaming handler writes through `send` and resolves when the stream is complete. */
export type StreamRpc<Req, Res> = (request: Req, send: (msg: Res) => Promise<void>, ctx: RpcContext) => Promise<void>;

/**
 * Handlers of one service by RPC name. The request type is `never` here so a handler typed for
 * its own request fits; the transport calls each with what that method's deserializer decoded.
 */
export type AnyUnaryRpc = UnaryRpc<never, unknown>;
export type AnyStreamRpc = StreamRpc<never, unknown>;

export interface Handlers {
  unary: Record<string, AnyUnaryRpc>;
  stream: Record<string, AnyStreamRpc>;
}

