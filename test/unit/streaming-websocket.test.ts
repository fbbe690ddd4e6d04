import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { closedPort, echoServer } from "../support/fake-streaming-backend.js";
import { connectWs, eventually, startServer, toWs, WsRefused, type Harness } from "../support/streaming-harness.js";

function exit7(cmd: string[]) {
  return {
    metadata: {},
    status: "Failure",
    message: `command terminated with non-zero exit code: error executing command [${cmd.join(" ")}], exit code 7`,
    reason: "NonZeroExitCode",
    details: { causes: [{ reason: "ExitCode", message: "7" }] },
  };
}

const base = { containerId: "c1", tty: false, stdin: false, stdout: true, stderr: true };

let h: Harness;
beforeEach(async () => {
  h = await startServer();
});
afterEach(async () => {
  await h.stop();
});

describe("WebSocket exec", () => {
  it("v4: announces readiness, sends stdout and stderr exactly, reports exit 7 as NonZeroExitCode, closes 1000", async () => {
    const url = h.server.execUrl({ ...base, cmd: ["print", "hello", "oops", "7"] });
    const c = await connectWs(url, ["v4.channel.k8s.io"]);
    expect(c.protocol).toBe("v4.channel.k8s.io");
    const { code } = await c.closed;
    expect(code).toBe(1000);
    // The first message is the empty one on stdout.
    expect(c.messages[0]).toMatchObject({ channel: 1, binary: true });
    expect(c.messages[0]!.data.length).toBe(0);
    expect(c.received(1).toString()).toBe("hello");
    expect(c.received(2).toString()).toBe("oops");
    expect(JSON.parse(c.received(3).toString())).toEqual(exit7(["print", "hello", "oops", "7"]));
  });

  it("v4: exit 0 is a Success status", async () => {
    const url = h.server.execUrl({ ...base, cmd: ["print", "hello", "", "0"] });
    const c = await connectWs(url, ["v4.channel.k8s.io"]);
    await c.closed;
    expect(c.received(1).toString()).toBe("hello");
    expect(JSON.parse(c.received(3).toString())).toEqual({ metadata: {}, status: "Success" });
  });

  it("v5: stdin reaches the process, the close signal ends its stdin, the exit follows", async () => {
    const url = h.server.execUrl({ ...base, stdin: true, stderr: false, cmd: ["echo"] });
    const c = await connectWs(url, ["v5.channel.k8s.io", "v4.channel.k8s.io"]);
    expect(c.protocol).toBe("v5.channel.k8s.io");
    c.send(0, "abc");
    await c.until(() => c.received(1).toString() === "abc");
    const big = Buffer.alloc(200 * 1024, "x");
    c.send(0, big);
    c.ws.send(Buffer.of(255, 0));
    const { code } = await c.closed;
    expect(code).toBe(1000);
    expect(c.received(1).equals(Buffer.concat([Buffer.from("abc"), big]))).toBe(true);
    expect(JSON.parse(c.received(3).toString())).toEqual({ metadata: {}, status: "Success" });
    const proc = await h.backend.nextProcess(0);
    expect(proc.stdinEnded).toBe(true);
  });

  it("v5: a malformed close signal ends the session and the process", async () => {
    const url = h.server.execUrl({ ...base, stdin: true, stderr: false, cmd: ["wait"] });
    const c = await connectWs(url, ["v5.channel.k8s.io"]);
    c.ws.send(Buffer.of(255, 0, 0));
    const { code } = await c.closed;
    expect(code).toBe(1002);
    const proc = await h.backend.nextProcess(0);
    await eventually(() => proc.detached);
  });

  it("base64: text frames both ways", async () => {
    const url = h.server.execUrl({ ...base, stdin: true, cmd: ["echo", "3"] });
    const c = await connectWs(url, ["v4.base64.channel.k8s.io"]);
    expect(c.protocol).toBe("v4.base64.channel.k8s.io");
    c.send(0, "héllo\u0000bytes");
    await c.until(() => c.received(1).toString() === "héllo\u0000bytes");
    expect(c.messages.every((m) => !m.binary)).toBe(true);
    c.ws.close(1000);
    await c.closed;
    // The client left: the process is let go.
    const proc = await h.backend.nextProcess(0);
    await eventually(() => proc.detached);
  });

  it("v1 base64: the error channel carries plain text, nothing on success", async () => {
    const fail = await connectWs(h.server.execUrl({ ...base, cmd: ["print", "x", "", "7"] }), ["base64.channel.k8s.io"]);
    await fail.closed;
    expect(fail.received(3).toString()).toBe(exit7(["print", "x", "", "7"]).message);
    const ok = await connectWs(h.server.execUrl({ ...base, cmd: ["print", "x", "", "0"] }), ["base64.channel.k8s.io"]);
    await ok.closed;
    expect(ok.received(3).length).toBe(0);
    expect(ok.received(1).toString()).toBe("x");
  });

  it("no subprotocol offered: v1 binary framing", async () => {
    const c = await connectWs(h.server.execUrl({ ...base, cmd: ["print", "hi", "", "0"] }));
    expect(c.protocol).toBe("");
    await c.closed;
    expect(c.received(1).toString()).toBe("hi");
    expect(c.messages.every((m) => m.binary)).toBe(true);
  });

  it("TTY: resize objects, split and batched across messages, reach the backend; empty sizes do not", async () => {
    const url = h.server.execUrl({ containerId: "c1", tty: true, stdin: true, stdout: true, stderr: false, cmd: ["wait"] });
    const c = await connectWs(url, ["v4.channel.k8s.io"]);
    c.send(4, '{"Width":80,');
    c.send(4, '"Height":24}\n{"width":0,"height":5}\n{"Width":100,"Height":40}\n');
    const proc = await h.backend.nextProcess(0);
    await eventually(() => proc.resizes.length === 2);
    expect(proc.resizes).toEqual([
      { width: 80, height: 24 },
      { width: 100, height: 40 },
    ]);
    proc.exit(0);
    await c.closed;
  });

  it("the backend's failure is an InternalError status on the error channel", async () => {
    const c = await connectWs(h.server.execUrl({ ...base, cmd: ["fail"] }), ["v4.channel.k8s.io"]);
    const { code } = await c.closed;
    expect(code).toBe(1000);
    expect(JSON.parse(c.received(3).toString())).toEqual({
      metadata: {},
      status: "Failure",
      message: "Internal error occurred: container c1 is not running",
      reason: "InternalError",
      code: 500,
    });
  });

  it("refuses unknown subprotocols with 403 and spends the token", async () => {
    const url = h.server.execUrl({ ...base, cmd: ["print"] });
    await expect(connectWs(url, ["v9.channel.k8s.io"])).rejects.toEqual(new WsRefused(403));
    await expect(connectWs(url, ["v4.channel.k8s.io"])).rejects.toEqual(new WsRefused(404));
  });

  it("a token is good for one connection only", async () => {
    const url = h.server.execUrl({ ...base, cmd: ["print", "a", "", "0"] });
    const c = await connectWs(url, ["v4.channel.k8s.io"]);
    await c.closed;
    await expect(connectWs(url, ["v4.channel.k8s.io"])).rejects.toEqual(new WsRefused(404));
  });
});

describe("WebSocket attach", () => {
  it("forwards output written after attaching and ends with Success when the container exits", async () => {
    const url = h.server.attachUrl({ containerId: "c1", tty: false, stdin: true, stdout: true, stderr: false });
    const c = await connectWs(url, ["v5.channel.k8s.io"]);
    const proc = await h.backend.nextProcess(0);
    c.send(0, "echo -n hello\n");
    await eventually(() => Buffer.concat(proc.stdinData).toString() === "echo -n hello\n");
    proc.write("stdout", "hello");
    await c.until(() => c.received(1).toString() === "hello");
    c.ws.send(Buffer.of(255, 0));
    await eventually(() => proc.stdinEnded);
    proc.exit(0);
    const { code } = await c.closed;
    expect(code).toBe(1000);
    expect(JSON.parse(c.received(3).toString())).toEqual({ metadata: {}, status: "Success" });
  });

  it("delivers the last output of a container that exits right after writing it, before the status", async () => {
    const url = h.server.attachUrl({ containerId: "c1", tty: false, stdin: false, stdout: true, stderr: true });
    const c = await connectWs(url, ["v4.channel.k8s.io"]);
    const proc = await h.backend.nextProcess(0);
    proc.write("stdout", "last words");
    proc.write("stderr", "and a warning");
    proc.exit(3);
    await c.closed;
    expect(c.received(1).toString()).toBe("last words");
    expect(c.received(2).toString()).toBe("and a warning");
    // Attach never reports an exit code.
    expect(JSON.parse(c.received(3).toString())).toEqual({ metadata: {}, status: "Success" });
    const statusIndex = c.messages.findIndex((m) => m.channel === 3);
    expect(c.messages.slice(statusIndex + 1)).toEqual([]);
  });

  it("with a TTY the client's stdin EOF detaches", async () => {
    const url = h.server.attachUrl({ containerId: "c1", tty: true, stdin: true, stdout: true, stderr: false });
    const c = await connectWs(url, ["v5.channel.k8s.io"]);
    const proc = await h.backend.nextProcess(0);
    c.ws.send(Buffer.of(255, 0));
    await c.closed;
    expect(proc.detached).toBe(true);
    expect(proc.stdinEnded).toBe(false);
  });
});

describe("WebSocket port-forward (channel framing)", () => {
  it("announces each port on its data and error channels and forwards bytes both ways", async () => {
    const echo1 = await echoServer();
    const echo2 = await echoServer();
    try {
      const url = h.server.portForwardUrl({ podSandboxId: "p1", ports: [echo1.port, echo2.port] });
      const c = await connectWs(url, ["v4.channel.k8s.io"]);
      await c.until((m) => m.length >= 4);
      const le = (p: number): string => Buffer.of(p & 0xff, p >> 8).toString("hex");
      expect(c.messages.slice(0, 4).map((m) => [m.channel, m.data.toString("hex")])).toEqual([
        [0, le(echo1.port)],
        [1, le(echo1.port)],
        [2, le(echo2.port)],
        [3, le(echo2.port)],
      ]);
      c.send(0, "one");
      c.send(2, "two");
      await c.until(() => c.received(0).subarray(2).toString() === "one" && c.received(2).subarray(2).toString() === "two");
      c.ws.close(1000);
      await c.closed;
    } finally {
      await echo1.close();
      await echo2.close();
    }
  });

  it("a port nothing listens on gets its error text, and the socket closes once every forward is over", async () => {
    const port = await closedPort();
    const url = h.server.portForwardUrl({ podSandboxId: "p1", ports: [port] });
    const c = await connectWs(url, ["v4.base64.channel.k8s.io"]);
    const { code } = await c.closed;
    expect(code).toBe(1000);
    expect(c.received(1).subarray(2).toString()).toMatch(new RegExp(`^error forwarding port ${port} to pod p1, uid : .*ECONNREFUSED`));
  });

  it("refuses exec subprotocols and needs ports", async () => {
    await expect(connectWs(h.server.portForwardUrl({ podSandboxId: "p1", ports: [80] }), ["v5.channel.k8s.io"])).rejects.toEqual(new WsRefused(403));
    await expect(connectWs(h.server.portForwardUrl({ podSandboxId: "p1", ports: [] }), ["v4.channel.k8s.io"])).rejects.toEqual(new WsRefused(400));
  });
});

describe("WebSocket robustness", () => {
  it("survives garbage: out-of-range channels, empty messages, data on output channels, an abrupt drop", async () => {
    const url = h.server.execUrl({ ...base, stdin: true, cmd: ["wait"] });
    const c = await connectWs(url, ["v4.channel.k8s.io"]);
    c.ws.send(Buffer.alloc(0));
    c.ws.send(Buffer.of(200, 1, 2, 3));
    c.send(1, "not yours");
    c.send(3, "nor this");
    c.ws.send("text in a binary protocol");
    c.ws.terminate();
    await c.closed;
    const proc = await h.backend.nextProcess(0);
    await eventually(() => proc.detached);
    // The server still serves.
    const next = await connectWs(h.server.execUrl({ ...base, cmd: ["print", "ok", "", "0"] }), ["v4.channel.k8s.io"]);
    await next.closed;
    expect(next.received(1).toString()).toBe("ok");
  });

  it("stop() ends live sessions and lets their processes go", async () => {
    const c = await connectWs(h.server.execUrl({ ...base, stdin: true, cmd: ["wait"] }), ["v4.channel.k8s.io"]);
    const proc = await h.backend.nextProcess(0);
    await h.server.stop();
    await c.closed;
    await eventually(() => proc.detached);
    expect(c.ws.readyState).toBe(WebSocket.CLOSED);
  });

  it("uses ws:// URLs rewritten from the http:// ones it hands out", () => {
    expect(toWs(h.server.execUrl({ ...base, cmd: ["x"] }))).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/exec\/[A-Za-z0-9_-]{8}$/);
  });
});
