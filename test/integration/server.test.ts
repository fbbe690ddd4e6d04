// The CRI server on a real containerd: identity, readiness conditions, socket ownership,
// graceful stop and start-up errors, all through the socket the kubelet would use.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { status as Status } from "@grpc/grpc-js";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startContainerd, type ContainerdHandle } from "../bed/containerd.js";
import { runPodshim, startPodshim, type PodshimHandle } from "../support/podshim.js";
import { statusOf } from "../support/cri-client.js";

const bed = inject("bed");
const base = mkdtempSync(join(bed.tmpDir, "server-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

function condition(res: any, type: string) {
  return res.status.conditions.find((c: any) => c.type === type);
}

async function eventually<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T;
  for (;;) {
    last = await fn();
    if (ok(last)) return last;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(last)} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("a running podshim", () => {
  let podshim: PodshimHandle;
  beforeAll(async () => {
    podshim = await startPodshim({ containerdSocket: bed.containerdSocket, baseDir: base });
  });
  afterAll(async () => podshim?.cleanup());

  it("answers Version as a CRI v1 runtime named podshim", async () => {
    const v = await podshim.cri.runtime("Version", { version: "v1" });
    expect(v).toMatchObject({ version: "0.1.0", runtime_name: "podshim", runtime_api_version: "v1" });
    expect(v.runtime_version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("serves its socket with mode 0660", () => {
    const st = statSync(podshim.socket);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
  });

  it("is RuntimeReady, and NetworkReady only once a CNI config is there", async () => {
    const before = await podshim.cri.runtime("Status", {});
    expect(condition(before, "RuntimeReady")).toMatchObject({ status: true });
    expect(condition(before, "NetworkReady")).toMatchObject({ status: false, reason: "NetworkPluginNotReady" });
    expect(condition(before, "NetworkReady").message).toContain("no CNI network config");

    const netd = join(podshim.dir, "net.d");
    mkdirSync(netd, { recursive: true });
    writeFileSync(join(netd, "10-test.conflist"), JSON.stringify({
      cniVersion: "1.0.0", name: "podshim-test",
      plugins: [{ type: "bridge", bridge: "pstest0", isGateway: true, ipMasq: true, ipam: { type: "host-local", ranges: [[{ subnet: "10.99.0.0/24" }]] } }, { type: "portmap", capabilities: { portMappings: true } }],
    }));
    const after = await eventually("NetworkReady", () => podshim.cri.runtime("Status", {}), (r) => condition(r, "NetworkReady").status === true);
    expect(condition(after, "NetworkReady")).toMatchObject({ status: true, reason: "", message: "" });
  });

  it("gives details in verbose Status", async () => {
    const res = await podshim.cri.runtime("Status", { verbose: true });
    const containerd = JSON.parse(res.info.containerd);
    expect(containerd.socket).toBe(bed.containerdSocket);
    expect(containerd.version).toMatch(/\d+\.\d+/);
    expect(JSON.parse(res.info.config).restrictOomScoreAdj).toBe(true);
    expect(res.runtime_handlers.map((h: any) => h.name)).toContain("");
  });

  it("reports the cgroupfs driver in RuntimeConfig", async () => {
    const res = await podshim.cri.runtime("RuntimeConfig", {});
    expect(res.linux.cgroup_driver).toBe("CGROUPFS");
  });

  it("keeps the pod CIDR from UpdateRuntimeConfig and refuses a malformed one", async () => {
    await podshim.cri.runtime("UpdateRuntimeConfig", { runtime_config: { network_config: { pod_cidr: "10.244.1.0/24" } } });
    const res = await podshim.cri.runtime("Status", { verbose: true });
    expect(JSON.parse(res.info.cni).podCidr).toEqual(["10.244.1.0/24"]);
    const bad = await statusOf(podshim.cri.runtime("UpdateRuntimeConfig", { runtime_config: { network_config: { pod_cidr: "10.244.1.0" } } }));
    expect(bad.code).toBe(Status.INVALID_ARGUMENT);
    expect(bad.details).toContain('pod CIDR "10.244.1.0"');
  });

  it("answers UNIMPLEMENTED, naming the RPC and the reason, for what it does not support", async () => {
    const res = await statusOf(podshim.cri.runtime("CheckpointContainer", { container_id: "x" }));
    expect(res.code).toBe(Status.UNIMPLEMENTED);
    expect(res.details).toMatch(/^CheckpointContainer is not supported by podshim: it has no CRIU/);
  });

  it("refuses a second podshim on the same socket and keeps serving", async () => {
    const second = await runPodshim([
      "--listen", podshim.socket, "--containerd", bed.containerdSocket,
      "--root", join(base, "second-root"), "--state", join(base, "second-state"), "--config", "/dev/null",
    ]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`another server is already listening on ${podshim.socket}`);
    expect(existsSync(podshim.socket)).toBe(true);
    await expect(podshim.cri.runtime("Version", {})).resolves.toMatchObject({ runtime_name: "podshim" });
  });
});

describe("podshim and a containerd that goes away", () => {
  let containerd: ContainerdHandle;
  let podshim: PodshimHandle;
  beforeAll(async () => {
    containerd = await startContainerd({ dir: join(base, "own-containerd") });
    podshim = await startPodshim({ containerdSocket: containerd.socket, baseDir: base });
  });
  afterAll(async () => {
    await podshim?.cleanup();
    await containerd?.cleanup();
  });

  it("reports RuntimeReady false while containerd is stopped and true again after it restarts", async () => {
    expect(condition(await podshim.cri.runtime("Status", {}), "RuntimeReady").status).toBe(true);
    await containerd.stop();
    const down = await eventually("RuntimeReady false", () => podshim.cri.runtime("Status", {}), (r) => !condition(r, "RuntimeReady").status);
    expect(condition(down, "RuntimeReady")).toMatchObject({ reason: "ContainerdUnreachable" });
    expect(condition(down, "RuntimeReady").message).toContain(`containerd is not reachable at ${containerd.socket}`);
    // Version does not depend on containerd.
    await expect(podshim.cri.runtime("Version", {})).resolves.toMatchObject({ runtime_name: "podshim" });

    await containerd.restart();
    await eventually("RuntimeReady true", () => podshim.cri.runtime("Status", {}), (r) => condition(r, "RuntimeReady").status === true);
    expect(podshim.process.exitCode).toBeNull();
  });

  it("starts while containerd is down and becomes ready when it comes up", async () => {
    await containerd.stop();
    const late = await startPodshim({ containerdSocket: containerd.socket, baseDir: base, waitFor: "listening" });
    try {
      const recovering = condition(await late.cri.runtime("Status", {}), "RuntimeReady");
      expect(recovering).toMatchObject({ status: false, reason: "RecoveringState" });
      expect(recovering.message).toContain("containerd is not reachable");
      await expect(late.cri.runtime("ListPodSandbox", {})).rejects.toMatchObject({ code: 14, details: expect.stringContaining("recovering state") });
      await containerd.restart();
      await eventually("RuntimeReady true", () => late.cri.runtime("Status", {}), (r) => condition(r, "RuntimeReady").status === true);
    } finally {
      await late.cleanup();
    }
  });
});

describe("start and stop", () => {
  it("SIGTERM drains, exits 0 and leaves no socket behind", async () => {
    const p = await startPodshim({ containerdSocket: bed.containerdSocket, baseDir: base });
    try {
      expect(existsSync(p.socket)).toBe(true);
      expect(await p.stop("SIGTERM")).toBe(0);
      expect(existsSync(p.socket)).toBe(false);
      expect(p.output()).toContain("stopped");
    } finally {
      await p.cleanup();
    }
  });

  it("replaces a stale socket left by a podshim that was killed, and keeps the pod CIDR", async () => {
    const first = await startPodshim({ containerdSocket: bed.containerdSocket, baseDir: base });
    await first.cri.runtime("UpdateRuntimeConfig", { runtime_config: { network_config: { pod_cidr: "10.244.7.0/24" } } });
    await first.stop("SIGKILL");
    first.cri.close();
    expect(existsSync(first.socket)).toBe(true);
    const again = await startPodshim({ containerdSocket: bed.containerdSocket, baseDir: base, dir: first.dir });
    try {
      const res = await again.cri.runtime("Status", { verbose: true });
      expect(JSON.parse(res.info.cni).podCidr).toEqual(["10.244.7.0/24"]);
    } finally {
      await again.cleanup();
    }
  });

  it.each([
    [["--log-level", "loud"], "podshim: --log-level must be one of"],
    [["--listen", "relative.sock"], "podshim: --listen must be an absolute path"],
    [["--nope"], "podshim: unknown flag --nope"],
  ])("a bad flag %j stops start-up with one clear line", async (args, message) => {
    const res = await runPodshim([...args, "--config", "/dev/null"]);
    expect(res.code).toBe(2);
    expect(res.stderr.trim().split("\n")).toHaveLength(1);
    expect(res.stderr).toContain(message);
  });

  it("prints --help with every flag", async () => {
    const res = await runPodshim(["--help"]);
    expect(res.code).toBe(0);
    for (const flag of ["--listen", "--containerd", "--namespace", "--root", "--state", "--cni-conf-dir", "--cni-bin-dir", "--pause-image", "--registry-config-dir", "--stream-address", "--restrict-oom-score-adj", "--log-level", "--config"]) {
      expect(res.stdout).toContain(flag);
    }
  });
});
