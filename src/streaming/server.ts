// podshim's streaming server: the HTTP endpoint behind the URLs that Exec, Attach and
// PortForward hand out. Each URL carries a single-use token standing for the request the RPC
// validated; the client upgrades that request to SPDY/3.1 (kubelet, crictl, kubectl through
// the kubelet) or to a WebSocket (crictl -r websocket, critest -websocket-*), and the session
// runs over the upgraded connection.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { isIPv6, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { createWebSocketStream, WebSocketServer, type WebSocket } from "ws";
import { messageOf, UnavailableError } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import type { AttachParams, ExecParams, StreamingBackend } from "./backend.js";
import { PORT_FORWARD_PROTOCOL, serveSpdyPortForward } from "./portforward.js";
import { SPDY_REMOTECOMMAND_PROTOCOLS } from "./remotecommand.js";
import { serveSpdyRemoteCommand } from "./remotecommand-spdy.js";
import { ForwardLimiter, STREAMING_LIMIT_DEFAULTS, streamingExposure, type StreamingLimits } from "./limits.js";
import { SpdySession } from "./spdy-session.js";
import { acceptSpdyUpgrade } from "./spdy-upgrade.js";
import { StreamKind, TokenCache, type PendingSession, type PortForwardParams, type TokenCacheOptions } from "./tokens.js";
import {
  chooseWebSocketProtocol,
  offeredProtocols,
  serveWebSocketPortForward,
  serveWebSocketRemoteCommand,
  WebSocketProtocol,
  WS_PORTFORWARD_PROTOCOLS,
  WS_REMOTECOMMAND_PROTOCOLS,
  WsCloseCode,
} from "./websocket.js";

export const STREAMING_DEFAULTS = {
  /** containerd's stream_idle_timeout: no frame either way for this long ends a session. */
  idleTimeoutMs: 4 * 60 * 60 * 1000,
  /** How long a client has, after the upgrade, to open the streams its request implies. */
  streamCreationTimeoutMs: 30_000,
  /** At stop(), how long sessions get to say goodbye before their sockets are dropped. */
  stopGraceMs: 1_000,
  /** client-go's frames and messages are 32 KiB; this only bounds a hostile peer. */
  maxWebSocketMessage: 16 * 1024 * 1024,
} as const;

export interface StreamingServerOptions {
  host: string;
  /** 0 picks a free port; the URLs carry the one actually bound. */
  port: number;
  backend: StreamingBackend;
  logger: Logger;
  /** PEM certificate and key: serve https (and the URLs say so). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  idleTimeoutMs?: number;
  streamCreationTimeoutMs?: number;
  /** Token lifetime, cap and clock; tests shorten or fake them. */
  tokens?: TokenCacheOptions;
  /** Caps on port-forward connections and streams per session; defaults in limits.ts. */
  limits?: Partial<StreamingLimits>;
}

/** Something live that stop() must end: a SPDY session or a WebSocket. */
interface LiveSession {
  close(): void;
}

const ROUTE = /^\/(exec|attach|portforward)\/([^/?#]+)\/?(?:[?#].*)?$/;

function parseRoute(url: string | undefined): { kind: StreamKind; token: string } | undefined {
  const m = ROUTE.exec(url ?? "");
  if (!m) return undefined;
  return { kind: m[1] as StreamKind, token: decodeURIComponentSafe(m[2]!) };
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** An unspecified listen address is no address to dial: URLs then name the loopback. */
function urlHost(host: string): string {
  if (host === "" || host === "0.0.0.0") return "127.0.0.1";
  if (host === "::" || host === "[::]") return "[::1]";
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  return isIPv6(bare) ? `[${bare}]` : host;
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  503: "Service Unavailable",
};

/** Answers on a raw (not yet upgraded) socket and closes it. */
function rejectUpgrade(socket: Duplex, status: number, message: string): void {
  if (socket.destroyed || socket.writableEnded) return;
  const body = Buffer.from(`${message}\n`);
  const head = [
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}`,
    "Content-Type: text/plain; charset=utf-8",
    `Content-Length: ${body.length}`,
    "Connection: close",
    "",
    "",
  ].join("\r\n");
  socket.end(Buffer.concat([Buffer.from(head, "latin1"), body]));
  // A client that never hangs up must not keep the socket.
  setTimeout(() => socket.destroy(), 5_000).unref();
}

export class StreamingServer {
  private readonly opts: StreamingServerOptions;
  private readonly logger: Logger;
  private readonly tokens: TokenCache;
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  /** Subprotocols chosen per upgrade request, added to the 101 in the 'headers' event. */
  private readonly chosenProtocols = new WeakMap<IncomingMessage, string>();
  private readonly sockets = new Set<Socket>();
  private readonly sessions = new Set<LiveSession>();
  private readonly idleTimeoutMs: number;
  private readonly streamCreationTimeoutMs: number;
  private readonly limits: StreamingLimits;
  private readonly forwards: ForwardLimiter;
  private boundPort: number | undefined;
  private stopping = false;

  constructor(opts: StreamingServerOptions) {
    this.opts = opts;
    this.logger = opts.logger;
    this.tokens = new TokenCache(opts.tokens);
    this.idleTimeoutMs = opts.idleTimeoutMs ?? STREAMING_DEFAULTS.idleTimeoutMs;
    this.streamCreationTimeoutMs = opts.streamCreationTimeoutMs ?? STREAMING_DEFAULTS.streamCreationTimeoutMs;
    this.limits = { ...STREAMING_LIMIT_DEFAULTS, ...opts.limits };
    this.forwards = new ForwardLimiter(this.limits);
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => this.onRequest(req, res);
    this.server = opts.tls ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, onRequest) : createHttpServer(onRequest);
    this.server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    // The raw TCP sockets, so stop() can end upgraded connections the HTTP server forgot.
    this.server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
    // `ws` would refuse "SPDY/3.1+portforward.k8s.io" (a '/' is no token character), so the
    // protocol is always chosen here and the offer hidden from it; the answer goes in here.
    this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: STREAMING_DEFAULTS.maxWebSocketMessage });
    this.wss.on("headers", (headers: string[], req: IncomingMessage) => {
      const protocol = this.chosenProtocols.get(req);
      if (protocol) headers.push(`Sec-WebSocket-Protocol: ${protocol}`);
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once("error", onError);
      this.server.listen(this.opts.port, this.opts.host, () => {
        this.server.off("error", onError);
        resolve();
      });
    });
    const address = this.server.address();
    this.boundPort = typeof address === "object" && address ? address.port : this.opts.port;
    this.server.on("error", (err) => this.logger.error({ err: messageOf(err) }, "streaming server error"));
    this.logger.debug({ url: this.baseUrl }, "streaming server listening");
    const { warning } = this.exposure();
    if (warning) this.logger.warn({ url: this.baseUrl }, warning);
  }

  /** Stops listening and ends every live session (their processes are detached). */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const session of this.sessions) {
      try {
        session.close();
      } catch (err) {
        this.logger.debug({ err: messageOf(err) }, "streaming: closing a session failed");
      }
    }
    this.server.closeIdleConnections();
    const deadline = Date.now() + STREAMING_DEFAULTS.stopGraceMs;
    while (this.sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const socket of this.sockets) socket.destroy();
    this.wss.close();
    if (this.boundPort !== undefined) await closed;
  }

  /** How the server is reachable and what it caps; Status verbose shows it. */
  exposure(): ReturnType<typeof streamingExposure> & { limits: StreamingLimits; portForwards: { total: number; pods: number } } {
    return { ...streamingExposure(this.opts.host, this.opts.tls !== undefined), limits: this.limits, portForwards: this.forwards.active };
  }

  /** `http(s)://host:port`, with the port actually bound. */
  get baseUrl(): string {
    if (this.boundPort === undefined) throw new UnavailableError("the streaming server is not listening yet");
    return `${this.opts.tls ? "https" : "http"}://${urlHost(this.opts.host)}:${this.boundPort}`;
  }

  /** A single-use URL for an exec session. ResourceExhaustedError when too many are pending. */
  execUrl(params: ExecParams): string {
    return this.issue({ kind: StreamKind.Exec, params: { ...params, cmd: [...params.cmd] } });
  }

  attachUrl(params: AttachParams): string {
    return this.issue({ kind: StreamKind.Attach, params: { ...params } });
  }

  portForwardUrl(params: PortForwardParams): string {
    return this.issue({ kind: StreamKind.PortForward, params: { podSandboxId: params.podSandboxId, ports: [...params.ports] } });
  }

  private issue(session: PendingSession): string {
    const base = this.baseUrl;
    return `${base}/${session.kind}/${this.tokens.issue(session)}`;
  }

  // --- plain HTTP ---------------------------------------------------------------------------

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const reply = (status: number, message: string): void => {
      res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8" });
      res.end(`${message}\n`);
    };
    const route = parseRoute(req.url);
    if (!route) return reply(404, "404 page not found");
    if (req.method !== "GET" && req.method !== "POST") return reply(405, "method not allowed");
    // As the reference server does: the token is spent by any request that names it.
    if (!this.tokens.consume(route.token, route.kind)) return reply(404, "404 page not found");
    reply(400, "unable to upgrade: the request is not an upgrade to SPDY/3.1 or WebSocket");
  }

  // --- upgrades -----------------------------------------------------------------------------

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // Node leaves upgraded sockets without an error listener; an EPIPE must not crash podshim.
    socket.on("error", (err) => this.logger.debug({ err: messageOf(err) }, "streaming: connection error"));
    try {
      if (this.stopping) return rejectUpgrade(socket, 503, "the streaming server is shutting down");
      const route = parseRoute(req.url);
      if (!route) return rejectUpgrade(socket, 404, "404 page not found");
      if (req.method !== "GET" && req.method !== "POST") return rejectUpgrade(socket, 405, "method not allowed");
      const pending = this.tokens.consume(route.token, route.kind);
      if (!pending) return rejectUpgrade(socket, 404, "404 page not found");
      const upgrade = String(req.headers.upgrade ?? "").toLowerCase();
      if (upgrade === "websocket") this.upgradeWebSocket(req, socket, head, pending);
      else this.upgradeSpdy(req, socket, head, pending);
    } catch (err) {
      this.logger.error({ err: messageOf(err) }, "streaming: upgrade failed");
      socket.destroy();
    }
  }

  private track(session: LiveSession, onClose: (cb: () => void) => void): void {
    this.sessions.add(session);
    onClose(() => this.sessions.delete(session));
  }

  private upgradeSpdy(req: IncomingMessage, socket: Duplex, head: Buffer, pending: PendingSession): void {
    const supported = pending.kind === StreamKind.PortForward ? [PORT_FORWARD_PROTOCOL] : SPDY_REMOTECOMMAND_PROTOCOLS;
    const protocol = acceptSpdyUpgrade(req, socket, supported);
    if (protocol === undefined) return;
    this.runSpdySession(socket, head, protocol, pending, "spdy");
  }

  private runSpdySession(socket: Duplex, head: Buffer, protocol: string, pending: PendingSession, transport: string): void {
    const logger = this.sessionLogger(pending, protocol, transport);
    const session = new SpdySession(socket, head, { logger, idleTimeoutMs: this.idleTimeoutMs, maxStreams: this.limits.streamsPerSession });
    this.track(session, (cb) => session.once("close", cb));
    logger.info("streaming session started");
    const common = { session, backend: this.opts.backend, logger, streamCreationTimeoutMs: this.streamCreationTimeoutMs };
    if (pending.kind === StreamKind.PortForward) serveSpdyPortForward({ ...common, podSandboxId: pending.params.podSandboxId, limiter: this.forwards });
    else serveSpdyRemoteCommand({ ...common, protocol, request: pending.kind === StreamKind.Exec ? { kind: "exec", params: pending.params } : { kind: "attach", params: pending.params } });
  }

  private upgradeWebSocket(req: IncomingMessage, socket: Duplex, head: Buffer, pending: PendingSession): void {
    const offers = offeredProtocols(req.headers["sec-websocket-protocol"]);
    const supported = pending.kind === StreamKind.PortForward ? WS_PORTFORWARD_PROTOCOLS : WS_REMOTECOMMAND_PROTOCOLS;
    const protocol = chooseWebSocketProtocol(offers, supported);
    if (protocol === undefined) {
      return rejectUpgrade(socket, 403, `unable to upgrade: none of the requested protocols [${offers.join(", ")}] is supported; supported: [${supported.join(", ")}]`);
    }
    if (pending.kind === StreamKind.PortForward && protocol !== WebSocketProtocol.SpdyPortForward && pending.params.ports.length === 0) {
      return rejectUpgrade(socket, 400, "unable to upgrade: port-forward over channel framing needs the ports in the request");
    }
    delete req.headers["sec-websocket-protocol"];
    this.chosenProtocols.set(req, protocol);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      try {
        this.runWebSocketSession(ws, protocol, pending);
      } catch (err) {
        this.logger.error({ err: messageOf(err) }, "streaming: websocket session failed to start");
        ws.terminate();
      }
    });
  }

  private runWebSocketSession(ws: WebSocket, protocol: string, pending: PendingSession): void {
    if (this.stopping) {
      ws.terminate();
      return;
    }
    const logger = this.sessionLogger(pending, protocol, "websocket");
    logger.info("streaming session started");
    const common = { ws, protocol, backend: this.opts.backend, logger, idleTimeoutMs: this.idleTimeoutMs };
    if (protocol === WebSocketProtocol.SpdyPortForward) {
      this.runSpdyTunnel(ws, pending, logger);
      return;
    }
    const socket =
      pending.kind === StreamKind.PortForward
        ? serveWebSocketPortForward({ ...common, params: pending.params, limiter: this.forwards })
        : serveWebSocketRemoteCommand({ ...common, request: pending.kind === StreamKind.Exec ? { kind: "exec", params: pending.params } : { kind: "attach", params: pending.params } });
    this.track({ close: () => socket.close(WsCloseCode.GoingAway, "server shutting down") }, (cb) => ws.once("close", cb));
  }

  /**
   * SPDY inside a WebSocket: binary message payloads, concatenated, are the SPDY byte stream.
   * There is no inner HTTP upgrade; the protocol is the subprotocol minus its "SPDY/3.1+".
   */
  private runSpdyTunnel(ws: WebSocket, pending: PendingSession, logger: Logger): void {
    ws.on("error", (err) => logger.debug({ err: messageOf(err) }, "streaming: websocket failed"));
    ws.on("message", (_data, isBinary) => {
      if (!isBinary) {
        logger.debug("streaming: text message in a SPDY tunnel; closing");
        ws.close(WsCloseCode.ProtocolError, "SPDY tunnel carries binary messages only");
      }
    });
    const duplex = createWebSocketStream(ws);
    duplex.on("error", (err) => logger.debug({ err: messageOf(err) }, "streaming: SPDY tunnel failed"));
    const protocol = WebSocketProtocol.SpdyPortForward.slice("SPDY/3.1+".length);
    this.runSpdySession(duplex, Buffer.alloc(0), protocol, pending, "websocket-spdy");
  }

  private sessionLogger(pending: PendingSession, protocol: string, transport: string): Logger {
    const id = pending.kind === StreamKind.PortForward ? { podSandboxId: pending.params.podSandboxId } : { containerId: pending.params.containerId };
    return this.logger.child({ session: pending.kind, transport, protocol: protocol || "(none)", ...id });
  }
}
