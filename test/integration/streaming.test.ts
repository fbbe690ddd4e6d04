// Exec, Attach and PortForward end to end: the CRI RPC hands out a URL, a real SPDY or WebSocket
// client connects to podshim's streaming server, and the bytes reach real containers in a pod.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { PodshimHandle } from "../support/podshim.js";
import { startPodFixture, type PodFixture } from "../support/pod-fixture.js";
import { connectSpdy, type SpdyClientSession, type SpdyClientStream } from "../support/spdy-client.js";
import { connectWs, WsRefused } from "../support/streaming-harness.js";
import { WEB_INDEX_HTML } from "../bed/images.js";

const bed = inject("bed");
const SPDY_OFFER = ["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"];
let fx: PodFixture;
let podshim: PodshimHandle;
let pod: string;
const sessions: SpdyClientSession[] = [];
beforeAll(async () => {
  fx = await startPodFixture(bed, "streaming", [bed.images.busybox, bed.images.web]);
  ({ podshim, pod } = fx);
});
afterAll(async () => {
  await Promise.all(sessions.map((s) => s.destroy()));
  await fx?.cleanup();
});

const container = (name: string, extra: Record<string, unknown> = {}) => fx.container(name, extra);

async function spdy(url: string, protocols = SPDY_OFFER): Promise<{ protocol: string; session: SpdyClientSession }> {
  const res = await connectSpdy(url, { protocols });
  sessions.push(res.session);
  return res;
}

function collect(stream: SpdyClientStream): { text(): string; done: Promise<string> } {
  const parts: Buffer[] = [];
  stream.on("data", (c: Buffer) => parts.push(c));
  const done = new Promise<string>((resolve) => {
    stream.once("end", () => resolve(Buffer.concat(parts).toString()));
    stream.once("close", () => resolve(Buffer.concat(parts).toString()));
  });
  return { text: () => Buffer.concat(parts).toString(), done };
}

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const execUrl = async (req: Record<string, unknown>) => (await podshim.cri.runtime("Exec", req)).url as string;

describe("Exec over SPDY", () => {
  it("returns exactly the command's stdout, and Success on the error stream", async () => {
    const id = await container("spdy-plain");
    const url = await execUrl({ container_id: id, cmd: ["echo", "-n", "hello"], stdout: true, stderr: true });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/exec\/[A-Za-z0-9_-]{8}$/);
    const { protocol, session } = await spdy(url);
    expect(protocol).toBe("v5.channel.k8s.io");
    const error = collect(await session.openStream({ streamtype: "error" }));
    const stdout = collect(await session.openStream({ streamtype: "stdout" }));
    const stderr = collect(await session.openStream({ streamtype: "stderr" }));
    expect(await stdout.done).toBe("hello");
    expect(await stderr.done).toBe("");
    expect(JSON.parse(await error.done)).toEqual({ metadata: {}, status: "Success" });
  });

  it("echoes stdin and reports exit code 7 as NonZeroExitCode", async () => {
    const id = await container("spdy-stdin");
    const url = await execUrl({ container_id: id, cmd: ["sh", "-c", "cat; exit 7"], stdin: true, stdout: true });
    const { session } = await spdy(url, ["v4.channel.k8s.io"]);
    const errorStream = await session.openStream({ streamtype: "error" });
    errorStream.end();
    const error = collect(errorStream);
    const stdin = await session.openStream({ streamtype: "stdin" });
    const stdout = collect(await session.openStream({ streamtype: "stdout" }));
    stdin.end("ping\n");
    expect(await stdout.done).toBe("ping\n");
    const status = JSON.parse(await error.done);
    expect(status).toMatchObject({ status: "Failure", reason: "NonZeroExitCode", details: { causes: [{ reason: "ExitCode", message: "7" }] } });
  });

  it("gives a TTY whose size follows the client's resize", async () => {
    const id = await container("spdy-tty");
    const url = await execUrl({ container_id: id, cmd: ["sh", "-c", "sleep 1; stty size"], tty: true, stdin: true, stdout: true });
    const { session } = await spdy(url, ["v4.channel.k8s.io"]);
    const error = collect(await session.openStream({ streamtype: "error" }));
    await session.openStream({ streamtype: "stdin" });
    const stdout = collect(await session.openStream({ streamtype: "stdout" }));
    const resize = await session.openStream({ streamtype: "resize" });
    resize.write(JSON.stringify({ Width: 123, Height: 45 }));
    expect((await stdout.done).trim()).toBe("45 123");
    expect(JSON.parse(await error.done).status).toBe("Success");
  });
});

describe("Exec over WebSocket", () => {
  it("speaks v5.channel.k8s.io: stdout, stderr and the exit status", async () => {
    const id = await container("ws-exec");
    const url = await execUrl({ container_id: id, cmd: ["sh", "-c", "echo out; echo err >&2; exit 3"], stdout: true, stderr: true });
    const c = await connectWs(url, ["v5.channel.k8s.io"]);
    expect(c.protocol).toBe("v5.channel.k8s.io");
    await c.closed;
    expect(c.received(1).toString()).toBe("out\n");
    expect(c.received(2).toString()).toBe("err\n");
    expect(JSON.parse(c.received(3).toString())).toMatchObject({ reason: "NonZeroExitCode", details: { causes: [{ message: "3" }] } });
  });

  it("refuses a token used before", async () => {
    const id = await container("ws-token");
    const url = await execUrl({ container_id: id, cmd: ["true"], stdout: true });
    const c = await connectWs(url, ["v4.channel.k8s.io"]);
    await c.closed;
    await expect(connectWs(url, ["v4.channel.k8s.io"])).rejects.toEqual(new WsRefused(404));
  });
});

describe("Attach", () => {
  it("joins a running container's output over SPDY; the log keeps it too", async () => {
    const id = await container("ticker", { command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"] });
    const { url } = await podshim.cri.runtime("Attach", { container_id: id, stdout: true, stderr: true });
    const { session } = await spdy(url, ["v4.channel.k8s.io"]);
    await session.openStream({ streamtype: "error" });
    const stdout = collect(await session.openStream({ streamtype: "stdout" }));
    await session.openStream({ streamtype: "stderr" });
    await until("ticks through attach", () => (stdout.text().match(/tick \d+\n/g) ?? []).length >= 3);
    await session.destroy();
    // Detaching does not stop the container.
    expect((await podshim.cri.runtime("ContainerStatus", { container_id: id })).status.state).toBe("CONTAINER_RUNNING");
  });

  it("feeds a stdin_once container's stdin; closing it ends the container and the session", async () => {
    const id = await container("shell", { command: ["sh"], stdin: true, stdin_once: true });
    const { url } = await podshim.cri.runtime("Attach", { container_id: id, stdin: true, stdout: true });
    const c = await connectWs(url, ["v5.channel.k8s.io"]);
    c.send(0, "echo -n hello\n");
    await c.until(() => c.received(1).toString() === "hello");
    c.ws.send(Buffer.of(255, 0));
    await c.closed;
    const deadline = Date.now() + 10_000;
    let state = "";
    while (Date.now() < deadline && state !== "CONTAINER_EXITED") {
      state = (await podshim.cri.runtime("ContainerStatus", { container_id: id })).status.state;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(state).toBe("CONTAINER_EXITED");
  });
});

describe("PortForward", () => {
  async function webPod(): Promise<void> {
    await container("web", { image: { image: bed.images.web }, command: [] });
  }

  function httpGet(stream: SpdyClientStream): Promise<string> {
    const body = collect(stream);
    stream.end("GET / HTTP/1.0\r\nHost: pod\r\n\r\n");
    return body.done;
  }

  it("reaches a web server in the pod over SPDY, two connections at once", async () => {
    await webPod();
    const { url } = await podshim.cri.runtime("PortForward", { pod_sandbox_id: pod });
    const { protocol, session } = await spdy(url, ["portforward.k8s.io"]);
    expect(protocol).toBe("portforward.k8s.io");
    const pair = async (requestid: string) => {
      const error = await session.openStream({ streamtype: "error", port: "80", requestid });
      error.end();
      const data = await session.openStream({ streamtype: "data", port: "80", requestid });
      return httpGet(data);
    };
    // httpd may need a moment to listen after the container starts.
    let pages: string[] = [];
    const deadline = Date.now() + 10_000;
    let id = 0;
    while (Date.now() < deadline) {
      pages = await Promise.all([pair(String(id++)), pair(String(id++))]);
      if (pages.every((p) => p.includes(WEB_INDEX_HTML))) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    for (const page of pages) expect(page).toContain(WEB_INDEX_HTML);
  });

  it("reaches it over WebSocket with the ports in the request, two connections at once", async () => {
    const { url } = await podshim.cri.runtime("PortForward", { pod_sandbox_id: pod, port: [80, 80] });
    const c = await connectWs(url, ["v4.channel.k8s.io"]);
    await c.until((m) => m.length >= 4);
    c.send(0, "GET / HTTP/1.0\r\nHost: pod\r\n\r\n");
    c.send(2, "GET / HTTP/1.0\r\nHost: pod\r\n\r\n");
    await c.until(() => [0, 2].every((ch) => c.received(ch).subarray(2).toString().includes(WEB_INDEX_HTML)));
    c.ws.close(1000);
    await c.closed;
  });

  it("reports a closed port on the error stream", async () => {
    const { url } = await podshim.cri.runtime("PortForward", { pod_sandbox_id: pod });
    const { session } = await spdy(url, ["portforward.k8s.io"]);
    const errorStream = await session.openStream({ streamtype: "error", port: "81", requestid: "1" });
    errorStream.end();
    const error = collect(errorStream);
    const data = await session.openStream({ streamtype: "data", port: "81", requestid: "1" });
    data.end("x");
    expect(await error.done).toMatch(/81/);
  });
});
