// The WebSocket side of the streaming server: the channel protocols for exec/attach
// (`v5.channel.k8s.io` and its elders, binary or base64) and the legacy channel-framed
// port-forward. The handshake itself happens in server.ts, which picks the subprotocol with
// the functions here before `ws` answers.
//
// Channel framing: every message starts with its channel (a byte, or an ASCII digit in the
// base64 flavours), the payload follows. Exec/attach channels are fixed: 0 stdin, 1 stdout,
// 2 stderr, 3 error, 4 resize. Port-forward gives port i the channels 2i (data) and 2i+1 (error).
import { PassThrough, Writable } from "node:stream";
import type { Duplex } from "node:stream";
import type { WebSocket, RawData } from "ws";
import { messageOf } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import type { StreamingBackend } from "./backend.js";
import type { ForwardLimiter } from "./limits.js";
import { protocolGeneration, RemoteCommandProtocol, runRemoteCommand, type RemoteCommandRequest } from "./remotecommand.js";
import type { PortForwardParams } from "./tokens.js";

export const WebSocketProtocol = {
  /** No Sec-WebSocket-Protocol offered: treated as v1 binary framing. */
  None: "",
  V1: RemoteCommandProtocol.V1,
  V2: RemoteCommandProtocol.V2,
  V3: RemoteCommandProtocol.V3,
  V4: RemoteCommandProtocol.V4,
  V5: RemoteCommandProtocol.V5,
  Base64V1: "base64.channel.k8s.io",
  Base64V4: "v4.base64.channel.k8s.io",
  /** SPDY frames tunnelled in binary messages (crictl/critest `-r websocket` port-forward). */
  SpdyPortForward: "SPDY/3.1+portforward.k8s.io",
} as const;
export type WebSocketProtocol = (typeof WebSocketProtocol)[keyof typeof WebSocketProtocol];

/**
 * Exec/attach subprotocols. v2 and v3 have no WebSocket clients in the wild; they are taken
 * with v1 framing and their own error-stream rules so that a client offering them still works.
 */
export const WS_REMOTECOMMAND_PROTOCOLS: readonly string[] = [
  WebSocketProtocol.V5,
  WebSocketProtocol.V4,
  WebSocketProtocol.Base64V4,
  WebSocketProtocol.V3,
  WebSocketProtocol.V2,
  WebSocketProtocol.V1,
  WebSocketProtocol.Base64V1,
];

/** Port-forward subprotocols: the SPDY tunnel, and the legacy channel framing. */
export const WS_PORTFORWARD_PROTOCOLS: readonly string[] = [
  WebSocketProtocol.SpdyPortForward,
  WebSocketProtocol.V4,
  WebSocketProtocol.Base64V4,
];

export const ExecChannel = {
  Stdin: 0,
  Stdout: 1,
  Stderr: 2,
  Error: 3,
  Resize: 4,
} as const;

/** v5's half-close signal: a binary message [CLOSE_SIGNAL, channel]. */
const CLOSE_SIGNAL = 255;
/** client-go reads 32 KiB at a time; bigger messages gain nothing. */
const MAX_MESSAGE_PAYLOAD = 32 * 1024;
/** Past this much unsent data a writer waits for the socket before taking more. */
const SEND_HIGH_WATER = 1024 * 1024;

export const WsCloseCode = {
  Normal: 1000,
  ProtocolError: 1002,
  GoingAway: 1001,
} as const;

/** The offered subprotocols of a request, in the client's order. */
export function offeredProtocols(header: string | string[] | undefined): string[] {
  const values = Array.isArray(header) ? header : header === undefined ? [] : [header];
  return values.flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v !== "");
}

/**
 * The subprotocol to answer with: the client's first offer podshim supports, "" when it offered
 * none (v1 binary), undefined when it offered only unknown ones (refused with 403).
 */
export function chooseWebSocketProtocol(offers: readonly string[], supported: readonly string[]): string | undefined {
  if (offers.length === 0) return WebSocketProtocol.None;
  return offers.find((p) => supported.includes(p));
}

function isBase64(protocol: string): boolean {
  return protocol === WebSocketProtocol.Base64V1 || protocol === WebSocketProtocol.Base64V4;
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export interface ChannelSocketOptions {
  protocol: string;
  logger: Logger;
  idleTimeoutMs: number;
}

/**
 * A WebSocket speaking channel framing: sends and receives (channel, payload) pairs, turns a
 * close into an abort signal, and ends itself after a long silence. Every failure of the
 * socket ends up as that abort, never as an 'error' event nobody listens to.
 */
export class ChannelSocket {
  private readonly controller = new AbortController();
  private readonly base64: boolean;
  private readonly closeSignals: boolean;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly logger: Logger;
  private readonly idleTimeoutMs: number;
  private closing = false;

  constructor(
    private readonly ws: WebSocket,
    opts: ChannelSocketOptions,
    private readonly handlers: {
      onData(channel: number, payload: Buffer): void;
      /** v5 only: the client will not write this channel any more. */
      onChannelClosed?(channel: number): void;
    },
  ) {
    this.base64 = isBase64(opts.protocol);
    this.closeSignals = protocolGeneration(opts.protocol) >= 5;
    this.logger = opts.logger;
    this.idleTimeoutMs = opts.idleTimeoutMs;
    ws.on("error", (err) => this.logger.debug({ err: messageOf(err) }, "streaming: websocket failed"));
    ws.on("close", () => {
      clearTimeout(this.idleTimer);
      this.controller.abort();
    });
    ws.on("message", (data, isBinary) => this.receive(toBuffer(data), isBinary));
    ws.on("ping", () => this.touch());
    ws.on("pong", () => this.touch());
    this.touch();
  }

  /** Aborts when the connection is gone (either side closed it, or it failed). */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get isClosing(): boolean {
    return this.closing || this.controller.signal.aborted;
  }

  /**
   * Sends a payload on a channel, cut into 32 KiB messages. `sent` is called once the socket
   * can take more (at once unless a lot is queued): writers use it for backpressure.
   */
  send(channel: number, payload: Buffer, sent?: () => void): void {
    if (this.isClosing) {
      sent?.();
      return;
    }
    this.touch();
    let offset = 0;
    do {
      const piece = payload.subarray(offset, offset + MAX_MESSAGE_PAYLOAD);
      offset += piece.length;
      const last = offset >= payload.length;
      const waitForSocket = last && sent !== undefined && this.ws.bufferedAmount + piece.length > SEND_HIGH_WATER;
      const message = this.base64 ? String.fromCharCode(48 + channel) + piece.toString("base64") : Buffer.concat([Buffer.of(channel), piece]);
      this.ws.send(message, { binary: !this.base64 }, waitForSocket ? () => sent?.() : undefined);
      if (last && sent && !waitForSocket) sent();
    } while (offset < payload.length);
  }

  /** Stops reading from the client until resume(): backpressure towards the client. */
  pause(): void {
    if (!this.isClosing) this.ws.pause();
  }

  resume(): void {
    if (!this.isClosing) this.ws.resume();
  }

  /** Ends the connection; 1000 is what clients read as a clean end of every stream. */
  close(code: number = WsCloseCode.Normal, reason?: string): void {
    if (this.closing) return;
    this.closing = true;
    clearTimeout(this.idleTimer);
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
    }
  }

  /** Drops the connection without a closing handshake (server shutdown, broken peer). */
  terminate(): void {
    this.closing = true;
    this.ws.terminate();
  }

  private touch(): void {
    clearTimeout(this.idleTimer);
    if (this.isClosing) return;
    this.idleTimer = setTimeout(() => {
      this.logger.info({ idleTimeoutMs: this.idleTimeoutMs }, "streaming: websocket idle for too long; closing it");
      this.close(WsCloseCode.GoingAway, "idle timeout");
    }, this.idleTimeoutMs);
    this.idleTimer.unref();
  }

  private receive(data: Buffer, isBinary: boolean): void {
    this.touch();
    try {
      if (this.closeSignals && isBinary && data[0] === CLOSE_SIGNAL) {
        if (data.length !== 2) {
          this.close(WsCloseCode.ProtocolError, "malformed close signal");
          return;
        }
        this.handlers.onChannelClosed?.(data[1]!);
        return;
      }
      if (data.length === 0) return;
      if (this.base64) {
        const channel = data[0]! - 48;
        this.handlers.onData(channel, Buffer.from(data.subarray(1).toString("latin1"), "base64"));
      } else {
        this.handlers.onData(data[0]!, data.subarray(1));
      }
    } catch (err) {
      // A handler must never take the daemon down; this session is lost, the others are not.
      this.logger.warn({ err: messageOf(err) }, "streaming: websocket message handling failed");
      this.close(WsCloseCode.ProtocolError, "internal error");
    }
  }
}

/** A Writable whose bytes go out on one channel, with the socket's backpressure. */
function channelWriter(socket: ChannelSocket, channel: number): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      socket.send(channel, chunk, () => done());
    },
  });
}

export interface WebSocketSessionOptions {
  ws: WebSocket;
  protocol: string;
  backend: StreamingBackend;
  logger: Logger;
  idleTimeoutMs: number;
}

/**
 * Runs exec or attach over a channel-framed WebSocket. Returns the socket so the server can
 * terminate it at shutdown; the session runs on its own.
 */
export function serveWebSocketRemoteCommand(opts: WebSocketSessionOptions & { request: RemoteCommandRequest }): ChannelSocket {
  const { request, protocol } = opts;
  const params = request.params;
  const generation = protocolGeneration(protocol === WebSocketProtocol.Base64V4 ? WebSocketProtocol.V4 : protocol);
  const stdin = params.stdin ? new PassThrough() : undefined;
  // The resize channel exists in every WebSocket generation (channels are fixed), TTY only.
  const resize = params.tty ? new PassThrough() : undefined;

  const socket = new ChannelSocket(opts.ws, { protocol, logger: opts.logger, idleTimeoutMs: opts.idleTimeoutMs }, {
    onData(channel, payload) {
      if (channel === ExecChannel.Stdin && stdin && stdin.writable) {
        // A process that reads slower than the client types holds the whole socket back.
        if (!stdin.write(payload)) {
          socket.pause();
          stdin.once("drain", () => socket.resume());
        }
      } else if (channel === ExecChannel.Resize && resize && resize.writable) {
        resize.write(payload);
      }
      // Anything else (output channels, unknown numbers) is dropped, as the reference does.
    },
    onChannelClosed(channel) {
      if (channel === ExecChannel.Stdin) stdin?.end();
      else if (channel === ExecChannel.Resize) resize?.end();
    },
  });
  // A torn connection destroys the inputs, which the session reads as "not an EOF".
  socket.signal.addEventListener("abort", () => {
    stdin?.destroy();
    resize?.destroy();
  }, { once: true });

  const stdout = params.stdout ? channelWriter(socket, ExecChannel.Stdout) : undefined;
  const stderr = params.stderr && !params.tty ? channelWriter(socket, ExecChannel.Stderr) : undefined;
  // An empty message on the first output channel tells the client the session is ready.
  const readyChannel = stdout ? ExecChannel.Stdout : stderr ? ExecChannel.Stderr : ExecChannel.Error;
  socket.send(readyChannel, Buffer.alloc(0));

  void runRemoteCommand({
    request,
    generation,
    backend: opts.backend,
    logger: opts.logger,
    channels: {
      ...(stdin ? { stdin } : {}),
      ...(stdout ? { stdout } : {}),
      ...(stderr ? { stderr } : {}),
      ...(resize ? { resize } : {}),
      signal: socket.signal,
      finish(status) {
        if (status && status.length > 0) socket.send(ExecChannel.Error, status);
        socket.close(WsCloseCode.Normal);
      },
    },
  });
  return socket;
}

/** The text a failed forward writes on its error channel or stream. */
export function forwardErrorText(port: number, podSandboxId: string, err: unknown): string {
  // The empty uid is the reference's: the CRI has none to give.
  return `error forwarding port ${port} to pod ${podSandboxId}, uid : ${messageOf(err)}`;
}

/**
 * Legacy port-forward over channel framing: one connection into the pod per requested port,
 * opened at once. Each data and error channel first carries its port (2 bytes, little endian)
 * so the client can tell them apart. The WebSocket closes when every forward is over.
 */
export function serveWebSocketPortForward(opts: WebSocketSessionOptions & { params: PortForwardParams; limiter?: ForwardLimiter }): ChannelSocket {
  const { params, logger } = opts;
  interface Forward {
    port: number;
    conn?: Duplex;
    release?: () => void;
    /** Client bytes that came before the pod connection was up. */
    early: Buffer[];
    done: boolean;
  }
  const forwards: Forward[] = params.ports.map((port) => ({ port, early: [], done: false }));
  const waitingForDrain = new Set<Forward>();

  const socket = new ChannelSocket(opts.ws, { protocol: opts.protocol, logger, idleTimeoutMs: opts.idleTimeoutMs }, {
    onData(channel, payload) {
      // Odd channels are the server's error channels; the client has nothing to say there.
      if (channel % 2 !== 0) return;
      const f = forwards[channel / 2];
      if (!f || f.done) return;
      if (!f.conn) {
        f.early.push(Buffer.from(payload));
        return;
      }
      if (!f.conn.write(payload)) {
        waitingForDrain.add(f);
        socket.pause();
        f.conn.once("drain", () => {
          waitingForDrain.delete(f);
          if (waitingForDrain.size === 0) socket.resume();
        });
      }
    },
  });

  const finishOne = (f: Forward): void => {
    if (f.done) return;
    f.done = true;
    f.release?.();
    f.conn?.destroy();
    if (waitingForDrain.delete(f) && waitingForDrain.size === 0) socket.resume();
    if (forwards.every((x) => x.done)) socket.close(WsCloseCode.Normal);
  };
  socket.signal.addEventListener("abort", () => {
    for (const f of forwards) {
      f.done = true;
      f.release?.();
      f.conn?.destroy();
    }
  }, { once: true });

  if (forwards.length === 0) {
    socket.close(WsCloseCode.Normal);
    return socket;
  }

  forwards.forEach((f, i) => {
    const portBytes = Buffer.alloc(2);
    portBytes.writeUInt16LE(f.port);
    socket.send(2 * i, portBytes);
    socket.send(2 * i + 1, portBytes);
  });

  forwards.forEach((f, i) => {
    const fail = (err: unknown): void => {
      if (f.done) return;
      logger.info({ port: f.port, err: messageOf(err) }, "streaming: port-forward failed");
      socket.send(2 * i + 1, Buffer.from(forwardErrorText(f.port, params.podSandboxId, err)));
      finishOne(f);
    };
    const slot = opts.limiter?.acquire(params.podSandboxId);
    if (slot && "refused" in slot) {
      fail(new Error(slot.refused));
      return;
    }
    f.release = slot?.release;
    opts.backend.portForward(params.podSandboxId, f.port).then(
      (conn) => {
        if (f.done) {
          conn.destroy();
          return;
        }
        f.conn = conn;
        conn.on("error", fail);
        conn.on("data", (chunk: Buffer) => {
          // send() calls back at once unless the socket is backed up; until then, hold the pod.
          conn.pause();
          socket.send(2 * i, chunk, () => conn.resume());
        });
        conn.on("end", () => finishOne(f));
        conn.on("close", () => finishOne(f));
        for (const chunk of f.early.splice(0)) conn.write(chunk);
      },
      fail,
    );
  });
  return socket;
}
