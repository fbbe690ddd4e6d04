// GrpcChannel against a real HTTP/2 server on a unix socket that answers as a gRPC server
// does (and misbehaves on request): framing, statuses, deadlines, cancels, lost connections;
// unary calls and bidirectional ones.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import http2, { type Http2Server, type ServerHttp2Session } from "node:http2";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GrpcStatusError, GrpcChannel } from "../../src/containerd/grpc-channel.js";
import { GrpcCode } from "../../src/util/grpc-wire.js";

/** A gRPC length-prefixed message: flag (1 = compressed), 4-byte big-endian length, bytes. */
function framed(msg: Buffer, flag = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flag;
  head.writeUInt32BE(msg.length, 1);
  return Buffer.concat([head, msg]);
}

let dir: string;
let socket: string;
let server: Http2Server | undefined;
const sessions = new Set<ServerHttp2Session>();
let channel: GrpcChannel;

/** A server whose methods say how it answers. */
function startServer(): Promise<void> {
  const srv = http2.createServer();
  srv.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  srv.on("stream", (stream, headers) => {
    // A stream this server resets, or whose client went away, reports it here.
    stream.on("error", () => undefined);
    if (String(headers[":path"]).startsWith("/t.B/")) return bidiMethod(String(headers[":path"]), stream);
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => {
      const request = Buffer.concat(chunks).subarray(5);
      const ok = (body: Buffer | Buffer[]) => {
        stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        const parts = Array.isArray(body) ? body : [body];
        parts.slice(0, -1).forEach((p) => stream.write(p));
        stream.end(parts[parts.length - 1]);
      };
      switch (headers[":path"]) {
        case "/t.S/Echo":
          return ok(framed(request));
        case "/t.S/Headers":
          return ok(framed(Buffer.from(JSON.stringify({ ns: headers["containerd-namespace"], lease: headers["containerd-lease"] ?? null, timeout: headers["grpc-timeout"] ?? null, te: headers.te }))));
        case "/t.S/Split": {
          const whole = framed(Buffer.from("a message in three pieces"));
          return ok([whole.subarray(0, 3), whole.subarray(3, 10), whole.subarray(10)]);
        }
        case "/t.S/Big":
          return ok(framed(Buffer.alloc(2 * 1024 * 1024, 7)));
        case "/t.S/Compressed":
          return ok(framed(Buffer.from("zz"), 1));
        case "/t.S/Empty":
          return ok(Buffer.alloc(0));
        case "/t.S/TrailersOnly":
          return stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "5", "grpc-message": "no%20such%20thing: caf%C3%A9" }, { endStream: true });
        case "/t.S/FailLater":
          stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
          stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "9", "grpc-message": "not now" }));
          return stream.end();
        case "/t.S/Drop":
          return stream.session?.destroy();
        case "/t.S/ResetProtocol":
          return stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
        case "/t.S/ResetRefused":
          return stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        case "/t.S/ResetCancel":
          return stream.close(http2.constants.NGHTTP2_CANCEL);
        case "/t.S/Hang":
          return undefined;
        default:
          return stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "12", "grpc-message": "unknown method" }, { endStream: true });
      }
    });
  });
  server = srv;
  return new Promise((resolve) => srv.listen(socket, resolve));
}

const ALREADY_EXISTS = 6;

/** Resets the server saw on bidirectional calls, by path. */
const resets = new Map<string, number>();
let resetSeen: () => void = () => undefined;

/**
 * Bidirectional methods: every whole message the client sends is answered as it arrives.
 * Echo answers with the message's length and sha256; FailAfterOne ends the call with
 * ALREADY_EXISTS after the first; Slow reads one piece at a time, a turn of the loop apart, so
 * the client's sends wait for the window.
 */
function bidiMethod(path: string, stream: http2.ServerHttp2Stream): void {
  stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
  let status = { "grpc-status": "0" } as Record<string, string>;
  stream.on("wantTrailers", () => stream.sendTrailers(status));
  stream.on("close", () => {
    if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) {
      resets.set(path, stream.rstCode);
      resetSeen();
    }
  });
  let buffered = Buffer.alloc(0);
  let answered = 0;
  stream.on("data", (c: Buffer) => {
    buffered = Buffer.concat([buffered, c]);
    while (buffered.length >= 5 && buffered.length >= 5 + buffered.readUInt32BE(1)) {
      const msg = buffered.subarray(5, 5 + buffered.readUInt32BE(1));
      buffered = buffered.subarray(5 + msg.length);
      if (path === "/t.B/FailAfterOne" && answered === 1) {
        status = { "grpc-status": "6", "grpc-message": "already%20there" };
        stream.end();
        return;
      }
      answered++;
      stream.write(framed(Buffer.from(`${msg.length}:${createHash("sha256").update(msg).digest("hex")}`)));
    }
    if (path === "/t.B/Slow") {
      stream.pause();
      setImmediate(() => stream.resume());
    }
  });
  stream.on("end", () => {
    if (!stream.writableEnded) stream.end();
  });
}

async function stopServer(): Promise<void> {
  for (const s of sessions) s.destroy();
  const srv = server;
  server = undefined;
  if (srv) await new Promise<void>((resolve) => srv.close(() => resolve()));
}

const call = (method: string, body = Buffer.from("hello"), opts: { deadline?: number; signal?: AbortSignal; headers?: Record<string, string> } = {}) =>
  channel.call(`/t.S/${method}`, body, { headers: opts.headers ?? { "containerd-namespace": "ns1" }, deadline: opts.deadline ?? Date.now() + 5000, ...(opts.signal ? { signal: opts.signal } : {}) });

async function statusOf(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(GrpcStatusError);
    return { code: (err as GrpcStatusError).code, details: (err as GrpcStatusError).details };
  }
  throw new Error("the call succeeded");
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "podshim-unary-"));
  socket = join(dir, "s.sock");
  channel = new GrpcChannel({ socket, maxReceiveBytes: 1024 * 1024, windowBytes: 1024 * 1024 });
  await startServer();
});

afterEach(async () => {
  channel.close();
  await stopServer();
  rmSync(dir, { recursive: true, force: true });
});

describe("GrpcChannel", () => {
  it("sends one framed message and answers the one message it gets back", async () => {
    expect((await call("Echo", Buffer.from("ping"))).toString()).toBe("ping");
    expect((await call("Echo", Buffer.alloc(0))).length).toBe(0);
    expect((await call("Split")).toString()).toBe("a message in three pieces");
  });

  it("sends the caller's headers, te: trailers and the deadline as grpc-timeout", async () => {
    const seen = JSON.parse((await call("Headers", undefined, { headers: { "containerd-namespace": "k8s", "containerd-lease": "l1" }, deadline: Date.now() + 2000 })).toString());
    expect(seen.ns).toBe("k8s");
    expect(seen.lease).toBe("l1");
    expect(seen.te).toBe("trailers");
    expect(seen.timeout).toMatch(/^\d{1,8}m$/);
    expect(Number(seen.timeout.slice(0, -1))).toBeLessThanOrEqual(2000);
  });

  it("turns a status in the trailers, or in a trailers-only answer, into its code and decoded message", async () => {
    expect(await statusOf(call("TrailersOnly"))).toEqual({ code: 5, details: "no such thing: café" });
    expect(await statusOf(call("FailLater"))).toEqual({ code: 9, details: "not now" });
    expect((await statusOf(call("Nope"))).code).toBe(GrpcCode.UNIMPLEMENTED);
  });

  it("refuses answers it cannot read: too large, compressed, or without a message", async () => {
    expect((await statusOf(call("Big"))).code).toBe(GrpcCode.RESOURCE_EXHAUSTED);
    expect((await statusOf(call("Compressed"))).code).toBe(GrpcCode.INTERNAL);
    expect((await statusOf(call("Empty"))).code).toBe(GrpcCode.INTERNAL);
    // The connection is still good afterwards.
    expect((await call("Echo")).toString()).toBe("hello");
  });

  it("fails with DEADLINE_EXCEEDED when the deadline passes, and at once when it already has", async () => {
    const started = Date.now();
    expect((await statusOf(call("Hang", undefined, { deadline: Date.now() + 150 }))).code).toBe(GrpcCode.DEADLINE_EXCEEDED);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect((await statusOf(call("Echo", undefined, { deadline: Date.now() - 1 }))).code).toBe(GrpcCode.DEADLINE_EXCEEDED);
  });

  it("fails with CANCELLED when the caller aborts, before or during the call", async () => {
    const before = new AbortController();
    before.abort();
    expect((await statusOf(call("Echo", undefined, { signal: before.signal }))).code).toBe(GrpcCode.CANCELLED);
    const during = new AbortController();
    const pending = call("Hang", undefined, { signal: during.signal });
    setTimeout(() => during.abort(), 20);
    expect((await statusOf(pending)).code).toBe(GrpcCode.CANCELLED);
    expect((await call("Echo")).toString()).toBe("hello");
  });

  it("fails with UNAVAILABLE when nothing listens or the connection drops, and connects again after", async () => {
    expect((await statusOf(call("Drop"))).code).toBe(GrpcCode.UNAVAILABLE);
    expect((await call("Echo")).toString()).toBe("hello");

    await stopServer();
    const down = await statusOf(call("Echo"));
    expect(down.code).toBe(GrpcCode.UNAVAILABLE);
    expect(down.details).toContain(socket);

    await startServer();
    expect((await call("Echo", Buffer.from("back"))).toString()).toBe("back");
  });

  it("maps a reset from the server: refused or cancelled by it is UNAVAILABLE, a protocol error INTERNAL", async () => {
    expect((await statusOf(call("ResetRefused"))).code).toBe(GrpcCode.UNAVAILABLE);
    expect((await statusOf(call("ResetCancel"))).code).toBe(GrpcCode.UNAVAILABLE);
    const broken = await statusOf(call("ResetProtocol"));
    expect(broken.code).toBe(GrpcCode.INTERNAL);
    expect(broken.details).toContain("NGHTTP2_PROTOCOL_ERROR");
    expect((await call("Echo")).toString()).toBe("hello");
  });

  it("runs many calls at once on the one connection", async () => {
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => call("Echo", Buffer.from(`m${i}`))));
    expect(answers.map(String)).toEqual(Array.from({ length: 200 }, (_, i) => `m${i}`));
    expect(sessions.size).toBe(1);
  });
});

describe("GrpcChannel.bidi", () => {
  it("sends a bidirectional call's messages from their parts, and answers each as it comes", async () => {
    const bidi = channel.bidi("/t.B/Echo", { headers: { "containerd-namespace": "ns1" } });
    const parts = [Buffer.from("head-"), randomBytes(70_000), Buffer.alloc(0), randomBytes(3)];
    await bidi.send(parts);
    await bidi.send([Buffer.from("second")]);
    const whole = Buffer.concat(parts);
    expect((await bidi.next())!.toString()).toBe(`${whole.length}:${createHash("sha256").update(whole).digest("hex")}`);
    expect((await bidi.next())!.toString()).toBe(`6:${createHash("sha256").update("second").digest("hex")}`);
    bidi.end();
    expect(await bidi.next()).toBeUndefined();
    expect(await bidi.next()).toBeUndefined();
  });

  it("waits for the window when the server reads slowly, and loses no byte", async () => {
    const codes: number[] = [];
    const bidi = channel.bidi("/t.B/Slow", { headers: {}, onEnd: (code) => codes.push(code) });
    const sent: string[] = [];
    const answers = (async () => {
      const got: string[] = [];
      for (let m = await bidi.next(); m; m = await bidi.next()) got.push(m.toString());
      return got;
    })();
    for (let i = 0; i < 16; i++) {
      const parts = [randomBytes(100), randomBytes(512 * 1024), randomBytes(512 * 1024)];
      const whole = Buffer.concat(parts);
      sent.push(`${whole.length}:${createHash("sha256").update(whole).digest("hex")}`);
      await bidi.send(parts);
    }
    bidi.end();
    expect(await answers).toEqual(sent);
    expect(codes).toEqual([GrpcCode.OK]);
  });

  it("fails a bidirectional call's next and later sends with the server's status", async () => {
    const codes: number[] = [];
    const bidi = channel.bidi("/t.B/FailAfterOne", { headers: {}, onEnd: (code) => codes.push(code) });
    await bidi.send([Buffer.from("one")]);
    await bidi.send([Buffer.from("two")]);
    expect((await bidi.next())!.toString()).toMatch(/^3:/);
    expect(await statusOf(bidi.next())).toEqual({ code: ALREADY_EXISTS, details: "already there" });
    expect((await statusOf(bidi.send([Buffer.from("three")]))).code).toBe(ALREADY_EXISTS);
    expect(codes).toEqual([ALREADY_EXISTS]);
  });

  it("cancels a bidirectional call: the server sees a reset, the caller CANCELLED", async () => {
    const reset = new Promise<void>((resolve) => (resetSeen = resolve));
    const bidi = channel.bidi("/t.B/Echo", { headers: {} });
    await bidi.send([Buffer.from("x")]);
    expect(await bidi.next()).toBeDefined();
    const pending = bidi.next();
    bidi.cancel();
    expect((await statusOf(pending)).code).toBe(GrpcCode.CANCELLED);
    expect((await statusOf(bidi.send([Buffer.from("y")]))).code).toBe(GrpcCode.CANCELLED);
    await reset;
    expect(resets.get("/t.B/Echo")).toBe(http2.constants.NGHTTP2_CANCEL);

    // Aborted through its signal, and when nothing listens at all.
    const ac = new AbortController();
    const aborted = channel.bidi("/t.B/Echo", { headers: {}, signal: ac.signal });
    ac.abort();
    expect((await statusOf(aborted.next())).code).toBe(GrpcCode.CANCELLED);
    await stopServer();
    const nobody = channel.bidi("/t.B/Echo", { headers: {} });
    expect((await statusOf(nobody.next())).code).toBe(GrpcCode.UNAVAILABLE);
  });
});
