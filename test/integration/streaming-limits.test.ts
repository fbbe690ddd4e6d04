// Streaming limits on a real podshim: port-forward connections past the per-pod cap are refused
// on their error stream, streams past the per-session cap are refused, and no helper process
// outlives its connection. The server listens on 0.0.0.0 without TLS, so start-up warns and
// Status verbose says so (and that RuntimeDefault AppArmor is unconfined on this host).
import { readdirSync, readFileSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { WEB_INDEX_HTML } from "../bed/images.js";
import { testNetwork, type TestNetwork } from "../support/cni.js";
import { startPodshim, type PodshimHandle } from "../support/podshim.js";
import { connectSpdy, SpdyStreamRefusedError, type SpdyClientSession, type SpdyClientStream } from "../support/spdy-client.js";

const bed = inject("bed");
const PER_POD = 2;
const PER_SESSION = 8;
let base: string;
let net: TestNetwork;
let podshim: PodshimHandle;
let pod: string;
const sessions: SpdyClientSession[] = [];

beforeAll(async () => {
  base = mkdtempSync(join(bed.tmpDir, "stream-limits-"));
  net = testNetwork(base);
  podshim = await startPodshim({
    containerdSocket: bed.containerdSocket, baseDir: base, cniConfDir: net.confDir,
    extraArgs: ["--pause-image", bed.images.pause, "--stream-address", "0.0.0.0:0", "--port-forward-max-per-pod", String(PER_POD), "--stream-max-streams-per-session", String(PER_SESSION)],
  });
  await podshim.cri.image("PullImage", { image: { image: bed.images.web } }, 120_000);
  const uid = randomBytes(8).toString("hex");
  const podConfig = { metadata: { name: "limits", uid, namespace: "default", attempt: 0 }, log_directory: join(base, "logs"), linux: { cgroup_parent: `${bed.cgroupParent}/pod-${uid.slice(0, 8)}` } };
  pod = (await podshim.cri.runtime("RunPodSandbox", { config: podConfig }, 120_000)).pod_sandbox_id;
  const { container_id } = await podshim.cri.runtime("CreateContainer", {
    pod_sandbox_id: pod, sandbox_config: podConfig, config: { metadata: { name: "web" }, image: { image: bed.images.web }, log_path: "web.log" },
  }, 60_000);
  await podshim.cri.runtime("StartContainer", { container_id }, 60_000);
}, 180_000);

afterAll(async () => {
  await Promise.all(sessions.map((s) => s.destroy()));
  if (pod) await podshim.cri.runtime("RemovePodSandbox", { pod_sandbox_id: pod }, 60_000).catch((err: unknown) => console.error("RemovePodSandbox failed", err));
  await podshim?.cleanup();
  await net?.cleanup();
  if (base) rmSync(base, { recursive: true, force: true });
});

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** podshim's child processes that forward connections (nsenter running socat). */
function helpers(): string[] {
  const out: string[] = [];
  for (const p of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      if (ppid === podshim.process.pid && (comm === "nsenter" || comm === "socat")) out.push(`${p} ${comm}`);
    } catch {
      // gone meanwhile
    }
  }
  return out;
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

async function session(): Promise<SpdyClientSession> {
  const { url } = await podshim.cri.runtime("PortForward", { pod_sandbox_id: pod });
  const { session: s } = await connectSpdy(url, { protocols: ["portforward.k8s.io"] });
  sessions.push(s);
  return s;
}

async function pair(s: SpdyClientSession, requestid: string) {
  const error = await s.openStream({ streamtype: "error", port: "80", requestid });
  error.end();
  const data = await s.openStream({ streamtype: "data", port: "80", requestid });
  return { error: collect(error), data, body: collect(data) };
}

describe("streaming limits", () => {
  it("refuses port-forward connections past the per-pod cap on the error stream; no helper outlives its connection", async () => {
    const s = await session();
    // httpd may need a moment to listen: wait until one full request goes through.
    let ok = false;
    for (let i = 0; i < 50 && !ok; i++) {
      const p = await pair(s, `probe-${i}`);
      p.data.end("GET / HTTP/1.0\r\nHost: pod\r\n\r\n");
      ok = (await p.body.done).includes(WEB_INDEX_HTML);
      if (!ok) await new Promise((r) => setTimeout(r, 200));
    }
    expect(ok).toBe(true);
    await until("helpers of the probes to exit", () => helpers().length === 0);

    // Two held connections: the request is never finished, so httpd keeps them open.
    const held = [await pair(s, "held-1"), await pair(s, "held-2")];
    for (const h of held) h.data.write("GET / HTTP/1.0\r\n");
    await until("two helpers", () => helpers().length >= PER_POD);
    const third = await pair(s, "third");
    third.data.end("GET / HTTP/1.0\r\n\r\n");
    expect(await third.error.done).toMatch(/too many port-forward connections into pod .* \(at most 2 at once\)/);
    expect(helpers().length).toBe(PER_POD);

    for (const h of held) h.data.end("\r\n");
    for (const h of held) expect(await h.body.done).toContain(WEB_INDEX_HTML);
    await until("every helper to exit", () => helpers().length === 0);

    // The slots came back.
    const again = await pair(s, "again");
    again.data.end("GET / HTTP/1.0\r\nHost: pod\r\n\r\n");
    expect(await again.body.done).toContain(WEB_INDEX_HTML);
    await until("every helper to exit", () => helpers().length === 0);
  });

  it("refuses streams past the per-session cap", async () => {
    const s = await session();
    // Unpaired error streams stay open (until the stream-creation timeout).
    for (let i = 0; i < PER_SESSION; i++) await s.openStream({ streamtype: "error", port: "80", requestid: `lonely-${i}` });
    await expect(s.openStream({ streamtype: "error", port: "80", requestid: "one-too-many" })).rejects.toBeInstanceOf(SpdyStreamRefusedError);
  });

  it("warns about a plain-text streaming server off loopback, and Status says so with the AppArmor state", async () => {
    expect(podshim.output()).toMatch(/streaming server listens on 0\.0\.0\.0 without TLS/);
    const res = await podshim.cri.runtime("Status", { verbose: true });
    const streaming = JSON.parse(res.info.streaming);
    expect(streaming).toMatchObject({ address: "0.0.0.0", tls: false, loopbackOnly: false, limits: { portForwardPerPod: PER_POD, streamsPerSession: PER_SESSION } });
    expect(streaming.warning).toMatch(/without TLS/);
    const security = JSON.parse(res.info.security);
    expect(security.seccompRuntimeDefault).toBe("baseline");
    // This host has no AppArmor (see shared/docs/environment.md).
    expect(security.apparmor).toMatchObject({ enabled: false, runtimeDefault: "unconfined" });
    expect(security.apparmor.message).toMatch(/not enabled/);
  });
});
