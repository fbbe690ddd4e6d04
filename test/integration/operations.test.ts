// Operating podshim on the bed: Prometheus metrics after a real pod lifecycle, /healthz and
// /readyz, the gRPC health service on the CRI socket, version and commit, Status verbose's
// node facts, SIGHUP re-reading the log level, and `podshim doctor` on healthy and broken nodes.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { credentials, loadPackageDefinition, status as Status, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { metricsUrl, PODSHIM_MAIN, podshimArgs, runPodshim, startPodshim, type PodshimHandle } from "../support/podshim.js";
import { testNetwork, type TestNetwork } from "../support/cni.js";
import { startContainerd, type ContainerdHandle } from "../bed/containerd.js";

const bed = inject("bed");
const base = mkdtempSync(join(bed.tmpDir, "operations-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

const healthPkg = loadPackageDefinition(loadSync("grpc/health/v1/health.proto", {
  includeDirs: [fileURLToPath(new URL("../../proto", import.meta.url))], keepCase: true, enums: String, defaults: true,
})) as any;

function healthClient(socket: string) {
  return new healthPkg.grpc.health.v1.Health(`unix://${socket}`, credentials.createInsecure());
}

function healthCheck(socket: string, service: string): Promise<string> {
  const client = healthClient(socket);
  return new Promise<string>((resolve, reject) => {
    client.Check({ service }, { deadline: Date.now() + 5000 }, (err: ServiceError | null, res: { status: string }) => {
      client.close();
      if (err) reject(err);
      else resolve(res.status);
    });
  });
}

/** One sample's value from Prometheus text, by family name and exact label set text. */
function sample(text: string, name: string, labels = ""): number | undefined {
  const prefix = labels ? `${name}{${labels}} ` : `${name} `;
  const line = text.split("\n").find((l) => l.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(prefix.length));
}

async function eventually<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(v)} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("metrics and health after a pod lifecycle", () => {
  let podshim: PodshimHandle;
  let net: TestNetwork;
  let text = "";
  beforeAll(async () => {
    net = testNetwork(base);
    podshim = await startPodshim({
      containerdSocket: bed.containerdSocket, baseDir: base, cniConfDir: net.confDir,
      extraArgs: ["--pause-image", bed.images.pause, "--metrics-address", "127.0.0.1:0"],
    });
    await podshim.cri.image("PullImage", { image: { image: bed.images.busybox } }, 120_000);
    const uid = randomBytes(8).toString("hex");
    const config = { metadata: { name: "ops", uid, namespace: "default", attempt: 0 }, log_directory: join(podshim.dir, "logs"), linux: { cgroup_parent: `${bed.cgroupParent}/pod-${uid.slice(0, 8)}` } };
    const pod: string = (await podshim.cri.runtime("RunPodSandbox", { config }, 120_000)).pod_sandbox_id;
    const { container_id: id } = await podshim.cri.runtime("CreateContainer", {
      pod_sandbox_id: pod, sandbox_config: config,
      config: { metadata: { name: "c" }, image: { image: bed.images.busybox }, command: ["sleep", "3600"], log_path: "c.log" },
    }, 60_000);
    await podshim.cri.runtime("StartContainer", { container_id: id }, 60_000);
    text = await (await fetch(`${metricsUrl(podshim)}/metrics`)).text();
    await podshim.cri.runtime("StopPodSandbox", { pod_sandbox_id: pod }, 60_000);
    await podshim.cri.runtime("RemovePodSandbox", { pod_sandbox_id: pod }, 60_000);
    await podshim.cri.runtime("ContainerStatus", { container_id: "no-such-container" }).catch(() => undefined);
    // Kept for the operator's eye (and the closing note): the podshim_ families after the lifecycle.
    mkdirSync(".tmp/operations", { recursive: true });
    writeFileSync(".tmp/operations/metrics.txt", await (await fetch(`${metricsUrl(podshim)}/metrics`)).text());
  }, 300_000);
  afterAll(async () => {
    await podshim?.cleanup();
    await net?.cleanup();
  });

  it("counts CRI calls by method and code, with latency histograms", async () => {
    const after = await (await fetch(`${metricsUrl(podshim)}/metrics`)).text();
    expect(sample(after, "podshim_cri_requests_total", 'service="RuntimeService",method="RunPodSandbox",code="OK"')).toBe(1);
    expect(sample(after, "podshim_cri_requests_total", 'service="RuntimeService",method="ContainerStatus",code="NOT_FOUND"')).toBe(1);
    expect(sample(after, "podshim_cri_request_duration_seconds_count", 'service="ImageService",method="PullImage"')).toBe(1);
  });

  it("times pod start steps, container create/start, containerd calls and CNI plugins", () => {
    for (const step of ["netns", "cni_add", "pause_create", "pause_start"]) {
      expect(sample(text, "podshim_operation_step_duration_seconds_count", `operation="run_pod_sandbox",step="${step}"`), step).toBe(1);
    }
    expect(sample(text, "podshim_operation_step_duration_seconds_count", 'operation="create_container",step="spec"')).toBe(1);
    expect(sample(text, "podshim_operation_step_duration_seconds_count", 'operation="start_container",step="task"')).toBe(1);
    expect(sample(text, "podshim_containerd_requests_total", 'service="Tasks",method="Start",code="OK"')).toBeGreaterThanOrEqual(2);
    expect(sample(text, "podshim_cni_plugin_duration_seconds_count", 'plugin="bridge",command="ADD"')).toBe(1);
  });

  it("reports pulls, objects by state, event subscribers, recovery and process metrics", () => {
    // Zero when another test pulled the same layers first: containerd shares blobs across
    // namespaces, so the write completes without a download.
    expect(sample(text, "podshim_image_pull_bytes_total")).toBeGreaterThanOrEqual(0);
    // busybox, and the pause image RunPodSandbox needed.
    expect(sample(text, "podshim_image_pull_duration_seconds_count", 'result="success"')).toBe(2);
    expect(sample(text, "podshim_image_pull_failures_total")).toBe(0);
    expect(sample(text, "podshim_sandboxes", 'state="ready"')).toBe(1);
    expect(sample(text, "podshim_containers", 'state="running"')).toBe(1);
    expect(sample(text, "podshim_events_subscribers")).toBe(0);
    expect(sample(text, "podshim_events_dropped_total")).toBe(0);
    expect(sample(text, "podshim_recovery_duration_seconds")).toBeGreaterThan(0);
    expect(sample(text, "podshim_process_resident_memory_bytes")).toBeGreaterThan(10_000_000);
    expect(text).toContain("podshim_nodejs_eventloop_lag_seconds ");
    expect(text).toMatch(/^podshim_nodejs_gc_duration_seconds_count\{kind="minor"\} \d+/m);
    expect(text).toMatch(/^podshim_build_info\{version="0\.1\.0",commit="[^"]+",node="v\d+/m);
  });

  it("answers /healthz and /readyz", async () => {
    const url = metricsUrl(podshim);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${url}/readyz`);
    expect([ready.status, await ready.text()]).toEqual([200, "ok\n"]);
    expect((await fetch(`${url}/nothing`)).status).toBe(404);
  });

  it("serves grpc.health.v1.Health on the CRI socket: Check and Watch", async () => {
    expect(await healthCheck(podshim.socket, "")).toBe("SERVING");
    expect(await healthCheck(podshim.socket, "runtime.v1.RuntimeService")).toBe("SERVING");
    await expect(healthCheck(podshim.socket, "no.such.Service")).rejects.toMatchObject({ code: Status.NOT_FOUND });
    const client = healthClient(podshim.socket);
    const stream = client.Watch({ service: "runtime.v1.ImageService" });
    const first = await new Promise<{ status: string }>((resolve, reject) => {
      stream.once("data", resolve);
      stream.once("error", reject);
    });
    expect(first.status).toBe("SERVING");
    stream.on("error", () => undefined);
    stream.cancel();
    client.close();
  });

  it("gives version and commit in Version and Status verbose, with node facts", async () => {
    const v = await podshim.cri.runtime("Version", { version: "v1" });
    expect(v.runtime_version).toMatch(/^0\.1\.0\+[0-9a-f]{12}(-dirty)?$/);
    const s = await podshim.cri.runtime("Status", { verbose: true });
    expect(JSON.parse(s.info.version)).toMatchObject({ name: "podshim", version: "0.1.0", node: process.version });
    expect(JSON.parse(s.info.streaming).url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(JSON.parse(s.info.cniConfig)).toMatchObject({ name: net.name });
    expect(JSON.parse(s.info.node)).toMatchObject({ cgroupLayout: expect.stringMatching(/^(v1|v2|hybrid)$/), apparmor: expect.any(Boolean), seccomp: true });
    expect(JSON.parse(s.info.recovery)).toMatchObject({ ready: true });
  });
});

describe("health while containerd is down", () => {
  let containerd: ContainerdHandle;
  let podshim: PodshimHandle;
  beforeAll(async () => {
    containerd = await startContainerd({ dir: join(base, "own-containerd") });
    podshim = await startPodshim({ containerdSocket: containerd.socket, baseDir: base, extraArgs: ["--metrics-address", "127.0.0.1:0"] });
  }, 60_000);
  afterAll(async () => {
    await podshim?.cleanup();
    await containerd?.cleanup();
  });

  it("turns NOT_SERVING and 503 when containerd goes away, SERVING again when it is back", async () => {
    const url = metricsUrl(podshim);
    expect(await healthCheck(podshim.socket, "")).toBe("SERVING");
    await containerd.stop();
    await eventually("health", () => healthCheck(podshim.socket, ""), (s) => s === "NOT_SERVING");
    expect((await fetch(`${url}/readyz`)).status).toBe(503);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    await containerd.restart();
    await eventually("health", () => healthCheck(podshim.socket, ""), (s) => s === "SERVING");
  }, 60_000);
});

describe("SIGHUP", () => {
  it("re-reads the log level from the config file", async () => {
    const dir = mkdtempSync(join(base, "hup-"));
    const file = join(dir, "config.toml");
    writeFileSync(file, 'log_level = "info"\n');
    // The test harness passes --log-level debug, and flags win over the file: drop it here.
    const args = podshimArgs(dir, { containerdSocket: bed.containerdSocket, baseDir: base, configFile: file });
    const i = args.indexOf("--log-level");
    args.splice(i, 2);
    const child = spawn(process.execPath, [PODSHIM_MAIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stderr.on("data", (d) => (out += d));
    child.stdout.on("data", (d) => (out += d));
    const exited = new Promise((r) => child.on("exit", r));
    try {
      await eventually("start", async () => out, (o) => o.includes("podshim is serving CRI"));
      expect(out).not.toContain('"level":20');
      writeFileSync(file, 'log_level = "debug"\n');
      child.kill("SIGHUP");
      await eventually("SIGHUP", async () => out, (o) => o.includes("SIGHUP: log level changed"));
      const { criClient } = await import("../support/cri-client.js");
      const cri = criClient(join(dir, "podshim.sock"));
      await cri.runtime("Version", {});
      cri.close();
      await eventually("debug line", async () => out, (o) => o.includes('"level":20'));
    } finally {
      child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("podshim doctor", () => {
  let podshim: PodshimHandle;
  let net: TestNetwork;
  beforeAll(async () => {
    net = testNetwork(base);
    podshim = await startPodshim({ containerdSocket: bed.containerdSocket, baseDir: base, cniConfDir: net.confDir, extraArgs: ["--pause-image", bed.images.pause] });
    // The pause image is loaded in the background after start.
    await eventually("pause image", () => podshim.cri.image("ImageStatus", { image: { image: bed.images.pause } }), (r) => r.image !== null);
  }, 120_000);
  afterAll(async () => {
    await podshim?.cleanup();
    await net?.cleanup();
  });

  const doctor = (extra: string[] = [], cniConfDir = net.confDir) => {
    const args = podshimArgs(podshim.dir, { containerdSocket: bed.containerdSocket, baseDir: base, cniConfDir, extraArgs: ["--pause-image", bed.images.pause, ...extra] });
    return runPodshim(["doctor", ...args], 60_000);
  };
  const line = (out: string, name: string) => out.split("\n").find((l) => l.slice(6).startsWith(`${name} `)) ?? "";

  it("passes on a healthy node", async () => {
    const res = await doctor();
    mkdirSync(".tmp/operations", { recursive: true });
    writeFileSync(".tmp/operations/doctor-healthy.txt", res.stdout);
    expect(res.stdout).not.toMatch(/^fail/m);
    expect(res.code).toBe(0);
    expect(line(res.stdout, "containerd")).toMatch(/^ok +containerd +reachable at .*version/);
    expect(line(res.stdout, "cni")).toMatch(new RegExp(`^ok +cni +network ${net.name}`));
    expect(line(res.stdout, "pause image")).toMatch(/^ok +pause image +.* present in namespace/);
    expect(res.stdout).toContain("node is ready for podshim");
  });

  it("fails on an empty CNI conf dir, saying how to fix it", async () => {
    const empty = mkdtempSync(join(base, "empty-netd-"));
    const res = await doctor([], empty);
    writeFileSync(".tmp/operations/doctor-broken-cni.txt", res.stdout);
    expect(res.code).toBe(1);
    expect(line(res.stdout, "cni")).toMatch(/^fail +cni +no CNI network config.*-> fix: write a network config/);
  });

  it("fails when a plugin binary is missing, saying how to fix it", async () => {
    const dir = mkdtempSync(join(base, "missing-plugin-"));
    writeFileSync(join(dir, "10-x.conflist"), JSON.stringify({ cniVersion: "1.0.0", name: "x", plugins: [{ type: "bridge" }, { type: "no-such-plugin" }] }));
    const res = await doctor([], dir);
    expect(res.code).toBe(1);
    expect(line(res.stdout, "cni")).toMatch(/^fail +cni +.*no-such-plugin.*-> fix: install the missing plugin binaries/);
  });

  it("fails when the cgroup driver and SystemdCgroup differ, and podshim refuses to start then", async () => {
    const res = await doctor(["--cgroup-driver", "systemd"]);
    writeFileSync(".tmp/operations/doctor-broken-driver.txt", res.stdout);
    expect(res.code).toBe(1);
    expect(line(res.stdout, "cgroups")).toMatch(/^fail +cgroups +.*--cgroup-driver is systemd but SystemdCgroup is not true.*-> fix: set SystemdCgroup = true/);
    const dir = mkdtempSync(join(base, "mismatch-"));
    const start = await runPodshim(podshimArgs(dir, { containerdSocket: bed.containerdSocket, baseDir: base, extraArgs: ["--cgroup-driver", "systemd"] }));
    expect(start.code).toBe(2);
    expect(start.stderr).toContain("SystemdCgroup");
  });
});
