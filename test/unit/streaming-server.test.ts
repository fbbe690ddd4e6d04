import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorKind, type PodshimError } from "../../src/errors/errors.js";
import { createLogger } from "../../src/logger/logger.js";
import { StreamingServer } from "../../src/streaming/server.js";
import { FakeBackend } from "../support/fake-streaming-backend.js";
import { connectSpdy, SpdyUpgradeError } from "../support/spdy-client.js";
import { startServer, type Harness } from "../support/streaming-harness.js";

const exec = { containerId: "c1", cmd: ["print", "x", "", "0"], tty: false, stdin: false, stdout: true, stderr: false };

let harnesses: Harness[] = [];
afterEach(async () => {
  await Promise.all(harnesses.map((h) => h.stop()));
  harnesses = [];
});

async function server(extra: Parameters<typeof startServer>[0] = {}): Promise<Harness> {
  const h = await startServer(extra);
  harnesses.push(h);
  return h;
}

function request(url: string, opts: { method?: string; headers?: Record<string, string>; agent?: http.Agent } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? "GET", headers: opts.headers, agent: opts.agent ?? false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("streaming URLs", () => {
  it("are absolute, with the bound port, one path per kind", async () => {
    const h = await server();
    expect(h.server.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(h.server.baseUrl).not.toMatch(/:0$/);
    const token = /^[A-Za-z0-9_-]{8}$/;
    const execUrl = new URL(h.server.execUrl(exec));
    expect(execUrl.origin).toBe(h.server.baseUrl);
    expect(execUrl.pathname.split("/")[1]).toBe("exec");
    expect(execUrl.pathname.split("/")[2]).toMatch(token);
    expect(new URL(h.server.attachUrl({ containerId: "c1", tty: false, stdin: true, stdout: true, stderr: false })).pathname).toMatch(/^\/attach\/[A-Za-z0-9_-]{8}$/);
    expect(new URL(h.server.portForwardUrl({ podSandboxId: "p1", ports: [] })).pathname).toMatch(/^\/portforward\/[A-Za-z0-9_-]{8}$/);
  });

  it("put an IPv6 host in brackets, and name the loopback for an unspecified address", async () => {
    const v6 = await server({ host: "::1" });
    expect(v6.server.baseUrl).toMatch(/^http:\/\/\[::1\]:\d+$/);
    const res = await request(v6.server.execUrl(exec));
    expect(res.status).toBe(400);
    const any = await server({ host: "0.0.0.0" });
    expect(any.server.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it("are refused before start and past the in-flight cap", async () => {
    const s = new StreamingServer({ host: "127.0.0.1", port: 0, backend: new FakeBackend(), logger: createLogger("silent") });
    expect(() => s.execUrl(exec)).toThrow(/not listening/);
    await s.stop();
    const h = await server({ tokens: { maxInFlight: 2 } });
    h.server.execUrl(exec);
    h.server.execUrl(exec);
    let thrown: unknown;
    try {
      h.server.portForwardUrl({ podSandboxId: "p1", ports: [] });
    } catch (err) {
      thrown = err;
    }
    expect((thrown as PodshimError).kind).toBe(ErrorKind.ResourceExhausted);
  });

  it("serve https with the given certificate, and say so", async () => {
    const dir = mkdtempSync(join(tmpdir(), "podshim-tls-"));
    try {
      execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "1", "-subj", "/CN=127.0.0.1"], { stdio: "ignore" });
      const h = await server({ tls: { cert: readFileSync(join(dir, "cert.pem")), key: readFileSync(join(dir, "key.pem")) } });
      const url = h.server.execUrl(exec);
      expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/exec\//);
      const status = await new Promise<number>((resolve, reject) => {
        https.get(url, { rejectUnauthorized: false, agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on("error", reject);
      });
      expect(status).toBe(400);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("streaming HTTP routing", () => {
  it("answers a plain request on a live token with 400, and the token is spent", async () => {
    const h = await server();
    const url = h.server.execUrl(exec);
    expect((await request(url, { method: "POST" })).status).toBe(400);
    expect((await request(url)).status).toBe(404);
  });

  it("404s unknown tokens, wrong kinds and other paths; 405s other methods", async () => {
    const h = await server();
    expect((await request(`${h.server.baseUrl}/exec/AAAAAAAA`)).status).toBe(404);
    expect((await request(`${h.server.baseUrl}/`)).status).toBe(404);
    expect((await request(`${h.server.baseUrl}/logs/abc`)).status).toBe(404);
    const token = new URL(h.server.execUrl(exec)).pathname.split("/")[2]!;
    expect((await request(`${h.server.baseUrl}/attach/${token}`)).status).toBe(404);
    expect((await request(`${h.server.baseUrl}/exec/${token}`)).status).toBe(404);
    expect((await request(h.server.execUrl(exec), { method: "PUT" })).status).toBe(405);
  });

  it("404s an upgrade with an expired token (injected clock)", async () => {
    let now = 5_000_000;
    const h = await server({ tokens: { now: () => now } });
    const url = h.server.execUrl(exec);
    now += 60_001;
    const err = await connectSpdy(url, { protocols: ["v4.channel.k8s.io"] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpdyUpgradeError);
    expect((err as SpdyUpgradeError).status).toBe(404);
  });

  it("routes a GET SPDY upgrade too, and 400s a SPDY upgrade without a protocol header", async () => {
    const h = await server();
    const { protocol, session } = await connectSpdy(h.server.execUrl(exec), { method: "GET", protocols: ["v4.channel.k8s.io"] });
    expect(protocol).toBe("v4.channel.k8s.io");
    await session.destroy();
    const err = await connectSpdy(h.server.execUrl(exec), { protocols: [] }).catch((e: unknown) => e);
    expect((err as SpdyUpgradeError).status).toBe(400);
  });

  it("stop() ends live SPDY sessions and idle keep-alive connections", async () => {
    const h = await server();
    const agent = new http.Agent({ keepAlive: true });
    expect((await request(`${h.server.baseUrl}/`, { agent })).status).toBe(404);
    const { session } = await connectSpdy(h.server.execUrl({ ...exec, cmd: ["wait"], stdin: true }), { protocols: ["v4.channel.k8s.io"] });
    await session.openStream({ streamtype: "error" });
    await session.openStream({ streamtype: "stdin" });
    await session.openStream({ streamtype: "stdout" });
    const proc = await h.backend.nextProcess(0);
    const started = Date.now();
    await h.server.stop();
    await session.closed;
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(proc.detached).toBe(true);
    agent.destroy();
  });
});
