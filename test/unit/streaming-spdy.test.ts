import type { Socket } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { closedPort, echoServer } from "../support/fake-streaming-backend.js";
import { connectSpdy, SpdyClientSession, SpdyUpgradeError, type SpdyClientStream } from "../support/spdy-client.js";
import { eventually, startServer, type Harness } from "../support/streaming-harness.js";
import { connectWsTunnel } from "../support/ws-tunnel-client.js";

const CLIENT_GO_OFFER = ["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"];
const V4_AND_OLDER = CLIENT_GO_OFFER.slice(1);

let h: Harness;
let sessions: SpdyClientSession[];
beforeEach(async () => {
  h = await startServer();
  sessions = [];
});
afterEach(async () => {
  await Promise.all(sessions.map((s) => s.destroy()));
  await h.stop();
});

async function connect(url: string, protocols: string[]): Promise<{ protocol: string; session: SpdyClientSession }> {
  const res = await connectSpdy(url, { protocols });
  sessions.push(res.session);
  return res;
}

/** Collects a stream's bytes as they come. */
function collect(stream: SpdyClientStream): { text(): string; done: Promise<Buffer> } {
  const parts: Buffer[] = [];
  stream.on("data", (c: Buffer) => parts.push(c));
  const done = new Promise<Buffer>((resolve) => {
    stream.once("end", () => resolve(Buffer.concat(parts)));
    stream.once("close", () => resolve(Buffer.concat(parts)));
  });
  return { text: () => Buffer.concat(parts).toString(), done };
}

function exitStatus(cmd: string[], code: number) {
  return {
    metadata: {},
    status: "Failure",
    message: `command terminated with non-zero exit code: error executing command [${cmd.join(" ")}], exit code ${code}`,
    reason: "NonZeroExitCode",
    details: { causes: [{ reason: "ExitCode", message: String(code) }] },
  };
}

describe("SPDY exec", () => {
  it("v4 with a TTY: streams error/stdin/stdout/resize, echo, resize reaches the process, exit 7 on the error stream", async () => {
    const url = h.server.execUrl({ containerId: "c1", cmd: ["echo"], tty: true, stdin: true, stdout: true, stderr: false });
    const { protocol, session } = await connect(url, V4_AND_OLDER);
    expect(protocol).toBe("v4.channel.k8s.io");
    // client-go's order, each after the previous reply.
    const error = await session.openStream({ streamtype: "error" });
    error.end();
    const stdin = await session.openStream({ streamtype: "stdin" });
    const stdout = await session.openStream({ streamtype: "stdout" });
    const out = collect(stdout);
    const errOut = collect(error);
    const resize = await session.openStream({ streamtype: "resize" });
    resize.write('{"Width":120,"Height":40}\n');
    stdin.write("hello");
    await eventually(() => out.text() === "hello");
    const proc = await h.backend.nextProcess(0);
    await eventually(() => proc.resizes.length === 1);
    expect(proc.resizes[0]).toEqual({ width: 120, height: 40 });
    proc.exit(7);
    expect((await out.done).toString()).toBe("hello");
    expect(JSON.parse((await errOut.done).toString())).toEqual(exitStatus(["echo"], 7));
    await eventually(() => session.goAway !== undefined);
  });

  it("v4 without a TTY: stdin FIN closes the process's stdin, stdout and stderr apart, exit 7 reported", async () => {
    const url = h.server.execUrl({ containerId: "c1", cmd: ["echo", "7"], tty: false, stdin: true, stdout: true, stderr: true });
    const { session } = await connect(url, V4_AND_OLDER);
    const error = await session.openStream({ streamtype: "error" });
    error.end();
    const errOut = collect(error);
    const stdin = await session.openStream({ streamtype: "stdin" });
    const stdout = await session.openStream({ streamtype: "stdout" });
    const out = collect(stdout);
    const stderr = await session.openStream({ streamtype: "stderr" });
    const errText = collect(stderr);
    const payload = Buffer.alloc(300 * 1024, "z");
    stdin.end(payload);
    expect((await out.done).equals(payload)).toBe(true);
    expect((await errText.done).length).toBe(0);
    expect(JSON.parse((await errOut.done).toString())).toEqual(exitStatus(["echo", "7"], 7));
    const proc = await h.backend.nextProcess(0);
    expect(proc.stdinEnded).toBe(true);
  });

  it("accepts v5 (client-go's first offer) with v4's semantics; success is a Success status", async () => {
    const url = h.server.execUrl({ containerId: "c1", cmd: ["print", "hi", "there", "0"], tty: false, stdin: false, stdout: true, stderr: true });
    const { protocol, session } = await connect(url, CLIENT_GO_OFFER);
    expect(protocol).toBe("v5.channel.k8s.io");
    const error = await session.openStream({ streamtype: "error" });
    const errOut = collect(error);
    const out = collect(await session.openStream({ streamtype: "stdout" }));
    const err = collect(await session.openStream({ streamtype: "stderr" }));
    expect((await out.done).toString()).toBe("hi");
    expect((await err.done).toString()).toBe("there");
    expect(JSON.parse((await errOut.done).toString())).toEqual({ metadata: {}, status: "Success" });
  });

  it("v3: plain-text error on failure, an empty error stream on success", async () => {
    const fail = await connect(h.server.execUrl({ containerId: "c1", cmd: ["print", "", "", "3"], tty: false, stdin: false, stdout: true, stderr: false }), ["v3.channel.k8s.io"]);
    const failErr = collect(await fail.session.openStream({ streamtype: "error" }));
    collect(await fail.session.openStream({ streamtype: "stdout" }));
    expect((await failErr.done).toString()).toBe(exitStatus(["print", "", "", "3"], 3).message);

    const ok = await connect(h.server.execUrl({ containerId: "c1", cmd: ["print", "x", "", "0"], tty: false, stdin: false, stdout: true, stderr: false }), ["v3.channel.k8s.io"]);
    const okErr = collect(await ok.session.openStream({ streamtype: "error" }));
    const okOut = collect(await ok.session.openStream({ streamtype: "stdout" }));
    expect((await okOut.done).toString()).toBe("x");
    expect((await okErr.done).length).toBe(0);
  });

  it("a backend failure is an InternalError status", async () => {
    const { session } = await connect(h.server.execUrl({ containerId: "c1", cmd: ["fail"], tty: false, stdin: false, stdout: true, stderr: false }), V4_AND_OLDER);
    const errOut = collect(await session.openStream({ streamtype: "error" }));
    collect(await session.openStream({ streamtype: "stdout" }));
    expect(JSON.parse((await errOut.done).toString())).toMatchObject({ status: "Failure", reason: "InternalError", code: 500, message: "Internal error occurred: container c1 is not running" });
  });

  it("answers unknown stream types and refuses duplicates without breaking the session", async () => {
    const { session } = await connect(h.server.execUrl({ containerId: "c1", cmd: ["print", "ok", "", "0"], tty: false, stdin: false, stdout: true, stderr: false }), V4_AND_OLDER);
    const errOut = collect(await session.openStream({ streamtype: "error" }));
    const odd = await session.openStream({ streamtype: "surprise" });
    odd.write("ignored");
    await expect(session.openStream({ streamtype: "error" })).rejects.toThrow(/refused/);
    const out = collect(await session.openStream({ streamtype: "stdout" }));
    expect((await out.done).toString()).toBe("ok");
    expect(JSON.parse((await errOut.done).toString()).status).toBe("Success");
  });

  it("closes a session whose streams do not all arrive in time, and lets the process go", async () => {
    await h.stop();
    h = await startServer({ streamCreationTimeoutMs: 150 });
    const { session } = await connect(h.server.execUrl({ containerId: "c1", cmd: ["wait"], tty: false, stdin: true, stdout: true, stderr: false }), V4_AND_OLDER);
    await session.openStream({ streamtype: "error" });
    await session.closed;
    expect(h.backend.processes).toHaveLength(0);
  });

  it("a client that drops mid-session detaches the process", async () => {
    const { session } = await connect(h.server.execUrl({ containerId: "c1", cmd: ["wait"], tty: false, stdin: true, stdout: true, stderr: false }), V4_AND_OLDER);
    await session.openStream({ streamtype: "error" });
    await session.openStream({ streamtype: "stdin" });
    await session.openStream({ streamtype: "stdout" });
    const proc = await h.backend.nextProcess(0);
    await session.destroy();
    await eventually(() => proc.detached);
  });

  it("refuses protocols it does not speak with 403, and spent tokens with 404", async () => {
    const url = h.server.execUrl({ containerId: "c1", cmd: ["x"], tty: false, stdin: false, stdout: true, stderr: false });
    const refused = await connect(url, ["v9.channel.k8s.io"]).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(SpdyUpgradeError);
    expect((refused as SpdyUpgradeError).status).toBe(403);
    expect((refused as SpdyUpgradeError).headers["x-accepted-stream-protocol-versions"]).toContain("v4.channel.k8s.io");
    const again = await connect(url, V4_AND_OLDER).catch((e: unknown) => e);
    expect((again as SpdyUpgradeError).status).toBe(404);
  });

  it("survives a client that sends garbage after the upgrade", async () => {
    const { session } = await connect(h.server.execUrl({ containerId: "c1", cmd: ["wait"], tty: false, stdin: false, stdout: true, stderr: false }), V4_AND_OLDER);
    // A SYN_STREAM whose header block is not zlib at all.
    const garbage = Buffer.from("not zlib", "latin1");
    const frame = Buffer.alloc(18 + garbage.length);
    frame.writeUInt16BE(0x8003, 0);
    frame.writeUInt16BE(1, 2);
    frame.writeUInt32BE(10 + garbage.length, 4);
    frame.writeUInt32BE(1, 8);
    garbage.copy(frame, 18);
    session.writeRaw(frame);
    await session.closed;
    const next = await connect(h.server.execUrl({ containerId: "c1", cmd: ["print", "fine", "", "0"], tty: false, stdin: false, stdout: true, stderr: false }), V4_AND_OLDER);
    collect(await next.session.openStream({ streamtype: "error" }));
    const out = collect(await next.session.openStream({ streamtype: "stdout" }));
    expect((await out.done).toString()).toBe("fine");
  });
});

/** One forwarded connection the way client-go makes it: error stream (FIN'd), then data. */
async function forwardOnce(session: SpdyClientSession, port: number, requestId: number, payload: Buffer): Promise<{ echoed: Buffer; error: string }> {
  const error = await session.openStream({ streamtype: "error", port: String(port), requestid: String(requestId) });
  error.end();
  const errText = collect(error);
  const data = await session.openStream({ streamtype: "data", port: String(port), requestid: String(requestId) });
  const echoed = collect(data);
  data.end(payload);
  const out = await echoed.done;
  data.reset();
  return { echoed: out, error: (await errText.done).toString() };
}

describe("SPDY port-forward", () => {
  it("forwards two connections at once over one session, to two ports", async () => {
    const a = await echoServer();
    const b = await echoServer();
    try {
      const { protocol, session } = await connect(h.server.portForwardUrl({ podSandboxId: "p1", ports: [] }), ["portforward.k8s.io"]);
      expect(protocol).toBe("portforward.k8s.io");
      const big = Buffer.alloc(256 * 1024, "b");
      const [one, two] = await Promise.all([forwardOnce(session, a.port, 0, Buffer.from("first connection")), forwardOnce(session, b.port, 1, big)]);
      expect(one).toEqual({ echoed: Buffer.from("first connection"), error: "" });
      expect(two.error).toBe("");
      expect(two.echoed.equals(big)).toBe(true);
      // The session stays usable for more connections.
      expect((await forwardOnce(session, a.port, 2, Buffer.from("third"))).echoed.toString()).toBe("third");
      await session.close();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("writes the failure on the error stream when the pod port refuses", async () => {
    const port = await closedPort();
    const { session } = await connect(h.server.portForwardUrl({ podSandboxId: "p1", ports: [] }), ["portforward.k8s.io"]);
    const res = await forwardOnce(session, port, 0, Buffer.from("x"));
    expect(res.echoed.length).toBe(0);
    expect(res.error).toMatch(new RegExp(`^error forwarding port ${port} to pod p1, uid : .*ECONNREFUSED`));
  });

  it("resets streams with a bad port or type; pairs without a requestid are matched by id", async () => {
    const echo = await echoServer();
    try {
      const { session } = await connect(h.server.portForwardUrl({ podSandboxId: "p1", ports: [] }), ["portforward.k8s.io"]);
      await expect(session.openStream({ streamtype: "data", port: "0", requestid: "0" })).rejects.toThrow(/refused/);
      await expect(session.openStream({ streamtype: "data", port: "http", requestid: "0" })).rejects.toThrow(/refused/);
      await expect(session.openStream({ streamtype: "stdin", port: "80", requestid: "0" })).rejects.toThrow(/refused/);
      const error = await session.openStream({ streamtype: "error", port: String(echo.port) });
      error.end();
      const errText = collect(error);
      const data = await session.openStream({ streamtype: "data", port: String(echo.port) });
      const out = collect(data);
      data.end("legacy");
      expect((await out.done).toString()).toBe("legacy");
      data.reset();
      expect((await errText.done).toString()).toBe("");
    } finally {
      await echo.close();
    }
  });

  it("tells a lone stream that its partner never came", async () => {
    await h.stop();
    h = await startServer({ streamCreationTimeoutMs: 100 });
    const { session } = await connect(h.server.portForwardUrl({ podSandboxId: "p1", ports: [] }), ["portforward.k8s.io"]);
    const error = await session.openStream({ streamtype: "error", port: "80", requestid: "7" });
    error.end();
    expect((await collect(error).done).toString()).toBe("timed out waiting for streams");
  });

  it("refuses exec protocols on a port-forward URL", async () => {
    const res = await connect(h.server.portForwardUrl({ podSandboxId: "p1", ports: [] }), V4_AND_OLDER).catch((e: unknown) => e);
    expect((res as SpdyUpgradeError).status).toBe(403);
  });
});

describe("SPDY port-forward tunnelled in a WebSocket", () => {
  it("negotiates SPDY/3.1+portforward.k8s.io and forwards like plain SPDY", async () => {
    const echo = await echoServer();
    try {
      const { tunnel, protocol } = await connectWsTunnel(h.server.portForwardUrl({ podSandboxId: "p1", ports: [] }));
      expect(protocol).toBe("SPDY/3.1+portforward.k8s.io");
      const session = new SpdyClientSession(tunnel as unknown as Socket, Buffer.alloc(0));
      sessions.push(session);
      const [one, two] = await Promise.all([forwardOnce(session, echo.port, 0, Buffer.from("through")), forwardOnce(session, echo.port, 1, Buffer.alloc(100 * 1024, 7))]);
      expect(one.echoed.toString()).toBe("through");
      expect(two.echoed.equals(Buffer.alloc(100 * 1024, 7))).toBe(true);
      await session.close();
    } finally {
      await echo.close();
    }
  });

  it("closes the tunnel on a text message", async () => {
    const { tunnel } = await connectWsTunnel(h.server.portForwardUrl({ podSandboxId: "p1", ports: [] }));
    tunnel.resume();
    const closed = new Promise((resolve) => tunnel.once("close", resolve));
    tunnel.sendText("hello");
    await closed;
    expect(tunnel.closeCode).toBe(1002);
  });
});
