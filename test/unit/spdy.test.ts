// The SPDY/3.1 engine: frame and header codecs against the draft's facts and Node's own
// streaming zlib, then whole sessions over real TCP with the test client playing client-go.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { connect as netConnect, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { constants as zlibConstants, createDeflate, createInflate } from "node:zlib";
import { pino } from "pino";
import { CanceledError } from "../../src/errors/errors.js";
import { SpdySession } from "../../src/streaming/spdy-session.js";
import type { SpdyStream } from "../../src/streaming/spdy-stream.js";
import { acceptSpdyUpgrade, SPDY_UPGRADE } from "../../src/streaming/spdy-upgrade.js";
import {
  GoAwayStatus,
  RstStatus,
  FrameParser,
  FrameType,
  SpdyProtocolError,
  decodeControlFrame,
  encodeDataFrame,
  encodeGoAway,
  encodeHeadersFrame,
  encodePing,
  encodeRstStream,
  encodeSettings,
  encodeSynReply,
  encodeSynStream,
  encodeWindowUpdate,
  type ControlFrame,
  type RawControlFrame,
} from "../../src/streaming/spdy-frames.js";
import {
  HeaderCompressor,
  HeaderDecompressor,
  SPDY_DICTIONARY,
  SPDY_DICTIONARY_ID,
  decodeHeaderBlock,
  encodeHeaderBlock,
} from "../../src/streaming/spdy-zlib.js";
import { connectSpdy, SpdyUpgradeError, type SpdyClientSession } from "../support/spdy-client.js";

const logger = pino({ level: "silent" });
const EXEC_PROTOCOLS = ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"];
const CLIENT_GO_OFFERS = ["v5.channel.k8s.io", ...EXEC_PROTOCOLS];

function adler32(data: Buffer): number {
  let a = 1;
  let b = 0;
  for (const byte of data) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** Runs bytes through a parser in the given chunking; returns what it delivered. */
function parse(bytes: Buffer, chunkSize = bytes.length) {
  const controls: RawControlFrame[] = [];
  const data: Array<{ streamId: number; flags: number; length: number; payload: Buffer[] }> = [];
  const parser = new FrameParser({
    control: (f) => controls.push({ ...f, payload: Buffer.from(f.payload) }),
    dataStart: (streamId, flags, length) => data.push({ streamId, flags, length, payload: [] }),
    dataChunk: (_id, chunk) => data.at(-1)!.payload.push(Buffer.from(chunk)),
  });
  for (let i = 0; i < bytes.length; i += chunkSize) parser.push(bytes.subarray(i, i + chunkSize));
  return { controls, data: data.map((d) => ({ ...d, payload: Buffer.concat(d.payload) })) };
}

describe("SPDY/3 dictionary", () => {
  it("is the draft's 1423 bytes, with the documented Adler-32 and SHA-256", () => {
    expect(SPDY_DICTIONARY.length).toBe(1423);
    expect(adler32(SPDY_DICTIONARY)).toBe(SPDY_DICTIONARY_ID);
    expect(SPDY_DICTIONARY_ID).toBe(0xe3c6a7c2);
    expect(sha256(SPDY_DICTIONARY)).toBe("51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02");
  });
});

describe("SPDY frames", () => {
  it("round-trips every control frame, whole and one byte at a time", () => {
    const sendZ = new HeaderCompressor();
    const bytes = Buffer.concat([
      encodeSynStream({ streamId: 1, associatedId: 0, priority: 3, fin: true, headers: { streamType: "error", Port: ["80", "81"] } }, sendZ),
      encodeSynReply(1, {}, false, sendZ),
      encodeRstStream(3, RstStatus.Cancel),
      encodeSettings([{ id: 7, value: 65536, flags: 1 }, { id: 4, value: 100 }]),
      encodePing(0xfffffffe),
      encodeGoAway(7, GoAwayStatus.ProtocolError),
      encodeHeadersFrame(5, { a: "b" }, true, sendZ),
      encodeWindowUpdate(0, 0x7fffffff),
    ]);
    for (const chunk of [bytes.length, 1, 7]) {
      const recvZ = new HeaderDecompressor(1 << 20);
      const frames = parse(bytes, chunk).controls.map((raw) => decodeControlFrame(raw, recvZ));
      expect(frames).toEqual<ControlFrame[]>([
        {
          kind: "syn_stream",
          streamId: 1,
          associatedId: 0,
          priority: 3,
          fin: true,
          unidirectional: false,
          headers: Object.assign(Object.create(null), { streamtype: "error", port: "80,81" }),
        },
        { kind: "syn_reply", streamId: 1, fin: false, headers: Object.create(null) },
        { kind: "rst_stream", streamId: 3, status: 5 },
        { kind: "settings", entries: [{ flags: 1, id: 7, value: 65536 }, { flags: 0, id: 4, value: 100 }] },
        { kind: "ping", id: 0xfffffffe },
        { kind: "goaway", lastGoodStreamId: 7, status: 1 },
        { kind: "headers", streamId: 5, fin: true, headers: Object.assign(Object.create(null), { a: "b" }) },
        { kind: "window_update", streamId: 0, delta: 0x7fffffff },
      ]);
    }
  });

  it("lays control frames out as the draft does", () => {
    expect(encodePing(1).toString("hex")).toBe("80030006000000040000" + "0001");
    expect(encodeRstStream(3, 5).toString("hex")).toBe("8003000300000008" + "00000003" + "00000005");
    expect(encodeGoAway(1, 0).toString("hex")).toBe("8003000700000008" + "00000001" + "00000000");
    expect(encodeDataFrame(5, Buffer.from("hi"), true).toString("hex")).toBe("00000005" + "01000002" + "6869");
  });

  it("delivers DATA payloads as they arrive, with FIN and empty frames", () => {
    const payload = randomBytes(100_000);
    const bytes = Buffer.concat([encodeDataFrame(1, payload, false), encodeDataFrame(3, Buffer.alloc(0), true), encodeDataFrame(1, Buffer.from("x"), true)]);
    for (const chunk of [bytes.length, 1000, 3]) {
      const { data } = parse(bytes, chunk);
      expect(data.map((d) => [d.streamId, d.flags, d.length])).toEqual([[1, 0, 100_000], [3, 1, 0], [1, 1, 1]]);
      expect(data[0]!.payload.equals(payload)).toBe(true);
      expect(data[2]!.payload.toString()).toBe("x");
    }
  });

  it("rejects other SPDY versions, oversized control frames and malformed payloads", () => {
    const v2ping = Buffer.from("80020006000000040000" + "0001", "hex");
    expect(() => parse(v2ping)).toThrow(SpdyProtocolError);
    const big = Buffer.from("8003000100100000", "hex"); // SYN_STREAM claiming 1 MiB
    expect(() => new FrameParser({ control() {}, dataStart() {}, dataChunk() {} }, 1024).push(big)).toThrow(/too large/);
    const z = new HeaderDecompressor(1024);
    expect(() => decodeControlFrame({ type: FrameType.Ping, flags: 0, payload: Buffer.alloc(5) }, z)).toThrow(SpdyProtocolError);
    expect(() => decodeControlFrame({ type: FrameType.GoAway, flags: 0, payload: Buffer.alloc(4) }, z)).toThrow(SpdyProtocolError);
    expect(() => decodeControlFrame({ type: FrameType.Settings, flags: 0, payload: Buffer.from("0000000200000000", "hex") }, z)).toThrow(SpdyProtocolError);
    expect(decodeControlFrame({ type: 10, flags: 0, payload: Buffer.alloc(3) }, z)).toEqual({ kind: "unknown", type: 10 });
  });
});

describe("SPDY header blocks", () => {
  it("encodes names lowercased and several values NUL-separated; decodes them comma-joined", () => {
    const block = encodeHeaderBlock({ StreamType: "data", port: ["8080", "9090"] });
    expect(block.toString("latin1")).toBe(
      "\0\0\0\x02" + "\0\0\0\x0astreamtype" + "\0\0\0\x04data" + "\0\0\0\x04port" + "\0\0\0\x098080\x009090",
    );
    expect({ ...decodeHeaderBlock(block) }).toEqual({ streamtype: "data", port: "8080,9090" });
    expect({ ...decodeHeaderBlock(Buffer.from("00000000", "hex")) }).toEqual({});
    expect(() => decodeHeaderBlock(Buffer.concat([block, Buffer.from([0])]))).toThrow(SpdyProtocolError);
    expect(() => decodeHeaderBlock(block.subarray(0, block.length - 1))).toThrow(SpdyProtocolError);
    const proto = decodeHeaderBlock(encodeHeaderBlock({ __proto__x: "1", constructor: "2" }));
    expect(proto["constructor"]).toBe("2");
  });

  it("compresses blocks as one zlib stream with the SPDY dictionary that Node's inflater reads", async () => {
    const z = new HeaderCompressor();
    const inflate = createInflate({ dictionary: SPDY_DICTIONARY });
    const out: Buffer[] = [];
    inflate.on("data", (c: Buffer) => out.push(c));
    const blocks = Array.from({ length: 40 }, (_, i) =>
      encodeHeaderBlock({ streamtype: i % 2 ? "data" : "error", port: String(8000 + i), requestid: String(i), filler: randomBytes(i * 100).toString("hex") }),
    );
    const sizes: number[] = [];
    for (const [i, block] of blocks.entries()) {
      const compressed = z.compress(block);
      sizes.push(compressed.length);
      if (i === 0) expect(compressed.subarray(0, 6).toString("hex")).toBe("78bbe3c6a7c2"); // FDICT + DICTID
      expect(compressed.subarray(-4).toString("hex")).toBe("0000ffff"); // ends on a sync flush
      inflate.write(compressed);
      await new Promise<void>((resolve) => inflate.flush(zlibConstants.Z_SYNC_FLUSH, () => resolve()));
      expect(Buffer.concat(out.splice(0)).equals(block)).toBe(true);
    }
    inflate.close();
    // The shared context pays off: a block repeated right away is all back-references.
    const again = z.compress(blocks[39]!);
    expect(again.length).toBeLessThan(blocks[39]!.length / 50);
    expect(sizes[1]!).toBeLessThan(blocks[1]!.length);
  });

  it("decompresses a Go-style stream (78 F9 header, sync flush per block) across the 32 KiB window", async () => {
    const deflate = createDeflate({ dictionary: SPDY_DICTIONARY, level: 9 });
    const out: Buffer[] = [];
    deflate.on("data", (c: Buffer) => out.push(c));
    const z = new HeaderDecompressor(1 << 20);
    const repeated = randomBytes(3000).toString("base64");
    for (let i = 0; i < 60; i++) {
      // Values repeat across blocks (back-references into earlier blocks), one block is larger
      // than the whole window, and the total passes 32 KiB several times.
      const filler = i === 30 ? randomBytes(40_000).toString("hex") : repeated;
      const block = encodeHeaderBlock({ streamtype: "stdout", "content-type": "text/plain", filler, n: String(i) });
      deflate.write(block);
      await new Promise<void>((resolve) => deflate.flush(zlibConstants.Z_SYNC_FLUSH, () => resolve()));
      const compressed = Buffer.concat(out.splice(0));
      if (i === 0) expect(compressed.subarray(0, 2).toString("hex")).toBe("78f9");
      expect(z.decompress(compressed).equals(block)).toBe(true);
    }
    deflate.close();
  });

  it("refuses a foreign dictionary, a non-zlib stream and a header bomb", () => {
    expect(() => new HeaderDecompressor(1024).decompress(Buffer.from("78bb01020304", "hex"))).toThrow(/dictionary/);
    expect(() => new HeaderDecompressor(1024).decompress(Buffer.from("ffff0000", "hex"))).toThrow(SpdyProtocolError);
    const bomb = new HeaderCompressor().compress(Buffer.alloc(100_000));
    expect(() => new HeaderDecompressor(10_000).decompress(bomb)).toThrow(SpdyProtocolError);
  });
});

// ---------------------------------------------------------------------------------------------

interface TestServer {
  url: string;
  sessions: SpdySession[];
  sockets: Duplex[];
  /** Resolves with the next stream any session receives. */
  nextStream(): Promise<SpdyStream>;
}

const servers: http.Server[] = [];
const clientSessions: SpdyClientSession[] = [];
const serverSockets: Socket[] = [];

afterEach(async () => {
  await Promise.all(clientSessions.splice(0).map((s) => s.destroy()));
  for (const s of serverSockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

afterAll(async () => {
  await sleep(20);
  const tcp = process.getActiveResourcesInfo().filter((r) => r.startsWith("TCP"));
  expect(tcp).toEqual([]);
});

async function startServer(
  opts: {
    supported?: string[];
    idleTimeoutMs?: number;
    /** Called for every stream; the default replies at once. */
    onStream?: (stream: SpdyStream, session: SpdySession) => void;
    noStreamListener?: boolean;
  } = {},
): Promise<TestServer> {
  const supported = opts.supported ?? EXEC_PROTOCOLS;
  const sessions: SpdySession[] = [];
  const sockets: Duplex[] = [];
  const queued: SpdyStream[] = [];
  const waiting: Array<(s: SpdyStream) => void> = [];
  const server = http.createServer((req) => {
    // Not an upgrade: the engine still owes the client a proper 400.
    acceptSpdyUpgrade(req, req.socket, supported);
  });
  server.on("connection", (s: Socket) => serverSockets.push(s));
  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (acceptSpdyUpgrade(req, socket, supported) === undefined) return;
    sockets.push(socket);
    const session = new SpdySession(socket, head, { logger, idleTimeoutMs: opts.idleTimeoutMs });
    sessions.push(session);
    if (opts.noStreamListener) return;
    session.on("stream", (stream: SpdyStream) => {
      if (opts.onStream) opts.onStream(stream, session);
      else stream.reply();
      const w = waiting.shift();
      if (w) w(stream);
      else queued.push(stream);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  servers.push(server);
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/exec/tok3n`,
    sessions,
    sockets,
    nextStream: () => {
      const s = queued.shift();
      return s ? Promise.resolve(s) : new Promise((resolve) => waiting.push(resolve));
    },
  };
}

async function connect(url: string, protocols = CLIENT_GO_OFFERS) {
  const res = await connectSpdy(url, { protocols });
  clientSessions.push(res.session);
  return res;
}

/**
 * Reads to the end without destroying: `for await` would destroy the Duplex when the loop ends,
 * taking its writing side down with it.
 */
function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    stream.on("data", (c: Buffer) => parts.push(c));
    stream.once("end", () => resolve(Buffer.concat(parts)));
    stream.once("close", () => reject(new Error("stream closed before its end")));
  });
}

/** Waits for 'close' without listening for 'error' (events.once would, and so change behaviour). */
function closeOf(emitter: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => emitter.once("close", () => resolve()));
}

function waitFor(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (cond()) resolve();
      else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, 5);
    };
    tick();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("SPDY upgrade", () => {
  it("picks the first offer of the client that the server supports, as httpstream.Handshake does", async () => {
    const srv = await startServer({ supported: ["v2.channel.k8s.io", "v4.channel.k8s.io", "v5.channel.k8s.io"] });
    const { protocol } = await connect(srv.url, CLIENT_GO_OFFERS);
    expect(protocol).toBe("v5.channel.k8s.io");
    const second = await connect(srv.url, ["v3.channel.k8s.io", "v4.channel.k8s.io", "v2.channel.k8s.io"]);
    expect(second.protocol).toBe("v4.channel.k8s.io");
  });

  it("reads comma-separated offers as well as repeated headers", async () => {
    const srv = await startServer();
    const { protocol } = await connect(srv.url, ["bogus, v3.channel.k8s.io,v2.channel.k8s.io", "v4.channel.k8s.io"]);
    expect(protocol).toBe("v3.channel.k8s.io");
  });

  it("answers 403 listing the supported protocols when nothing matches", async () => {
    const srv = await startServer({ supported: ["portforward.k8s.io"] });
    const err = await connectSpdy(srv.url, { protocols: CLIENT_GO_OFFERS }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpdyUpgradeError);
    const e = err as SpdyUpgradeError;
    expect(e.status).toBe(403);
    expect(e.headers["x-accepted-stream-protocol-versions"]).toEqual(["portforward.k8s.io"]);
    expect(e.body).toContain("unable to negotiate protocol");
    expect(e.body).toContain("portforward.k8s.io");
  });

  it("answers 400 without X-Stream-Protocol-Version, for another Upgrade, and for a plain request", async () => {
    const srv = await startServer();
    const noProtocol = (await connectSpdy(srv.url, { protocols: [] }).catch((e: unknown) => e)) as SpdyUpgradeError;
    expect(noProtocol.status).toBe(400);
    expect(noProtocol.body).toContain("X-Stream-Protocol-Version is required");
    const websocket = (await connectSpdy(srv.url, { protocols: EXEC_PROTOCOLS, headers: { Upgrade: "websocket" } }).catch((e: unknown) => e)) as SpdyUpgradeError;
    expect(websocket.status).toBe(400);
    const plain = (await connectSpdy(srv.url, {
      protocols: EXEC_PROTOCOLS,
      headers: { Upgrade: null, Connection: "close" },
    }).catch((e: unknown) => e)) as SpdyUpgradeError;
    expect(plain).toBeInstanceOf(SpdyUpgradeError);
    expect(plain.status).toBe(400);
    expect(plain.body).toContain("missing upgrade headers");
    expect(SPDY_UPGRADE).toBe("SPDY/3.1");
  });
});

describe("SPDY session", () => {
  it("runs several streams at once, each way, with the SYN_STREAM headers intact", async () => {
    const srv = await startServer({
      onStream: (stream) => {
        stream.reply();
        // Echo with a prefix, then FIN once the client has finished.
        const parts: Buffer[] = [];
        stream.on("data", (c: Buffer) => parts.push(c));
        stream.on("end", () => stream.end(Buffer.concat([Buffer.from(`${stream.headers["streamtype"]}:`), ...parts])));
      },
    });
    const { session } = await connect(srv.url);
    const names = ["error", "stdin", "stdout", "stderr", "resize", "data"];
    const streams = await Promise.all(names.map((n, i) => session.openStream({ streamType: n, port: "8080", requestID: String(i) })));
    expect(streams.map((s) => s.id)).toEqual([1, 3, 5, 7, 9, 11]);
    const serverStreams = await Promise.all(names.map(() => srv.nextStream()));
    expect(serverStreams.map((s) => ({ ...s.headers }))).toEqual(names.map((n, i) => ({ streamtype: n, port: "8080", requestid: String(i) })));
    const results = streams.map((s) => readAll(s));
    streams.forEach((s, i) => {
      s.write(`hello ${names[i]} `);
      s.end(randomBytes(10).toString("hex"));
    });
    const got = (await Promise.all(results)).map((b) => b.toString());
    got.forEach((text, i) => expect(text).toMatch(new RegExp(`^${names[i]}:hello ${names[i]} [0-9a-f]{20}$`)));
    await Promise.all(serverStreams.map((s) => (s.closed ? undefined : closeOf(s))));
  });

  it("moves 1 MiB each way through one stream without any WINDOW_UPDATE", async () => {
    const up = randomBytes(1024 * 1024);
    const down = randomBytes(1024 * 1024);
    let serverGot: Promise<Buffer> | undefined;
    const srv = await startServer({
      onStream: (stream) => {
        stream.reply();
        serverGot = readAll(stream);
        stream.end(down);
      },
    });
    const { session } = await connect(srv.url);
    const stream = await session.openStream({ streamtype: "data" });
    const clientGot = readAll(stream);
    stream.end(up);
    expect(sha256(await clientGot)).toBe(sha256(down));
    expect(sha256(await serverGot!)).toBe(sha256(up));
    expect(session.received.some((f) => f.kind === "window_update" || f.kind === "settings")).toBe(false);
  });

  it("half-closes: the client's FIN ends only the server's reading side", async () => {
    const srv = await startServer();
    const { session } = await connect(srv.url);
    const stream = await session.openStream({ streamtype: "stdin" });
    const server = await srv.nextStream();
    const serverRead = readAll(server);
    stream.end("input");
    expect((await serverRead).toString()).toBe("input");
    expect(server.writable).toBe(true);
    server.write("still ");
    server.end("talking");
    expect((await readAll(stream)).toString()).toBe("still talking");
    if (!server.closed) await closeOf(server);
    expect(server.errored).toBeNull();
    await session.ping();
    expect(session.received.filter((f) => f.kind === "rst_stream")).toEqual([]);
  });

  it("honours FIN on SYN_STREAM, and replies on its own when the server writes first", async () => {
    const srv = await startServer({ onStream: (s) => s.end("pong") });
    const { session } = await connect(srv.url);
    const stream = await session.openStream({ streamtype: "error" }, { fin: true });
    const server = await srv.nextStream();
    expect((await readAll(server)).length).toBe(0);
    expect((await readAll(stream)).toString()).toBe("pong");
  });

  it("sends reply headers and a FIN with the reply", async () => {
    const srv = await startServer({ onStream: (s) => s.reply({ "X-Answer": "42" }, true) });
    const { session } = await connect(srv.url);
    const stream = await session.openStream({ streamtype: "error" });
    expect(stream.replyHeaders["x-answer"]).toBe("42");
    expect((await readAll(stream)).length).toBe(0);
  });

  it("handles RST_STREAM from the client: CANCEL closes quietly, other statuses error only with a listener", async () => {
    const srv = await startServer();
    const { session } = await connect(srv.url);

    const quiet = await session.openStream({ streamtype: "stdout" });
    const quietServer = await srv.nextStream();
    quiet.reset(RstStatus.ProtocolError); // no 'error' listener on the server stream: must not throw
    await closeOf(quietServer);

    const cancelled = await session.openStream({ streamtype: "stdout" });
    const cancelledServer = await srv.nextStream();
    const errors: Error[] = [];
    cancelledServer.on("error", (e) => errors.push(e));
    cancelled.reset();
    await closeOf(cancelledServer);
    expect(errors).toEqual([]);

    const failed = await session.openStream({ streamtype: "stdout" });
    const failedServer = await srv.nextStream();
    failedServer.on("error", (e) => errors.push(e));
    failed.reset(RstStatus.InternalError);
    await closeOf(failedServer);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(CanceledError);

    // Writing to a reset stream is harmless, and the session is still fine.
    failedServer.write("late", () => {});
    await session.ping();
  });

  it("resets a stream from the server and ignores DATA still in flight for it", async () => {
    const srv = await startServer();
    const { session } = await connect(srv.url);
    const stream = await session.openStream({ streamtype: "data", port: "80" });
    const server = await srv.nextStream();
    server.reset(RstStatus.Cancel);
    await once(stream, "reset");
    expect(stream.resetStatus).toBe(RstStatus.Cancel);
    session.writeData(stream.id, Buffer.from("in flight"), true);
    await session.ping();
    expect(session.strayResets).toEqual([]);
  });

  it("answers DATA for a stream that never existed with RST_STREAM INVALID_STREAM", async () => {
    const srv = await startServer();
    const { session } = await connect(srv.url);
    session.writeData(99, Buffer.from("who?"), false);
    session.writeData(42, Buffer.alloc(0), true);
    await session.ping();
    expect(session.strayResets).toEqual([
      { streamId: 99, status: RstStatus.InvalidStream },
      { streamId: 42, status: RstStatus.InvalidStream },
    ]);
  });

  it("parses frames that came with the upgrade request, answering only after the 101", async () => {
    const srv = await startServer();
    const res = await connectSpdy(srv.url, { protocols: EXEC_PROTOCOLS, afterRequest: encodePing(7) });
    clientSessions.push(res.session);
    await waitFor(() => res.session.received.length > 0, "the PING echo");
    expect(res.session.received).toEqual([{ kind: "ping", id: 7 }]);
  });

  it("echoes PINGs with their ids, ignores SETTINGS, WINDOW_UPDATE and HEADERS, and never speaks first", async () => {
    const srv = await startServer();
    const { session } = await connect(srv.url);
    await sleep(50);
    expect(session.received).toEqual([]);
    session.writeRaw(encodeSettings([{ id: 7, value: 1 }]));
    session.writeRaw(encodeWindowUpdate(0, 1000));
    await Promise.all([session.ping(), session.ping(), session.ping()]);
    const stream = await session.openStream({ streamtype: "stdout" });
    await srv.nextStream();
    expect(stream.id).toBe(1);
    const pings = session.received.filter((f) => f.kind === "ping").map((f) => (f as { id: number }).id);
    expect(pings).toEqual([1, 3, 5]);
    // An even id would answer a ping of the server's; it sends none, so it is not echoed.
    session.writeRaw(encodePing(2));
    await session.ping();
    expect(session.received.filter((f) => f.kind === "ping")).toHaveLength(4);
  });

  it("finishes open streams after the client's GOAWAY, refuses new ones, then closes", async () => {
    const srv = await startServer();
    const { session } = await connect(srv.url);
    const stream = await session.openStream({ streamtype: "stdout" });
    const server = await srv.nextStream();
    const serverSession = srv.sessions[0]!;
    const closed = once(serverSession, "close");
    session.sendGoAway();
    await session.ping();
    expect(serverSession.closed).toBe(false);
    await expect(session.openStream({ streamtype: "stderr" })).rejects.toMatchObject({ status: RstStatus.RefusedStream });
    server.end("after goaway");
    expect((await readAll(stream)).toString()).toBe("after goaway");
    stream.end();
    await closed;
    await session.closed;
    expect(session.goAway).toEqual({ lastGoodStreamId: 3, status: GoAwayStatus.Ok });
  });

  it("survives the client going away mid-stream: streams and session close, no error thrown", async () => {
    const srv = await startServer();
    const { session } = await connect(srv.url);
    await session.openStream({ streamtype: "stdin" });
    const server = await srv.nextStream();
    const closed = once(srv.sessions[0]!, "close");
    session.sendGoAway();
    server.write(randomBytes(200_000));
    await session.destroy();
    await closed;
    if (!server.destroyed) await closeOf(server);
    expect(srv.sessions[0]!.closed).toBe(true);
  });

  it("closes on garbage without throwing", async () => {
    const srv = await startServer();
    const { session } = await connect(srv.url);
    const closed = once(srv.sessions[0]!, "close");
    session.writeRaw(Buffer.alloc(64, 0xff));
    await closed;
    await session.closed;
    expect(session.goAway?.status).toBe(GoAwayStatus.ProtocolError);

    // Random bytes, some of which parse as frames: nothing may escape the session.
    for (let i = 0; i < 20; i++) {
      const { session: s } = await connect(srv.url);
      const stream = i % 2 ? await s.openStream({ streamtype: "x" }) : undefined;
      s.writeRaw(randomBytes(2000));
      stream?.write("x");
      await sleep(5);
      await s.destroy();
    }
    await waitFor(() => srv.sessions.every((x) => x.closed), "all sessions to close");
  });

  it("refuses streams nobody listens for", async () => {
    const srv = await startServer({ noStreamListener: true });
    const { session } = await connect(srv.url);
    await expect(session.openStream({ streamtype: "error" })).rejects.toMatchObject({ status: RstStatus.RefusedStream });
  });

  it("refuses stream ids that are even or go backwards, and stays usable", async () => {
    const srv = await startServer();
    const { session } = await connect(srv.url);
    await session.openStream({ streamtype: "a" }); // id 1
    await session.openStream({ streamtype: "b" }); // id 3
    await expect(session.openStream({ streamtype: "c" }, { streamId: 6 })).rejects.toMatchObject({ status: RstStatus.ProtocolError });
    await expect(session.openStream({ streamtype: "d" }, { streamId: 1 })).rejects.toMatchObject({ status: RstStatus.ProtocolError });
    const next = await session.openStream({ streamtype: "e" });
    expect(next.id).toBe(5);
    expect((await srv.nextStream()).headers["streamtype"]).toBe("a");
    expect((await srv.nextStream()).headers["streamtype"]).toBe("b");
    expect((await srv.nextStream()).headers["streamtype"]).toBe("e");
  });

  it("pauses the socket while a stream's reader lags, and loses nothing", async () => {
    const srv = await startServer();
    const { session } = await connect(srv.url);
    const stream = await session.openStream({ streamtype: "stdin" });
    const server = await srv.nextStream();
    const payload = randomBytes(8 * 1024 * 1024);
    stream.end(payload);
    await sleep(300);
    // Nobody reads the server stream: what it holds stays near its buffer size.
    expect(server.readableLength).toBeLessThan(512 * 1024);
    expect(sha256(await readAll(server))).toBe(sha256(payload));
  });

  it("does not buffer without bound for a client that stops reading", async () => {
    const srv = await startServer();
    const { session } = await connect(srv.url);
    const stream = await session.openStream({ streamtype: "stdout" });
    const server = await srv.nextStream();
    const socket = srv.sockets[0]!;
    session.pauseReading();
    const chunk = randomBytes(256 * 1024);
    const total = 64;
    let written = 0;
    const writer = (async () => {
      for (; written < total; written++) {
        if (!server.write(chunk)) await once(server, "drain");
      }
      server.end();
    })();
    await sleep(500);
    // The kernel's socket buffers take some, then writing stalls with little queued in Node.
    expect(written).toBeLessThan(total);
    expect(socket.writableLength).toBeLessThan(256 * 1024);
    expect(server.writableLength).toBeLessThanOrEqual(chunk.length + 64 * 1024);
    session.resumeReading();
    const got = await readAll(stream);
    await writer;
    expect(got.length).toBe(total * chunk.length);
  });

  it("close() lets ended streams flush, then sends GOAWAY and ends the connection", async () => {
    const payload = randomBytes(300_000);
    const srv = await startServer({
      onStream: (stream, session) => {
        stream.reply();
        stream.end(payload);
        session.close();
        session.close();
      },
    });
    const { session } = await connect(srv.url);
    const stream = await session.openStream({ streamtype: "stdout" });
    const serverSession = srv.sessions[0]!;
    const closed = once(serverSession, "close");
    expect(sha256(await readAll(stream))).toBe(sha256(payload));
    await session.closed;
    await closed;
    expect(serverSession.closed).toBe(true);
    expect(session.goAway).toEqual({ lastGoodStreamId: 1, status: GoAwayStatus.Ok });
  });

  it("closes after the idle timeout, and any frame counts as activity", async () => {
    const srv = await startServer({ idleTimeoutMs: 200 });
    const { session } = await connect(srv.url);
    for (let i = 0; i < 6; i++) {
      await sleep(60);
      await session.ping();
    }
    expect(srv.sessions[0]!.closed).toBe(false);
    await session.closed;
    expect(session.goAway?.status).toBe(GoAwayStatus.Ok);
    expect(srv.sessions[0]!.closed).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// The real peer: kubectl (client-go over moby/spdystream) against a fake API server whose exec
// and port-forward endpoints run on this engine. Skipped where kubectl is not installed.

const kubectl = ["/usr/bin/kubectl", "/usr/local/bin/kubectl"].find((p) => existsSync(p));

describe.skipIf(kubectl === undefined)("SPDY with kubectl as the client", () => {
  let cacheDir = "";
  beforeAll(() => {
    cacheDir = mkdtempSync(join(tmpdir(), "podshim-kubectl-"));
  });
  afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));
  const children: ChildProcess[] = [];
  afterEach(async () => {
    await Promise.all(
      children.splice(0).map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : (c.kill("SIGKILL"), once(c, "close")))),
    );
  });

  const podJson = {
    kind: "Pod",
    apiVersion: "v1",
    metadata: { name: "p1", namespace: "default", uid: "u1" },
    spec: { containers: [{ name: "c1", image: "x" }] },
    status: { phase: "Running", containerStatuses: [{ name: "c1", ready: true, restartCount: 0, image: "x", imageID: "", state: { running: {} } }] },
  };
  const discovery: Record<string, unknown> = {
    "/api": { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: "127.0.0.1" }] },
    "/apis": { kind: "APIGroupList", apiVersion: "v1", groups: [] },
    "/api/v1": {
      kind: "APIResourceList",
      groupVersion: "v1",
      resources: [
        { name: "pods", singularName: "pod", namespaced: true, kind: "Pod", verbs: ["get", "list"] },
        { name: "pods/exec", singularName: "", namespaced: true, kind: "PodExecOptions", verbs: ["create", "get"] },
        { name: "pods/portforward", singularName: "", namespaced: true, kind: "PodPortForwardOptions", verbs: ["create", "get"] },
      ],
    },
    "/api/v1/namespaces/default/pods/p1": podJson,
  };

  /** exec: reports what stdin brought, optionally `big N` bytes of output, exits with `exit=N`. */
  function serveExec(session: SpdySession, q: URLSearchParams, protocol: string): void {
    const want = new Set(["error"]);
    if (q.get("stdin") === "true") want.add("stdin");
    if (q.get("stdout") === "true") want.add("stdout");
    if (q.get("stderr") === "true") want.add("stderr");
    const streams = new Map<string, SpdyStream>();
    session.on("stream", (s: SpdyStream) => {
      s.reply();
      streams.set(s.headers["streamtype"] ?? "", s);
      if (streams.size === want.size) run();
    });
    function run(): void {
      const cmd = q.getAll("command");
      const hash = createHash("sha256");
      let n = 0;
      const finish = () => {
        const stdout = streams.get("stdout")!;
        stdout.write(`protocol=${protocol} stdin=${n} sha=${hash.digest("hex")}\n`);
        if (cmd[0] === "big") stdout.write(Buffer.alloc(Number(cmd[1]), 0x61));
        stdout.end();
        streams.get("stderr")?.end("some stderr\n");
        const code = Number(/^exit=(\d+)$/.exec(cmd.at(-1) ?? "")?.[1] ?? 0);
        const status =
          code === 0
            ? { metadata: {}, status: "Success" }
            : {
                metadata: {},
                status: "Failure",
                message: `command terminated with non-zero exit code: exit status ${code}`,
                reason: "NonZeroExitCode",
                details: { causes: [{ reason: "ExitCode", message: String(code) }] },
              };
        streams.get("error")!.end(JSON.stringify(status));
        session.close();
      };
      streams.get("error")!.resume();
      const stdin = streams.get("stdin");
      if (!stdin) return finish();
      stdin.on("data", (d: Buffer) => {
        hash.update(d);
        n += d.length;
      });
      stdin.on("end", finish);
    }
  }

  /** port-forward: each data stream echoes upper-cased; FINs data and error once the client FINs. */
  function servePortForward(session: SpdySession): void {
    const errors = new Map<string, SpdyStream>();
    session.on("stream", (s: SpdyStream) => {
      s.reply();
      const id = s.headers["requestid"] ?? "";
      if (s.headers["streamtype"] === "error") {
        s.resume();
        errors.set(id, s);
        return;
      }
      s.on("data", (d: Buffer) => s.write(Buffer.from(d.toString("latin1").toUpperCase(), "latin1")));
      s.on("end", () => {
        s.end();
        errors.get(id)?.end();
      });
    });
  }

  async function startApiServer(): Promise<string> {
    const server = http.createServer((req, res) => {
      const body = discovery[new URL(req.url ?? "/", "http://x").pathname];
      if (body === undefined) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
    });
    server.on("connection", (s: Socket) => serverSockets.push(s));
    server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      const url = new URL(req.url ?? "/", "http://x");
      const portForward = url.pathname.endsWith("/portforward");
      const protocol = acceptSpdyUpgrade(req, socket, portForward ? ["portforward.k8s.io"] : EXEC_PROTOCOLS);
      if (protocol === undefined) return;
      const session = new SpdySession(socket, head, { logger });
      if (portForward) servePortForward(session);
      else serveExec(session, url.searchParams, protocol);
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    servers.push(server);
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  function runKubectl(api: string, args: string[], stdin?: Buffer) {
    const child = spawn(kubectl!, ["--kubeconfig=/dev/null", `--server=${api}`, `--cache-dir=${cacheDir}`, "-n", "default", ...args], {
      // SPDY only: newer kubectl would try WebSocket first (and fall back to SPDY anyway).
      env: { ...process.env, KUBECTL_REMOTE_COMMAND_WEBSOCKETS: "false", KUBECTL_PORT_FORWARD_WEBSOCKETS: "false", HOME: cacheDir },
      stdio: ["pipe", "pipe", "pipe"],
    });
    children.push(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on("data", (d: Buffer) => out.push(d));
    child.stderr!.on("data", (d: Buffer) => err.push(d));
    child.stdin!.on("error", () => {});
    child.stdin!.end(stdin ?? Buffer.alloc(0));
    const done = new Promise<{ code: number | null; stdout: Buffer; stderr: string }>((resolve) =>
      child.on("close", (code) => resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() })),
    );
    return { child, done, stderrText: () => Buffer.concat(err).toString(), stdoutText: () => Buffer.concat(out).toString() };
  }

  it("execs with 3 MB of stdin, output on both streams, and exit codes", { timeout: 30_000 }, async () => {
    const api = await startApiServer();
    const input = randomBytes(3_000_000);
    const ok = await runKubectl(api, ["exec", "-i", "p1", "-c", "c1", "--", "cat"], input).done;
    expect(ok.stderr).toContain("some stderr");
    expect(ok.stdout.toString()).toBe(`protocol=v4.channel.k8s.io stdin=${input.length} sha=${sha256(input)}\n`);
    expect(ok.code).toBe(0);

    const failed = await runKubectl(api, ["exec", "p1", "-c", "c1", "--", "false", "exit=7"]).done;
    expect(failed.stderr).toContain("command terminated with exit code 7");
    expect(failed.code).toBe(7);

    const big = await runKubectl(api, ["exec", "p1", "-c", "c1", "--", "big", "5000000"]).done;
    expect(big.code).toBe(0);
    expect(big.stdout.length).toBe(5_000_000 + big.stdout.indexOf("\n") + 1);
  });

  it("port-forwards several connections at once through one SPDY session", { timeout: 30_000 }, async () => {
    const api = await startApiServer();
    const pf = runKubectl(api, ["port-forward", "--address=127.0.0.1", "pod/p1", ":80"]);
    await waitFor(() => /Forwarding from 127\.0\.0\.1:\d+/.test(pf.stdoutText()), "kubectl port-forward to listen", 15_000);
    const localPort = Number(/Forwarding from 127\.0\.0\.1:(\d+)/.exec(pf.stdoutText())![1]);
    const roundTrip = (n: number) =>
      new Promise<boolean>((resolve, reject) => {
        const data = Buffer.from(randomBytes(n).toString("hex").slice(0, n), "latin1");
        const socket = netConnect(localPort, "127.0.0.1");
        const parts: Buffer[] = [];
        socket.on("data", (d: Buffer) => parts.push(d));
        socket.on("end", () => {
          socket.end();
          resolve(Buffer.concat(parts).toString("latin1") === data.toString("latin1").toUpperCase());
        });
        socket.on("error", reject);
        socket.end(data);
      });
    expect(await Promise.all([roundTrip(10), roundTrip(100_000), roundTrip(2_000_000), roundTrip(700_000)])).toEqual([true, true, true, true]);
    expect(await roundTrip(1_234_567)).toBe(true);
    expect(pf.stderrText()).not.toMatch(/error|unable/i);
  });
});
