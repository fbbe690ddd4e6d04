// A bare WebSocket client that offers `SPDY/3.1+portforward.k8s.io`, for the SPDY tunnel tests.
// The `ws` client refuses that subprotocol name ('/' is no token character) just as its server
// does, so the handshake and the framing (RFC 6455, client frames masked) are done by hand here.
// The result is a Duplex carrying the binary messages' bytes, as client-go's tunnel sees them.
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { Socket } from "node:net";
import { Duplex } from "node:stream";

const Opcode = { Continuation: 0, Text: 1, Binary: 2, Close: 8, Ping: 9, Pong: 10 } as const;

function encodeFrame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  let header: Buffer;
  if (payload.length < 126) {
    header = Buffer.of(0x80 | opcode, 0x80 | payload.length);
  } else if (payload.length < 65536) {
    header = Buffer.alloc(4);
    header[0] = 0x80 | opcode;
    header[1] = 0x80 | 126;
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  const masked = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) masked[i] = payload[i]! ^ mask[i % 4]!;
  return Buffer.concat([header, mask, masked]);
}

export class WsTunnel extends Duplex {
  private buf = Buffer.alloc(0);
  private closeSent = false;
  /** The close code the server sent, once it did. */
  closeCode: number | undefined;

  constructor(private readonly socket: Socket, head: Buffer) {
    super({ allowHalfOpen: false });
    socket.on("data", (chunk: Buffer) => this.feed(chunk));
    socket.on("error", () => {});
    socket.on("close", () => {
      this.push(null);
      this.destroy();
    });
    if (head.length > 0) this.feed(head);
  }

  /** Sends a text message (which a SPDY tunnel must refuse). */
  sendText(text: string): void {
    this.socket.write(encodeFrame(Opcode.Text, Buffer.from(text)));
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.socket.destroyed) return cb();
    if (this.socket.write(encodeFrame(Opcode.Binary, chunk))) cb();
    else this.socket.once("drain", () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.sendClose(1000);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket.destroy();
    cb(err);
  }

  private sendClose(code: number): void {
    if (this.closeSent || this.socket.destroyed) return;
    this.closeSent = true;
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(code);
    this.socket.write(encodeFrame(Opcode.Close, payload));
    this.socket.end();
  }

  private feed(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    for (;;) {
      if (this.buf.length < 2) return;
      const opcode = this.buf[0]! & 0x0f;
      let len = this.buf[1]! & 0x7f;
      let offset = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        offset = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        offset = 10;
      }
      if (this.buf.length < offset + len) return;
      const payload = this.buf.subarray(offset, offset + len);
      this.buf = this.buf.subarray(offset + len);
      if (opcode === Opcode.Binary || opcode === Opcode.Continuation) {
        if (!this.push(Buffer.from(payload))) this.socket.pause();
      } else if (opcode === Opcode.Close) {
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.push(null);
        this.sendClose(1000);
      } else if (opcode === Opcode.Ping) {
        this.socket.write(encodeFrame(Opcode.Pong, Buffer.from(payload)));
      }
    }
  }
}

/** Upgrades to a WebSocket with the SPDY tunnel subprotocol; rejects with the HTTP status otherwise. */
export function connectWsTunnel(url: string, protocol = "SPDY/3.1+portforward.k8s.io"): Promise<{ tunnel: WsTunnel; protocol: string | undefined }> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: target.hostname,
      port: Number(target.port),
      path: target.pathname,
      headers: {
        Connection: "Upgrade",
        Upgrade: "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": randomBytes(16).toString("base64"),
        "Sec-WebSocket-Protocol": protocol,
      },
    });
    req.on("upgrade", (res, socket, head) => {
      const chosen = res.headers["sec-websocket-protocol"];
      resolve({ tunnel: new WsTunnel(socket as Socket, head), protocol: Array.isArray(chosen) ? chosen[0] : chosen });
    });
    req.on("response", (res) => {
      res.resume();
      reject(Object.assign(new Error(`websocket upgrade refused: HTTP ${res.statusCode}`), { status: res.statusCode }));
    });
    req.on("error", reject);
    req.end();
  });
}
