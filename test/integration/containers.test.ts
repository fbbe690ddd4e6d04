// App containers inside pod sandboxes through the CRI socket: real runc containers joining the
// pause container's namespaces, output in CRI log files, exits tracked from containerd events.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { status as Status } from "@grpc/grpc-js";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { startPodshim, type PodshimHandle } from "../support/podshim.js";
import { statusOf } from "../support/cri-client.js";
import { testNetwork, type TestNetwork } from "../support/cni.js";
import { WEB_INDEX_HTML } from "../bed/images.js";

const bed = inject("bed");
const base = mkdtempSync(join(bed.tmpDir, "containers-"));
let net: TestNetwork;
let podshim: PodshimHandle;

const start = () => startPodshim({ containerdSocket: bed.containerdSocket, baseDir: base, cniConfDir: net.confDir, extraArgs: ["--pause-image", bed.images.pause], ...(podshim ? { dir: podshim.dir } : {}) });

beforeAll(async () => {
  net = testNetwork(base);
  podshim = await start();
  for (const image of [bed.images.busybox, bed.images.web, bed.images.userGroup]) {
    await podshim.cri.image("PullImage", { image: { image } }, 120_000);
  }
});
afterAll(async () => {
  if (podshim?.process.exitCode === null) {
    const { items } = await podshim.cri.runtime("ListPodSandbox", {}).catch(() => ({ items: [] }));
    for (const s of items) await podshim.cri.runtime("RemovePodSandbox", { pod_sandbox_id: s.id }, 60_000).catch(() => undefined);
  }
  await podshim?.cleanup();
  await net?.cleanup();
  rmSync(base, { recursive: true, force: true });
});

interface Pod {
  id: string;
  config: Record<string, unknown>;
  logDir: string;
}

async function runPod(name: string, extra: Record<string, unknown> = {}): Promise<Pod> {
  const uid = randomBytes(8).toString("hex");
  const logDir = join(base, "logs", `default_${name}_${uid}`);
  const config = {
    metadata: { name, uid, namespace: "default", attempt: 0 },
    hostname: name,
    log_directory: logDir,
    linux: { cgroup_parent: `${bed.cgroupParent}/pod-${uid.slice(0, 8)}`, security_context: { namespace_options: { network: "POD", pid: "CONTAINER", ipc: "POD" } } },
    ...extra,
  };
  const res = await podshim.cri.runtime("RunPodSandbox", { config }, 120_000);
  return { id: res.pod_sandbox_id, config, logDir };
}

async function removePod(pod: Pod): Promise<void> {
  await podshim.cri.runtime("StopPodSandbox", { pod_sandbox_id: pod.id }, 60_000);
  await podshim.cri.runtime("RemovePodSandbox", { pod_sandbox_id: pod.id }, 60_000);
}

let counter = 0;
async function create(pod: Pod, name: string, config: Record<string, unknown>): Promise<string> {
  const res = await podshim.cri.runtime("CreateContainer", {
    pod_sandbox_id: pod.id,
    sandbox_config: pod.config,
    config: { metadata: { name, attempt: 0 }, image: { image: bed.images.busybox }, log_path: `${name}/${counter++}.log`, labels: { "podshim.test/name": name }, ...config },
  }, 60_000);
  return res.container_id;
}

async function run(pod: Pod, name: string, config: Record<string, unknown>): Promise<string> {
  const id = await create(pod, name, config);
  await podshim.cri.runtime("StartContainer", { container_id: id }, 60_000);
  return id;
}

const status = async (id: string) => (await podshim.cri.runtime("ContainerStatus", { container_id: id, verbose: true })).status;

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function waitExited(id: string, timeoutMs = 20_000) {
  return waitFor(`container ${id} to exit`, async () => {
    const s = await status(id);
    return s.state === "CONTAINER_EXITED" ? s : undefined;
  }, timeoutMs);
}

interface LogRecord {
  time: string;
  stream: string;
  tag: string;
  content: string;
}

function logRecords(path: string): LogRecord[] {
  if (!existsSync(path)) return [];
  const text = readFileSync(path, "utf8");
  return text.split("\n").filter((l) => l !== "").map((line) => {
    const m = /^(\S+) (stdout|stderr) ([PF])(?::\S+)? (.*)$/s.exec(line);
    if (!m) throw new Error(`not a CRI log line: ${JSON.stringify(line.slice(0, 200))}`);
    return { time: m[1]!, stream: m[2]!, tag: m[3]!, content: m[4]! };
  });
}

/** The output as a reader (kubelet, crictl) reassembles it: P records join the next. */
function logText(path: string, stream?: string): string {
  return logRecords(path).filter((r) => !stream || r.stream === stream).map((r) => (r.tag === "P" ? r.content : `${r.content}\n`)).join("");
}

const logOf = async (id: string) => (await status(id)).log_path as string;

describe("containers in a pod", () => {
  it("runs a web server and a sidecar that fetches it over 127.0.0.1 and logs it", async () => {
    const pod = await runPod("web");
    const web = await run(pod, "web", { image: { image: bed.images.web } });
    const sidecar = await run(pod, "sidecar", {
      command: ["sh", "-c", "for i in $(seq 100); do wget -q -O- http://127.0.0.1:80/ && break; sleep 0.1; done; echo fetched; exec sleep 3600"],
    });
    const sidecarLog = await logOf(sidecar);
    expect(sidecarLog).toBe(join(pod.logDir, "sidecar", `${counter - 1}.log`));
    await waitFor("the sidecar to log the page", () => logText(sidecarLog).includes("fetched"));
    expect(logText(sidecarLog, "stdout")).toBe(`${WEB_INDEX_HTML}fetched\n`);

    const s = await status(web);
    expect(s.state).toBe("CONTAINER_RUNNING");
    expect(s.metadata.name).toBe("web");
    expect(BigInt(s.created_at)).toBeGreaterThan(0n);
    expect(BigInt(s.started_at)).toBeGreaterThanOrEqual(BigInt(s.created_at));
    expect(s.finished_at).toBe("0");
    expect(s.image.image).toBe(bed.images.web);
    expect(s.image_id).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(s.image_ref).toContain("@sha256:");
    expect(s.labels["podshim.test/name"]).toBe("web");
    expect(s.user.linux).toMatchObject({ uid: "0", gid: "0" });

    // One shim per pod: the app containers' processes are children of the pause container's shim.
    const ppid = (pid: number) => Number(/^PPid:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
    const pausePid = JSON.parse((await podshim.cri.runtime("PodSandboxStatus", { pod_sandbox_id: pod.id, verbose: true })).info.info).pid;
    const webPid = JSON.parse((await podshim.cri.runtime("ContainerStatus", { container_id: web, verbose: true })).info.info).pid;
    expect(webPid).toBeGreaterThan(0);
    expect(ppid(webPid)).toBe(ppid(pausePid));
    const { containers } = await podshim.cri.runtime("ListContainers", { filter: { pod_sandbox_id: pod.id } });
    expect(containers.map((c: { id: string }) => c.id).sort()).toEqual([web, sidecar].sort());
    const running = await podshim.cri.runtime("ListContainers", { filter: { state: { state: "CONTAINER_RUNNING" }, label_selector: { "podshim.test/name": "web" } } });
    expect(running.containers.map((c: { id: string }) => c.id)).toEqual([web]);
    const byPrefix = await podshim.cri.runtime("ListContainers", { filter: { id: web.slice(0, 12) } });
    expect(byPrefix.containers).toHaveLength(1);
    const pstatus = await podshim.cri.runtime("PodSandboxStatus", { pod_sandbox_id: pod.id });
    expect(pstatus.containers_statuses).toHaveLength(2);

    // StopPodSandbox stops the containers; RemovePodSandbox removes them.
    await podshim.cri.runtime("StopPodSandbox", { pod_sandbox_id: pod.id }, 60_000);
    expect((await status(web)).state).toBe("CONTAINER_EXITED");
    expect((await status(sidecar)).exit_code).toBe(137);
    await podshim.cri.runtime("RemovePodSandbox", { pod_sandbox_id: pod.id }, 60_000);
    expect((await statusOf(status(web))).code).toBe(Status.NOT_FOUND);
    // The kubelet owns the logs: they stay.
    expect(existsSync(sidecarLog)).toBe(true);
  });

  it("shares a host-path volume between two containers, read-only where asked", async () => {
    const pod = await runPod("volume");
    const vol = join(base, `vol-${randomBytes(4).toString("hex")}`);
    mkdirSync(vol);
    const writer = await run(pod, "writer", {
      command: ["sh", "-c", "echo shared-data > /data/file; exec sleep 3600"],
      mounts: [{ container_path: "/data", host_path: vol }],
    });
    const reader = await run(pod, "reader", {
      command: ["sh", "-c", "while [ ! -s /data/file ]; do sleep 0.1; done; cat /data/file; touch /data/other || echo refused; exec sleep 3600"],
      mounts: [{ container_path: "/data", host_path: vol, readonly: true }],
    });
    const log = await logOf(reader);
    // stdout and stderr are pumped separately: "refused" on stdout says nothing about stderr.
    await waitFor("the reader to read the file", () => logText(log, "stdout").includes("refused") && logText(log, "stderr").includes("Read-only file system"));
    expect(logText(log, "stdout")).toBe("shared-data\nrefused\n");
    expect(logText(log, "stderr")).toContain("Read-only file system");
    expect(readFileSync(join(vol, "file"), "utf8")).toBe("shared-data\n");
    expect((await status(writer)).mounts[0]).toMatchObject({ container_path: "/data", host_path: vol });

    const missing = await statusOf(create(pod, "missing", { command: ["true"], mounts: [{ container_path: "/data", host_path: join(base, "does-not-exist") }] }));
    expect(missing.code).toBe(Status.INVALID_ARGUMENT);
    expect(missing.details).toContain("does-not-exist");
    expect(existsSync(join(base, "does-not-exist"))).toBe(false);
    await removePod(pod);
  });

  it("reports exit codes 0, 1 and 42 with their reasons", async () => {
    const pod = await runPod("exits");
    const ids = await Promise.all([0, 1, 42].map((code) => run(pod, `exit-${code}`, { command: ["sh", "-c", `exit ${code}`] })));
    const got = await Promise.all(ids.map((id) => waitExited(id)));
    expect(got.map((s) => [s.exit_code, s.reason])).toEqual([[0, "Completed"], [1, "Error"], [42, "Error"]]);
    for (const s of got) {
      expect(BigInt(s.finished_at)).toBeGreaterThanOrEqual(BigInt(s.started_at));
      expect(BigInt(s.started_at)).toBeGreaterThan(0n);
    }
    // An exited container cannot start again; stopping it is a no-op.
    expect((await statusOf(podshim.cri.runtime("StartContainer", { container_id: ids[0] }))).code).toBe(Status.FAILED_PRECONDITION);
    await podshim.cri.runtime("StopContainer", { container_id: ids[0], timeout: 1 });
    await removePod(pod);
  });

  it("reports OOMKilled for a container over its memory limit", async () => {
    const pod = await runPod("oom");
    const limit = 32 * 1024 * 1024;
    const id = await run(pod, "hog", {
      // tail keeps a whole line in memory: 256 MiB without a newline.
      command: ["sh", "-c", "head -c 268435456 /dev/zero | tail"],
      linux: { resources: { memory_limit_in_bytes: limit, memory_swap_limit_in_bytes: limit } },
    });
    const s = await waitExited(id, 60_000);
    expect(s.exit_code).toBe(137);
    expect(s.reason).toBe("OOMKilled");
    expect(s.resources.linux.memory_limit_in_bytes).toBe(String(limit));
    await removePod(pod);
  });

  it("splits a 40 KiB line into partial records that reassemble exactly", async () => {
    const pod = await runPod("longline");
    const id = await run(pod, "long", { command: ["sh", "-c", "head -c 40960 /dev/zero | tr '\\0' x; echo; echo done >&2"] });
    await waitExited(id);
    const path = await logOf(id);
    const records = logRecords(path).filter((r) => r.stream === "stdout");
    expect(records.map((r) => [r.tag, Buffer.byteLength(r.content)])).toEqual([["P", 16384], ["P", 16384], ["F", 40960 - 2 * 16384]]);
    expect(logText(path, "stdout")).toBe(`${"x".repeat(40960)}\n`);
    expect(logText(path, "stderr")).toBe("done\n");
    for (const r of logRecords(path)) expect(r.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/);
    await removePod(pod);
  });

  it("writes to a new file after ReopenContainerLog", async () => {
    const pod = await runPod("reopen");
    const id = await run(pod, "ticker", { command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"] });
    const path = await logOf(id);
    await waitFor("first ticks", () => logRecords(path).length >= 3);
    const rotated = `${path}.20261123-000000`;
    renameSync(path, rotated);
    await podshim.cri.runtime("ReopenContainerLog", { container_id: id });
    const sizeAfterReopen = statSync(rotated).size;
    await waitFor("ticks in the new file", () => logRecords(path).length >= 3);
    await new Promise((r) => setTimeout(r, 500));
    expect(statSync(rotated).size).toBe(sizeAfterReopen);
    expect(logText(path)).toMatch(/^tick \d+\n/);
    await podshim.cri.runtime("StopContainer", { container_id: id, timeout: 2 }, 30_000);
    // The shell dies of SIGTERM: 128 + 15.
    expect((await status(id)).exit_code).toBe(143);
    expect((await statusOf(podshim.cri.runtime("ReopenContainerLog", { container_id: id }))).code).toBe(Status.FAILED_PRECONDITION);
    await removePod(pod);
  });

  it("applies UpdateContainerResources to the running container's cgroup", async () => {
    const pod = await runPod("resize");
    const id = await run(pod, "app", { command: ["sleep", "3600"], linux: { resources: { memory_limit_in_bytes: 64 << 20, cpu_shares: 512 } } });
    const cgroup = (controller: string, file: string) => readFileSync(`/sys/fs/cgroup/${controller}${(pod.config.linux as { cgroup_parent: string }).cgroup_parent}/${id}/${file}`, "utf8").trim();
    expect(cgroup("memory", "memory.limit_in_bytes")).toBe(String(64 << 20));
    expect(cgroup("cpu", "cpu.shares")).toBe("512");
    await podshim.cri.runtime("UpdateContainerResources", { container_id: id, linux: { memory_limit_in_bytes: 128 << 20, cpu_shares: 1024, cpu_quota: 50000, cpu_period: 100000 } });
    expect(cgroup("memory", "memory.limit_in_bytes")).toBe(String(128 << 20));
    expect(cgroup("cpu", "cpu.shares")).toBe("1024");
    expect(cgroup("cpu", "cpu.cfs_quota_us")).toBe("50000");
    expect((await status(id)).resources.linux).toMatchObject({ memory_limit_in_bytes: String(128 << 20), cpu_shares: "1024", cpu_quota: "50000" });
    await podshim.cri.runtime("StopContainer", { container_id: id, timeout: 0 });
    const exited = await statusOf(podshim.cri.runtime("UpdateContainerResources", { container_id: id, linux: { cpu_shares: 2 } }));
    expect(exited.code).toBe(Status.FAILED_PRECONDITION);
    await removePod(pod);
  });

  it("answers a retried create with the created container, and refuses the name once it has run, until it is removed", async () => {
    const pod = await runPod("names");
    const first = await create(pod, "app", { command: ["true"] });
    // The kubelet retrying a create its deadline cut off gets the container the first made.
    expect(await create(pod, "app", { command: ["true"] })).toBe(first);
    await podshim.cri.runtime("StartContainer", { container_id: first });
    const again = await statusOf(create(pod, "app", { command: ["true"] }));
    expect(again.code).toBe(Status.ALREADY_EXISTS);
    expect(again.details).toContain(first);
    // The kubelet's restart of a container is the next attempt.
    const next = await create(pod, "app", { metadata: { name: "app", attempt: 1 }, command: ["true"] });
    await podshim.cri.runtime("RemoveContainer", { container_id: first });
    await podshim.cri.runtime("RemoveContainer", { container_id: first });
    const third = await create(pod, "app", { command: ["true"] });
    expect(third).not.toBe(first);
    expect(next).not.toBe(first);
    await removePod(pod);
  });

  it("answers clear errors for unknown ids and bad configs", async () => {
    const pod = await runPod("errors");
    expect((await statusOf(status("0".repeat(64)))).code).toBe(Status.NOT_FOUND);
    expect((await statusOf(podshim.cri.runtime("StartContainer", { container_id: "nope" }))).code).toBe(Status.NOT_FOUND);
    await podshim.cri.runtime("StopContainer", { container_id: "nope", timeout: 0 });
    await podshim.cri.runtime("RemoveContainer", { container_id: "nope" });
    expect((await statusOf(create({ ...pod, id: "f".repeat(64) }, "x", { command: ["true"] }))).code).toBe(Status.NOT_FOUND);
    expect((await statusOf(create(pod, "noimage", { image: { image: `${bed.registryHost}/not/pulled:1` } }))).code).toBe(Status.NOT_FOUND);
    const groupOnly = await statusOf(create(pod, "grouponly", { command: ["id"], linux: { security_context: { run_as_group: { value: 5 } } } }));
    expect(groupOnly.code).toBe(Status.INVALID_ARGUMENT);
    await removePod(pod);
  });
});

describe("identity and security context", () => {
  async function idOutput(pod: Pod, name: string, extra: Record<string, unknown>): Promise<{ out: string; status: Record<string, any> }> {
    const id = await run(pod, name, { command: ["id"], ...extra });
    const s = await waitExited(id);
    return { out: logText(s.log_path, "stdout").trim(), status: s };
  }

  it("runs as RunAsUser, RunAsUsername, RunAsGroup and supplemental groups", async () => {
    const pod = await runPod("users");
    const byUid = await idOutput(pod, "uid", { linux: { security_context: { run_as_user: { value: 1001 } } } });
    expect(byUid.out).toBe("uid=1001 gid=0(root) groups=0(root)");
    const byName = await idOutput(pod, "name", { linux: { security_context: { run_as_username: "nobody" } } });
    expect(byName.out).toBe("uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)");
    const withGroups = await idOutput(pod, "groups", { linux: { security_context: { run_as_user: { value: 1000 }, run_as_group: { value: 1000 }, supplemental_groups: [1234, 5678] } } });
    expect(withGroups.out).toBe("uid=1000(test) gid=1000(test) groups=1000(test),1234,5678,50000(extra)");
    expect(withGroups.status.user.linux.supplemental_groups).toEqual(["1000", "1234", "5678", "50000"]);
    const imageUser = await idOutput(pod, "image-user", { image: { image: bed.images.userGroup } });
    expect(imageUser.out).toBe("uid=1000(test) gid=50000(extra) groups=50000(extra)");
    await removePod(pod);
  });

  it("enforces a readonly rootfs, a dropped capability, masked and readonly paths and seccomp", async () => {
    const pod = await runPod("security");
    const roId = await run(pod, "ro", { command: ["sh", "-c", "touch /test.go; touch /tmp/ok && echo tmp-writable"], linux: { security_context: { readonly_rootfs: true } } });
    const ro = await waitExited(roId);
    expect(logText(ro.log_path, "stderr")).toContain("touch: /test.go: Read-only file system");

    const capId = await run(pod, "nochown", { command: ["sh", "-c", "chown 1000 /tmp; grep CapBnd /proc/self/status"], linux: { security_context: { capabilities: { drop_capabilities: ["CHOWN"] } } } });
    const cap = await waitExited(capId);
    expect(logText(cap.log_path, "stderr")).toContain("Operation not permitted");
    const capBnd = BigInt(`0x${/CapBnd:\s*([0-9a-f]+)/.exec(logText(cap.log_path, "stdout"))![1]}`);
    expect(capBnd & 1n).toBe(0n);
    expect(capBnd & (1n << 5n)).toBe(1n << 5n); // CAP_KILL stays

    const maskId = await run(pod, "masked", { command: ["sh", "-c", "cat /etc/group; echo end; touch /tmp/x"], linux: { security_context: { masked_paths: ["/etc/group"], readonly_paths: ["/tmp"] } } });
    const mask = await waitExited(maskId);
    expect(logText(mask.log_path, "stdout")).toBe("end\n");
    expect(logText(mask.log_path, "stderr")).toContain("touch: /tmp/x: Read-only file system");

    const seccompDefault = await run(pod, "seccomp-default", { command: ["grep", "Seccomp:", "/proc/self/status"], linux: { security_context: { seccomp: { profile_type: "RuntimeDefault" } } } });
    expect(logText((await waitExited(seccompDefault)).log_path)).toMatch(/Seccomp:\s+2/);
    const seccompNone = await run(pod, "seccomp-none", { command: ["grep", "Seccomp:", "/proc/self/status"] });
    expect(logText((await waitExited(seccompNone)).log_path)).toMatch(/Seccomp:\s+0/);

    const profile = join(base, "no-chmod.json");
    writeFileSync(profile, JSON.stringify({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["chmod", "fchmodat", "fchmod"], action: "SCMP_ACT_ERRNO" }] }));
    const localhost = await run(pod, "seccomp-localhost", { command: ["sh", "-c", "chmod 700 /tmp"], linux: { security_context: { seccomp: { profile_type: "Localhost", localhost_ref: profile } } } });
    const local = await waitExited(localhost);
    expect(local.exit_code).toBe(1);
    expect(logText(local.log_path, "stderr")).toContain("Operation not permitted");
    await removePod(pod);
  });
});

describe("podshim restarts", () => {
  it("keeps statuses, exit codes and logs of containers across a kill -9", async () => {
    const pod = await runPod("restart");
    const done = await run(pod, "done", { command: ["sh", "-c", "exit 3"] });
    await waitExited(done);
    const ticker = await run(pod, "ticker", { command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"] });
    const later = await run(pod, "later", { command: ["sh", "-c", "sleep 1; echo bye; exit 7"] });
    const tickerLog = await logOf(ticker);
    await waitFor("ticks", () => logRecords(tickerLog).length >= 2);

    await podshim.stop("SIGKILL");
    await new Promise((r) => setTimeout(r, 1500));
    podshim.cri.close();
    podshim = await start();

    expect((await status(done)).exit_code).toBe(3);
    const l = await waitExited(later);
    expect([l.exit_code, l.reason]).toEqual([7, "Error"]);
    // Its "bye" is lost: the shim drops a FIFO's contents when the process exits and nobody
    // reads (containerd's own CRI plugin loses it the same way across its restart).
    expect((await status(ticker)).state).toBe("CONTAINER_RUNNING");
    const before = logRecords(tickerLog).length;
    await waitFor("ticks after the restart", () => logRecords(tickerLog).length >= before + 3);
    // Nothing lost or mangled: consecutive tick numbers.
    const ticks = logText(tickerLog).trim().split("\n").map((t) => Number(t.split(" ")[1]));
    expect(ticks).toEqual(ticks.map((_, i) => i));
    await podshim.cri.runtime("StopContainer", { container_id: ticker, timeout: 5 }, 30_000);
    expect((await status(ticker)).exit_code).toBe(143);
    await removePod(pod);
  });
});
