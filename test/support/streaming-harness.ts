// A real StreamingServer on 127.0.0.1:0 with the fake backend, and a WebSocket channel client,
// for the streaming tests.
import { WebSocket } from "ws";
import { createLogger } from "../../src/logger/logger.js";
import { StreamingServer, type StreamingServerOptions } from "../../src/streaming/server.js";
import { FakeBackend } from "./fake-streaming-backend.js";

export interface Harness {
  server: StreamingServer;
  backend: FakeBackend;
  stop(): Promise<void>;
}

export async function startServer(extra: Partial<StreamingServerOptions> = {}): Promise<Harness> {
  const backend = new FakeBackend();
  const server = new StreamingServer({ host: "127.0.0.1", port: 0, backend, logger: createLogger("silent"), ...extra });
  await server.start();
  return {
    server,
    backend,
    stop: async () => {
      await server.stop();
      backend.destroyConnections();
    },
  };
}

export function toWs(url: string): string {
  return url.replace(/^http/, "ws");
}

export interface ChannelMessage {
  channel: number;
  data: Buffer;
  binary: boolean;
}

export interface WsClient {
  ws: WebSocket;
  protocol: string;
  messages: ChannelMessage[];
  closed: Promise<{ code: number; reason: string }>;
  /** Sends on a channel in the session's framing. */
  send(channel: number, data: Buffer | string): void;
  /** Bytes received on a channel so far (the empty ready message included, as nothing). */
  received(channel: number): Buffer;
  /** Resolves once `predicate` holds for the messages received. */
  until(predicate: (messages: ChannelMessage[]) => boolean, timeoutMs?: number): Promise<void>;
}

/** The server refused the WebSocket upgrade with an HTTP status. */
export class WsRefused extends Error {
  constructor(readonly status: number) {
    super(`websocket upgrade refused: HTTP ${status}`);
  }
}

export function connectWs(url: string, protocols?: string[]): Promise<WsClient> {
  const base64 = protocols !== undefined && protocols.some((p) => p.includes("base64"));
  const ws = new WebSocket(toWs(url), protocols);
  const messages: ChannelMessage[] = [];
  const watchers = new Set<() => void>();
  ws.on("message", (raw, isBinary) => {
    const buf = Buffer.isBuffer(raw) ? raw : Array.isArray(raw) ? Buffer.concat(raw) : Buffer.from(raw);
    if (buf.length === 0) return;
    const decodeAsBase64 = base64 && !isBinary;
    const channel = decodeAsBase64 ? buf[0]! - 48 : buf[0]!;
    const data = decodeAsBase64 ? Buffer.from(buf.subarray(1).toString("latin1"), "base64") : Buffer.from(buf.subarray(1));
    messages.push({ channel, data, binary: isBinary });
    for (const w of watchers) w();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  return new Promise((resolve, reject) => {
    ws.once("unexpected-response", (_req, res) => {
      reject(new WsRefused(res.statusCode ?? 0));
      res.resume();
      ws.terminate();
    });
    ws.once("error", reject);
    ws.once("open", () => {
      ws.off("error", reject);
      ws.on("error", () => {});
      resolve({
        ws,
        protocol: ws.protocol,
        messages,
        closed,
        send(channel, data) {
          const payload = typeof data === "string" ? Buffer.from(data) : data;
          if (base64) ws.send(String.fromCharCode(48 + channel) + payload.toString("base64"));
          else ws.send(Buffer.concat([Buffer.of(channel), payload]));
        },
        received(channel) {
          return Buffer.concat(messages.filter((m) => m.channel === channel).map((m) => m.data));
        },
        until(predicate, timeoutMs = 5_000) {
          if (predicate(messages)) return Promise.resolve();
          return new Promise((res, rej) => {
            const timer = setTimeout(() => {
              watchers.delete(check);
              rej(new Error(`condition not met in ${timeoutMs} ms; got ${JSON.stringify(messages.map((m) => [m.channel, m.data.toString()]))}`));
            }, timeoutMs);
            const check = (): void => {
              if (!predicate(messages)) return;
              clearTimeout(timer);
              watchers.delete(check);
              res();
            };
            watchers.add(check);
          });
        },
      });
    });
  });
}

/** Polls until `cond` holds (for state the backend records). */
export async function eventually(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}
