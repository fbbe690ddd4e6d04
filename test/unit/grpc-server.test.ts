// CriServer, podshim's gRPC server on node:http2, against real clients on a unix socket:
// grpc-js's client for what a well-behaved caller does (unary, server streaming, deadlines,
// cancels, statuses), and raw HTTP/2 for what a hostile or broken one sends (bad framing,
// compression, oversized messages, wrong method or content type); then the drain on stop.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import http2 from "node:http2";
import { connect } from "node:net";
import { mkdtempSync, rmSync, existsSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import grpc from "@grpc/grpc-js";
import { CriServer, type MethodDefinition, type ServerCall, type ServiceImplementation, type StreamMethod, type UnaryMethod } from "../../src/server/grpc-server.js";
import { createLogger } from "../../src/logger/logger.js";
import { GrpcCode } from "../../src/util/grpc-wire.js";

const quiet = createLogger("error", new Writable({ write: (_c, _e, done) => done() }));
const MiB = 1024 * 1024;

const asBytes = (b: Buffer) => b;
const method = (name: string, responseStream = false, decode: (b: Buffer) => unknown = asBytes): MethodDefinition => ({
  path: `/t.S/${name}`, requestStream: false, responseStream,
  requestDeserialize: decode, responseSerialize: (v: never) => v as Uint8Array,
});
const definition = {
  echo: method("Echo"),
  fail: method("Fail"),
  throws: method("Throws"),
  long: method("Long"),
  hang: method("Hang"),
  big: method("Big"),
  strict: method("Strict", false, () => {
    throw new Error("index out of range");
  }),
  count: method("Count", true),
  flood: method("Flood", true),
  failLater: method("FailLater", true),
};

let dir: string;
let socket: string;
let server: CriServer;
let client: grpc.Client;
/** The last call each method saw, for its signal. */
const seen = new Map<string, ServerCall>();
/** Resolves a Hang call's answer when the test says so. */
let releaseHang: (() => void) | undefined;
let floodSends = 0;
let floodEnded: Promise<unknown> | undefined;
let floodSend: ((m: unknown) => Promise<void>) | undefined;

function implementation(): ServiceImplementation {
  const unary = (name: string, fn: UnaryMethod): UnaryMethod => (call) => (seen.set(name, call), fn(call));
  const count: StreamMethod = async (call, send) => {
    for (let i = 0; i < Number((call.request as Buffer).toString()); i++) await send(Buffer.from(`m${i}`));
  };
  const flood: StreamMethod = (call, send) => {
    seen.set("flood", call);
    floodSend = send;
    const run = (async () => {
      for (;;) {
        await send(Buffer.alloc(MiB, 1));
        floodSends++;
      }
    })();
    floodEnded = run.catch((e: unknown) => e);
    return run;
  };
  const failLater: StreamMethod = async (_call, send) => {
    await send(Buffer.from("first"));
    throw { code: GrpcCode.FAILED_PRECONDITION, details: "not after the first" };
  };
  return {
    echo: unary("echo", async (call) => call.request),
    fail: unary("fail", () => Promise.reject({ code: GrpcCode.NOT_FOUND, details: "no such thing: café 100%" })),
    throws: unary("throws", () => Promise.reject(new Error("boom"))),
    long: unary("long", () => Promise.reject({ code: GrpcCode.INVALID_ARGUMENT, details: `bad name "${"x".repeat(70_000)}"` })),
    hang: unary("hang", (call) => new Promise((resolve) => (releaseHang = () => resolve(call.request)))),
    big: unary("big", async () => Buffer.alloc(16 * MiB + 1)),
    strict: unary("strict", async () => Buffer.alloc(0)),
    count, flood, failLater,
  };
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "grpc-server-"));
  socket = join(dir, "s.sock");
  seen.clear();
  floodSends = 0;
  server = new CriServer(socket, quiet);
  server.add({ definition, implementation: implementation() });
  await server.listen();
  client = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure(), { "grpc.max_receive_message_length": 32 * MiB });
});

afterEach(async () => {
  client.close();
  releaseHang?.();
  await server.stop(1000);
  rmSync(dir, { recursive: true, force: true });
});

type Outcome = { ok: Buffer } | { code: number; details: string };

function unary(name: string, request = Buffer.from("hi"), options: grpc.CallOptions = {}): { done: Promise<Outcome>; call: grpc.ClientUnaryCall } {
  let call!: grpc.ClientUnaryCall;
  const done = new Promise<Outcome>((resolve) => {
    call = client.makeUnaryRequest(`/t.S/${name}`, asBytes, asBytes, request, new grpc.Metadata(), options, (err, res) =>
      resolve(err ? { code: err.code, details: err.details } : { ok: res! }),
    );
  });
  return { done, call };
}

function stream(name: string, request: Buffer): Promise<{ messages: string[]; code: number; details: string }> {
  return new Promise((resolve) => {
    const call = client.makeServerStreamRequest(`/t.S/${name}`, asBytes, asBytes, request);
    const messages: string[] = [];
    call.on("data", (m: Buffer) => messages.push(m.toString()));
    call.on("error", () => undefined);
    call.on("status", (s: grpc.StatusObject) => resolve({ messages, code: s.code, details: s.details }));
  });
}

/** A raw HTTP/2 request: what a broken or hostile client sends, and what it gets back. */
function raw(headers: http2.OutgoingHttpHeaders, body: Buffer): Promise<{ status: number; grpcStatus?: string; message?: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect("http://localhost", { createConnection: () => connect(socket) });
    session.on("error", reject);
    const req = session.request({ ":method": "POST", "content-type": "application/grpc", te: "trailers", ...headers });
    let status = 0;
    let grpcStatus: string | undefined;
    let message: string | undefined;
    req.on("response", (h) => {
      status = Number(h[":status"]);
      grpcStatus = h["grpc-status"] as string | undefined;
      message = h["grpc-message"] as string | undefined;
    });
    req.on("trailers", (t) => {
      grpcStatus = t["grpc-status"] as string | undefined;
      message = t["grpc-message"] as string | undefined;
    });
    req.on("error", () => undefined);
    req.on("data", () => undefined);
    req.on("close", () => {
      session.close();
      resolve({ status, grpcStatus, message });
    });
    req.end(body);
  });
}

function frame(msg: Buffer, flag = 0, claimed = msg.length): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flag;
  head.writeUInt32BE(claimed, 1);
  return Buffer.concat([head, msg]);
}

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
}

describe("unary calls", () => {
  it("answers with what the method returns, and serves the socket 0660", async () => {
    expect(await unary("Echo", Buffer.from("hello")).done).toEqual({ ok: Buffer.from("hello") });
    expect(await unary("Echo", Buffer.alloc(0)).done).toEqual({ ok: Buffer.alloc(0) });
    // Many frames each way; compared as bytes (a deep equal of megabytes takes seconds).
    const large = Buffer.alloc(3 * MiB, 9);
    const answer = await unary("Echo", large).done;
    expect("ok" in answer && answer.ok.equals(large)).toBe(true);
    expect(statSync(socket).mode & 0o777).toBe(0o660);
  });

  it("answers a method's status with its details intact, and anything else it throws as INTERNAL", async () => {
    expect(await unary("Fail").done).toEqual({ code: GrpcCode.NOT_FOUND, details: "no such thing: café 100%" });
    expect(await unary("Throws").done).toEqual({ code: GrpcCode.INTERNAL, details: "internal error: boom" });
  });

  it("keeps the code of a status whose message quotes a huge field, cutting the message", async () => {
    const answer = await unary("Long").done;
    expect(answer).toMatchObject({ code: GrpcCode.INVALID_ARGUMENT, details: expect.stringMatching(/^bad name "x+\.\.\. \(\d+ more characters cut\)$/) });
    expect((answer as { details: string }).details.length).toBeLessThan(5000);
  });

  it("answers UNIMPLEMENTED for a method it does not serve, and INVALID_ARGUMENT for a request it cannot decode", async () => {
    expect(await unary("Nope").done).toMatchObject({ code: GrpcCode.UNIMPLEMENTED, details: expect.stringContaining("/t.S/Nope") });
    expect(await unary("Strict").done).toEqual({ code: GrpcCode.INVALID_ARGUMENT, details: "cannot decode the /t.S/Strict request: index out of range" });
  });

  it("refuses an answer over 16 MiB with RESOURCE_EXHAUSTED", async () => {
    expect(await unary("Big").done).toMatchObject({ code: GrpcCode.RESOURCE_EXHAUSTED });
  });

  it("answers DEADLINE_EXCEEDED when the client's deadline passes, and aborts the method's signal", async () => {
    const started = Date.now();
    expect(await unary("Hang", undefined, { deadline: Date.now() + 200 }).done).toMatchObject({ code: GrpcCode.DEADLINE_EXCEEDED });
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    await until(() => seen.get("hang")?.signal.aborted === true);
    expect(seen.get("hang")!.deadline).toBeGreaterThan(started);
  });

  it("aborts the method's signal when the client cancels, and never for an answered call", async () => {
    const { done, call } = unary("Hang");
    await until(() => seen.has("hang"));
    expect(seen.get("hang")!.deadline).toBeUndefined();
    call.cancel();
    expect(await done).toMatchObject({ code: GrpcCode.CANCELLED });
    await until(() => seen.get("hang")!.signal.aborted);
    await unary("Echo").done;
    const echo = seen.get("echo")!;
    client.close();
    await new Promise((r) => setTimeout(r, 50));
    expect(echo.signal.aborted).toBe(false);
  });
});

describe("server-streaming calls", () => {
  it("sends every message and then OK, or the method's status after what it sent", async () => {
    expect(await stream("Count", Buffer.from("3"))).toMatchObject({ messages: ["m0", "m1", "m2"], code: GrpcCode.OK });
    expect(await stream("Count", Buffer.from("0"))).toMatchObject({ messages: [], code: GrpcCode.OK });
    expect(await stream("FailLater", Buffer.alloc(0))).toEqual({ messages: ["first"], code: GrpcCode.FAILED_PRECONDITION, details: "not after the first" });
  });

  it("makes the method wait while the client does not read, and ends it when the client cancels", async () => {
    // A raw client that never reads: HTTP/2 flow control is all that stops the sends.
    const session = http2.connect("http://localhost", { createConnection: () => connect(socket) });
    const call = session.request({ ":method": "POST", ":path": "/t.S/Flood", "content-type": "application/grpc", te: "trailers" });
    call.on("error", () => undefined);
    call.end(frame(Buffer.alloc(0)));
    await until(() => seen.has("flood"));
    // An absence takes a while to show: unbounded, a loop of 1 MiB sends makes hundreds here.
    await new Promise((r) => setTimeout(r, 300));
    expect(floodSends).toBeLessThan(2);
    call.close(http2.constants.NGHTTP2_CANCEL);
    const ended = await floodEnded;
    session.destroy();
    expect(ended).toBeInstanceOf(Error);
    expect(seen.get("flood")!.signal.aborted).toBe(true);
    // A send after the end rejects at once instead of writing or waiting.
    await expect(floodSend!(Buffer.alloc(1))).rejects.toThrow(/ended|went away/);
  });
});

describe("what a broken or hostile client sends", () => {
  const call = (path: string) => ({ ":path": path });

  it("refuses a compressed request (UNIMPLEMENTED), none or two (INVALID_ARGUMENT) and a cut-off one", async () => {
    expect(await raw(call("/t.S/Echo"), frame(Buffer.from("zz"), 1))).toMatchObject({ status: 200, grpcStatus: String(GrpcCode.UNIMPLEMENTED) });
    expect(await raw(call("/t.S/Echo"), Buffer.alloc(0))).toMatchObject({ grpcStatus: String(GrpcCode.INVALID_ARGUMENT) });
    expect(await raw(call("/t.S/Echo"), Buffer.concat([frame(Buffer.from("a")), frame(Buffer.from("b"))]))).toMatchObject({ grpcStatus: String(GrpcCode.INVALID_ARGUMENT) });
    expect(await raw(call("/t.S/Echo"), frame(Buffer.from("abc"), 0, 10))).toMatchObject({ grpcStatus: String(GrpcCode.INVALID_ARGUMENT) });
  });

  it("refuses a request that says it is over 16 MiB before reading it", async () => {
    expect(await raw(call("/t.S/Echo"), frame(Buffer.from("x"), 0, 16 * MiB + 1))).toMatchObject({ grpcStatus: String(GrpcCode.RESOURCE_EXHAUSTED) });
    expect(seen.has("echo")).toBe(false);
  });

  it("answers HTTP 405 to a method other than POST, 415 to a content type other than gRPC, and refuses a malformed grpc-timeout", async () => {
    expect((await raw({ ...call("/t.S/Echo"), ":method": "PUT" }, frame(Buffer.from("a")))).status).toBe(405);
    expect((await raw({ ...call("/t.S/Echo"), "content-type": "application/json" }, Buffer.from("{}"))).status).toBe(415);
    expect(await raw({ ...call("/t.S/Echo"), "grpc-timeout": "soon" }, frame(Buffer.from("a")))).toMatchObject({ grpcStatus: String(GrpcCode.INVALID_ARGUMENT), message: 'grpc-timeout "soon" is not a timeout' });
  });

  it("stays up and serves the next call, after HTTP/1.1 or garbage on a connection too", async () => {
    await raw(call("/t.S/Echo"), frame(Buffer.from("zz"), 1));
    for (const junk of ["GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\x00\xff".repeat(5000)]) {
      const sock = connect(socket);
      sock.on("error", () => undefined);
      sock.resume();
      sock.end(junk);
      await new Promise((r) => sock.once("close", r));
    }
    expect(await unary("Echo", Buffer.from("still here")).done).toEqual({ ok: Buffer.from("still here") });
  });
});

describe("stop", () => {
  it("lets a call in flight finish within the grace, then removes the socket", async () => {
    const { done } = unary("Hang", Buffer.from("late"));
    await until(() => seen.has("hang"));
    const stopped = server.stop(5000);
    await new Promise((r) => setTimeout(r, 50));
    releaseHang!();
    expect(await done).toEqual({ ok: Buffer.from("late") });
    expect(await stopped).toBe(true);
    expect(existsSync(socket)).toBe(false);
  });

  it("cuts a call off when the grace runs out, aborting its method's signal", async () => {
    const { done } = unary("Hang");
    await until(() => seen.has("hang"));
    expect(await server.stop(100)).toBe(false);
    expect(seen.get("hang")!.signal.aborted).toBe(true);
    expect((await done as { code: number }).code).toBe(GrpcCode.UNAVAILABLE);
    expect(existsSync(socket)).toBe(false);
  });
});
