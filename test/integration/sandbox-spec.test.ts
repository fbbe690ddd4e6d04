// The sandbox spec is not just plausible JSON: written as config.json of an OCI bundle whose rootfs
// holds only the pause program, runc runs it on this host (no CAP_SYS_RESOURCE, cgroup v1) and
// the process ends up in the namespaces, cgroup, mounts and identity the spec describes.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, inject, it } from "vitest";
import { NamespaceMode, PodSandboxConfig } from "../../src/gen/cri/runtime/v1/api.js";
import type { ImageConfig } from "../../src/distribution/manifest.js";
import type { Spec } from "../../src/oci/spec-types.js";
import { renderResolvConf } from "../../src/sandbox/sandbox-files.js";
import { buildSandboxSpec } from "../../src/sandbox/sandbox-spec.js";
import { cgroupDirs, removeCgroups, run, runOk, sleep } from "../bed/proc.js";
import "../bed/types.js";

const bed = inject("bed");
const suffix = randomBytes(4).toString("hex");
const work = mkdtempSync(join(bed.tmpDir, "sandbox-spec-"));
const runcRoot = join(work, "runc");
const cgroupParent = `${bed.cgroupParent}/sandbox-spec-${suffix}`;
const netnsName = `podshim-spec-${suffix}`;
const netnsPath = `/run/netns/${netnsName}`;
let netnsCreated = false;
const started: string[] = [];

// What the built-in and the bed's pause images declare.
const PAUSE_IMAGE: ImageConfig = { config: { Entrypoint: ["/pause"], WorkingDir: "/" }, rootfs: { type: "layers", diff_ids: [] } };
/** Docker's default set as a CapBnd mask: bits 0,1,3-8,10,13,18,27,29,31. */
const DEFAULT_CAP_MASK = "00000000a80425fb";

afterAll(async () => {
  for (const id of started) {
    await run("runc", ["--root", runcRoot, "kill", id, "KILL"]);
    await run("runc", ["--root", runcRoot, "delete", "--force", id]);
  }
  if (netnsCreated) await runOk("ip", ["netns", "delete", netnsName]);
  await removeCgroups(cgroupParent);
  rmSync(work, { recursive: true, force: true });
  expect(await cgroupDirs(cgroupParent)).toEqual([]);
});

function bundle(name: string, spec: Spec): string {
  const dir = join(work, name);
  mkdirSync(join(dir, "rootfs"), { recursive: true });
  copyFileSync(bed.pauseBinary, join(dir, "rootfs", "pause"));
  chmodSync(join(dir, "rootfs", "pause"), 0o755);
  writeFileSync(join(dir, "config.json"), JSON.stringify(spec, null, 2));
  return dir;
}

/** `runc run -d`: the container keeps runc's stdio, so that goes to a file rather than to pipes
 * that would stay open as long as the pause process lives. */
async function runcRun(id: string, bundleDir: string): Promise<void> {
  const logPath = join(bundleDir, "runc.out");
  const fd = openSync(logPath, "w");
  started.push(id);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn("runc", ["--root", runcRoot, "run", "-d", "--bundle", bundleDir, id], { stdio: ["ignore", fd, fd] });
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      child.on("error", reject);
      child.on("exit", (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    if (code !== 0) throw new Error(`runc run ${id} exited ${code}: ${readFileSync(logPath, "utf8")}`);
  } finally {
    closeSync(fd);
  }
}

async function runcState(id: string): Promise<{ status: string; pid: number }> {
  const res = await runOk("runc", ["--root", runcRoot, "state", id]);
  return JSON.parse(res.stdout) as { status: string; pid: number };
}

async function stopAndDelete(id: string): Promise<void> {
  await runOk("runc", ["--root", runcRoot, "kill", id, "KILL"]);
  for (let i = 0; i < 100 && (await runcState(id)).status !== "stopped"; i++) await sleep(50);
  await runOk("runc", ["--root", runcRoot, "delete", id]);
  started.splice(started.indexOf(id), 1);
  expect((await run("runc", ["--root", runcRoot, "state", id])).code).not.toBe(0);
}

const status = (pid: number, field: string): string => {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith(`${field}:`));
  return line?.slice(field.length + 1).trim() ?? "";
};

/** mountinfo of the container: mount point -> [per-mount options, fs type]. */
function mounts(pid: number): Map<string, { options: string[]; fstype: string }> {
  const out = new Map<string, { options: string[]; fstype: string }>();
  for (const line of readFileSync(`/proc/${pid}/mountinfo`, "utf8").split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const f = left.split(" ");
    out.set(f[4]!, { options: f[5]!.split(","), fstype: right.split(" ")[0]! });
  }
  return out;
}

/** The cgroup v1 path of pid in one controller's hierarchy. */
function cgroupOf(pid: number, controller: string): string | undefined {
  for (const line of readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n")) {
    const [, controllers, path] = line.split(":");
    if (controllers?.split(",").includes(controller)) return path;
  }
  return undefined;
}

const currentOomScoreAdj = (): number => Number(readFileSync("/proc/self/oom_score_adj", "utf8").trim());

describe("buildSandboxSpec under runc", () => {
  it("runs a pod sandbox in its own namespaces, joined to the pod netns", async () => {
    await runOk("ip", ["netns", "add", netnsName]);
    netnsCreated = true;
    const resolvConf = join(work, "resolv.conf");
    writeFileSync(resolvConf, renderResolvConf({ servers: ["10.10.10.10"], searches: ["google.com"], options: ["ndots:8"] }, ""));
    const id = `spec-pod-${suffix}`;
    const spec = buildSandboxSpec({
      id,
      config: PodSandboxConfig.fromPartial({
        metadata: { name: "spec-pod", namespace: "default", uid: suffix },
        hostname: "spec-hostname",
        logDirectory: join(work, "logs"),
        linux: {
          cgroupParent,
          sysctls: { "kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "100", "net.ipv4.ip_forward": "1" },
          securityContext: { supplementalGroups: [1234n] },
        },
      }),
      image: PAUSE_IMAGE,
      netnsPath,
      runtimeHandler: "",
      cgroupDriver: "cgroupfs",
      restrictOomScoreAdj: true,
      currentOomScoreAdj: currentOomScoreAdj(),
      files: { hostname: join(work, "hostname"), hosts: join(work, "hosts"), resolvConf },
      unprivilegedPorts: true,
    });
    await runcRun(id, bundle("pod", spec));

    const state = await runcState(id);
    expect(state.status).toBe("running");
    const pid = state.pid;

    // Namespaces: its own uts, ipc, pid, mount; the network namespace is the pinned one.
    expect((await runOk("nsenter", ["-t", String(pid), "-u", "hostname"])).stdout.trim()).toBe("spec-hostname");
    expect(readlinkSync(`/proc/${pid}/ns/net`)).toBe(`net:[${statSync(netnsPath).ino}]`);
    for (const t of ["uts", "ipc", "pid", "mnt"]) expect(readlinkSync(`/proc/${pid}/ns/${t}`)).not.toBe(readlinkSync(`/proc/self/ns/${t}`));
    expect(status(pid, "NSpid").split(/\s+/).at(-1)).toBe("1");

    // Identity and privileges.
    expect(status(pid, "Uid").split(/\s+/)[0]).toBe("0");
    expect(status(pid, "Groups")).toBe("1234");
    expect(status(pid, "CapBnd")).toBe(DEFAULT_CAP_MASK);
    expect(status(pid, "CapEff")).toBe(DEFAULT_CAP_MASK);
    expect(status(pid, "NoNewPrivs")).toBe("1");
    expect(Number(readFileSync(`/proc/${pid}/oom_score_adj`, "utf8"))).toBe(spec.process.oomScoreAdj);

    // Sysctls land in the pod's namespaces, not the node's.
    const inNs = async (flag: string, file: string) => (await runOk("nsenter", ["-t", String(pid), flag, "cat", file])).stdout.trim();
    expect(await inNs("-i", "/proc/sys/kernel/shm_rmid_forced")).toBe("1");
    expect(await inNs("-i", "/proc/sys/fs/mqueue/msg_max")).toBe("100");
    expect(await inNs("-n", "/proc/sys/net/ipv4/ip_forward")).toBe("1");
    expect(await inNs("-n", "/proc/sys/net/ipv4/ip_unprivileged_port_start")).toBe("0");

    // Mounts: read-only root, private shm tmpfs, resolv.conf bound read-only, sysfs read-only,
    // no /run, nothing for /etc/hosts or /etc/hostname.
    const m = mounts(pid);
    expect(m.get("/")?.options).toContain("ro");
    expect(m.get("/dev/shm")).toMatchObject({ fstype: "tmpfs" });
    expect(m.get("/dev/shm")?.options).toEqual(expect.arrayContaining(["rw", "nosuid", "nodev", "noexec"]));
    expect(m.get("/etc/resolv.conf")?.options).toContain("ro");
    expect(m.get("/sys")?.options).toContain("ro");
    for (const absent of ["/run", "/etc/hosts", "/etc/hostname", "/sys/fs/cgroup"]) expect(m.has(absent)).toBe(false);
    expect(readFileSync(`/proc/${pid}/root/etc/resolv.conf`, "utf8")).toBe("search google.com\nnameserver 10.10.10.10\noptions ndots:8\n");
    // Masked (runc skips paths this kernel lacks, such as /proc/kcore on some VMs).
    expect(m.get("/proc/keys")).toBeDefined();
    expect(m.get("/proc/acpi")).toMatchObject({ fstype: "tmpfs" });
    expect(m.get("/proc/sys")?.options).toContain("ro");

    // cgroup: where the spec says, with runc's device allow-list after our deny-all, 2 shares.
    const cg = cgroupOf(pid, "devices");
    expect(cg).toBe(spec.linux.cgroupsPath);
    const devices = readFileSync(`/sys/fs/cgroup/devices${cg}/devices.list`, "utf8");
    expect(devices).toContain("c 1:3 rwm");
    expect(devices).not.toContain("a *:* rwm");
    expect(readFileSync(`/sys/fs/cgroup/cpu${cgroupOf(pid, "cpu")}/cpu.shares`, "utf8").trim()).toBe("2");

    await stopAndDelete(id);
    expect(await cgroupDirs(spec.linux.cgroupsPath)).toEqual([]);
  });

  it("runs a privileged sandbox on the node's network, PID and IPC namespaces", async () => {
    const id = `spec-host-${suffix}`;
    const resolvConf = join(work, "host-resolv.conf");
    writeFileSync(resolvConf, "nameserver 127.0.0.53\n");
    const spec = buildSandboxSpec({
      id,
      config: PodSandboxConfig.fromPartial({
        metadata: { name: "spec-host", namespace: "kube-system", uid: suffix },
        logDirectory: join(work, "logs"),
        linux: {
          cgroupParent,
          securityContext: {
            privileged: true,
            runAsUser: { value: 65535n },
            runAsGroup: { value: 65535n },
            namespaceOptions: { network: NamespaceMode.NODE, pid: NamespaceMode.NODE, ipc: NamespaceMode.NODE },
          },
        },
      }),
      image: PAUSE_IMAGE,
      runtimeHandler: "",
      cgroupDriver: "cgroupfs",
      restrictOomScoreAdj: true,
      currentOomScoreAdj: currentOomScoreAdj(),
      files: { hostname: join(work, "hostname"), hosts: join(work, "hosts"), resolvConf },
    });
    await runcRun(id, bundle("host", spec));

    const state = await runcState(id);
    expect(state.status).toBe("running");
    const pid = state.pid;
    for (const t of ["net", "uts", "ipc", "pid"]) expect(readlinkSync(`/proc/${pid}/ns/${t}`)).toBe(readlinkSync(`/proc/self/ns/${t}`));
    expect(readlinkSync(`/proc/${pid}/ns/mnt`)).not.toBe(readlinkSync("/proc/self/ns/mnt"));
    expect(status(pid, "Uid").split(/\s+/)[0]).toBe("65535");
    expect(status(pid, "Gid").split(/\s+/)[0]).toBe("65535");
    expect(status(pid, "Seccomp")).toBe("0");

    const m = mounts(pid);
    expect(m.get("/sys")?.options).toContain("rw");
    // The node's /dev/shm, bound read-only for the pause container only.
    expect(m.get("/dev/shm")?.options).toContain("ro");
    expect(statSync(`/proc/${pid}/root/dev/shm`).ino).toBe(statSync("/dev/shm").ino);

    await stopAndDelete(id);
  });
});
