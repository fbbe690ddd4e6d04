// RuntimeDefault seccomp on a real runc: ordinary programs (the busybox set, a 32-bit static
// binary) run; namespace, mount, keyring, BPF, kexec and ptrace calls are refused unless the
// capability that opens them is held; a call the profile does not name is refused. The probe is
// a small static C program (test/bed/sysprobe) built here and bind-mounted into the containers.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { status as Status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { testNetwork, type TestNetwork } from "../support/cni.js";
import { statusOf } from "../support/cri-client.js";
import { startPodshim, type PodshimHandle } from "../support/podshim.js";

const bed = inject("bed");
const SOURCE = fileURLToPath(new URL("../bed/sysprobe/sysprobe.c", import.meta.url));
const RUNTIME_DEFAULT = { profile_type: 0 };

let base: string;
let net: TestNetwork;
let podshim: PodshimHandle;
let pod: string;
let podConfig: Record<string, unknown>;
let probeDir: string;
let have32 = false;
let why32 = "";

function build(out: string, extra: string[]): { ok: boolean; why: string } {
  const r = spawnSync("gcc", [...extra, "-static", "-O2", "-o", out, SOURCE], { encoding: "utf8" });
  return { ok: r.status === 0, why: r.error?.message ?? r.stderr.split("\n").find((l) => l.includes("error")) ?? `gcc exited ${r.status}` };
}

beforeAll(async () => {
  base = mkdtempSync(join(bed.tmpDir, "seccomp-"));
  probeDir = join(base, "probe");
  mkdirSync(probeDir);
  const b64 = build(join(probeDir, "sysprobe"), []);
  if (!b64.ok) throw new Error(`cannot build the syscall probe: ${b64.why}`);
  const b32 = build(join(probeDir, "sysprobe32"), ["-m32"]);
  have32 = b32.ok;
  why32 = b32.ok ? "" : `gcc -m32 -static failed (${b32.why}); install gcc-multilib`;
  if (have32) {
    // Some kernels are built without IA32 emulation (or boot with it off): exec fails with
    // ENOEXEC whatever seccomp says, so there is nothing 32-bit to test.
    const run = spawnSync(join(probeDir, "sysprobe32"), ["hello"], { encoding: "utf8" });
    have32 = run.status === 0;
    if (!have32) why32 = `this kernel cannot run 32-bit x86 programs (${run.error?.message ?? `exit ${run.status}`}): no IA32 emulation`;
  }
  net = testNetwork(base);
  podshim = await startPodshim({ containerdSocket: bed.containerdSocket, baseDir: base, cniConfDir: net.confDir, extraArgs: ["--pause-image", bed.images.pause] });
  await podshim.cri.image("PullImage", { image: { image: bed.images.busybox } }, 120_000);
  const uid = randomBytes(8).toString("hex");
  // The pause container runs under RuntimeDefault too.
  podConfig = {
    metadata: { name: "seccomp", uid, namespace: "default", attempt: 0 },
    log_directory: join(base, "logs"),
    linux: { cgroup_parent: `${bed.cgroupParent}/pod-${uid.slice(0, 8)}`, security_context: { seccomp: RUNTIME_DEFAULT } },
  };
  pod = (await podshim.cri.runtime("RunPodSandbox", { config: podConfig }, 120_000)).pod_sandbox_id;
}, 180_000);

afterAll(async () => {
  if (pod) await podshim.cri.runtime("RemovePodSandbox", { pod_sandbox_id: pod }, 60_000).catch((err: unknown) => console.error("RemovePodSandbox failed", err));
  await podshim?.cleanup();
  await net?.cleanup();
  if (base) rmSync(base, { recursive: true, force: true });
});

const containers = new Map<string, Promise<string>>();

/** A running busybox container under RuntimeDefault, with `caps` added; one per capability set. */
function container(caps: string[] = [], seccomp: object = RUNTIME_DEFAULT): Promise<string> {
  const key = `${caps.join(",")}|${JSON.stringify(seccomp)}`;
  let id = containers.get(key);
  if (!id) {
    const name = `c${containers.size}`;
    id = (async () => {
      const { container_id } = await podshim.cri.runtime("CreateContainer", {
        pod_sandbox_id: pod, sandbox_config: podConfig,
        config: {
          metadata: { name }, image: { image: bed.images.busybox }, command: ["sleep", "3600"], log_path: `${name}.log`,
          mounts: [{ container_path: "/probe", host_path: probeDir, readonly: true }],
          linux: { security_context: { seccomp, capabilities: { add_capabilities: caps } } },
        },
      }, 60_000);
      await podshim.cri.runtime("StartContainer", { container_id }, 60_000);
      return container_id as string;
    })();
    containers.set(key, id);
  }
  return id;
}

const exec = async (id: string, cmd: string[]) => {
  const r = await podshim.cri.runtime("ExecSync", { container_id: id, cmd, timeout: 30 }, 60_000);
  return { out: `${r.stdout.toString()}${r.stderr.toString()}`.trim(), code: r.exit_code as number };
};
const probe = async (caps: string[], call: string, bits: 64 | 32 = 64, extra: string[] = []) =>
  (await exec(await container(caps), [bits === 64 ? "/probe/sysprobe" : "/probe/sysprobe32", call, ...extra])).out;

describe("RuntimeDefault seccomp (baseline allow-list)", () => {
  it("runs the busybox set", async () => {
    const id = await container();
    const commands = [
      "ls -la / >/dev/null", "ps >/dev/null", "cat /proc/self/status >/dev/null", "date >/dev/null", "id >/dev/null",
      "df >/dev/null", "mount >/dev/null", "uname -a >/dev/null", "hostname >/dev/null", "find /etc -type f >/dev/null",
      "echo hi | gzip | gunzip | grep -q hi", "tar -cf /tmp/t.tar /etc && tar -tf /tmp/t.tar >/dev/null",
      "echo 3 1 2 | tr ' ' '\\n' | sort -n | awk '{s+=$1} END {exit s!=6}'", "sed -n 1p /etc/passwd >/dev/null",
      "mkdir -p /tmp/d && touch /tmp/d/f && chmod 600 /tmp/d/f && ln -s /tmp/d/f /tmp/l && rm -r /tmp/d /tmp/l",
      "sleep 0.1", "top -b -n 1 >/dev/null", "nslookup localhost 127.0.0.1 >/dev/null 2>&1; true", "ping -c 1 127.0.0.1 >/dev/null 2>&1; true",
      "sh -c 'exit 0'", "(sleep 0.1 &) ; wait", "md5sum /bin/busybox >/dev/null", "dd if=/dev/zero of=/dev/null bs=1k count=10 2>/dev/null",
      "nc -h 2>/dev/null; true", "wc -l /etc/group >/dev/null", "chown 1000 /tmp && chown 0 /tmp", "mknod /tmp/null c 1 3 && rm /tmp/null",
    ];
    const failures: string[] = [];
    for (const c of commands) {
      const r = await exec(id, ["sh", "-c", c]);
      if (r.code !== 0) failures.push(`${c}: exit ${r.code} ${r.out}`);
    }
    expect(failures).toEqual([]);
  });

  it("runs a static 32-bit binary (x86 ABI listed)", async (ctx) => {
    if (!have32) {
      console.log(`SKIP 32-bit binary: ${why32}`);
      ctx.skip();
    }
    expect(await probe([], "hello", 32)).toBe("hello from a 32-bit process");
  });

  it("crictl exec `unshare -r true` is refused; with CAP_SYS_ADMIN unshare works", async () => {
    const plain = await exec(await container(), ["unshare", "-r", "true"]);
    expect(plain.code).not.toBe(0);
    expect(plain.out).toMatch(/Operation not permitted/);
    const admin = await exec(await container(["SYS_ADMIN"]), ["unshare", "-u", "true"]);
    expect(admin).toEqual({ out: "", code: 0 });
  });

  it("refuses what the baseline refuses, opens what capabilities open, and prints the matrix", async () => {
    // [call, capability that would open it, want without, want with]
    const rows: [string, string[], RegExp, RegExp][] = [
      ["unshare", ["SYS_ADMIN"], /^EPERM$/, /^ok$/],
      ["mount", ["SYS_ADMIN"], /^EPERM$/, /^ok$/],
      ["clone-newns", ["SYS_ADMIN"], /^EPERM$/, /^ok$/],
      ["clone-newuser", ["SYS_ADMIN"], /^EPERM$/, /^ok$/],
      ["clone3", ["SYS_ADMIN"], /^ENOSYS$/, /^ok$/],
      ["clone-plain", ["SYS_ADMIN"], /^ok$/, /^ok$/],
      ["keyctl", ["SYS_ADMIN"], /^EPERM$/, /^EPERM$/],
      ["bpf", ["SYS_ADMIN", "BPF"], /^EPERM$/, /^(?!EPERM).+/],
      ["kexec_load", ["SYS_BOOT"], /^EPERM$/, /^EPERM$/],
      ["ptrace", ["SYS_PTRACE"], /^EPERM$/, /^ok$/],
      ["io_uring_setup", ["SYS_ADMIN"], /^EPERM$/, /^EPERM$/],
      ["socket-inet", ["NET_ADMIN"], /^ok$/, /^ok$/],
      ["socket-vsock", ["NET_ADMIN"], /^EPERM$/, /^EPERM$/],
      ["personality-query", ["SYS_ADMIN"], /^ok$/, /^ok$/],
      ["personality-noaslr", ["SYS_ADMIN"], /^EPERM$/, /^EPERM$/],
    ];
    const table: string[][] = [];
    const wrong: string[] = [];
    const check = async (call: string, caps: string[], without: RegExp, withCap: RegExp, bits: 64 | 32, extra: string[] = []) => {
      const a = await probe([], call, bits, extra);
      const b = await probe(caps, call, bits, extra);
      const label = `${call}${extra.length ? ` ${extra.join(" ")}` : ""}${bits === 32 ? " (i386)" : ""}`;
      table.push([label, a, `${b} (+${caps.join("+")})`]);
      if (!without.test(a)) wrong.push(`${label} without capability: ${a}`);
      if (!withCap.test(b)) wrong.push(`${label} with ${caps.join("+")}: ${b}`);
    };
    for (const [call, caps, without, withCap] of rows) await check(call, caps, without, withCap, 64);
    // x86_64 uselib (134) is in the kernel's table but in no rule; 1000 is past every table.
    await check("unlisted", ["SYS_ADMIN"], /^EPERM$/, /^EPERM$/, 64, ["134"]);
    await check("unlisted", ["SYS_ADMIN"], /^(EPERM|ENOSYS)$/, /^(EPERM|ENOSYS)$/, 64, ["1000"]);
    if (have32) {
      for (const [call, caps, without, withCap] of rows.filter(([c]) => ["unshare", "mount", "keyctl", "clone-newns", "ptrace"].includes(c))) {
        await check(call, caps, without, withCap, 32);
      }
    } else {
      console.log(`SKIP 32-bit rows of the matrix: ${why32}`);
    }
    const widths = [0, 1, 2].map((i) => Math.max(...[["call", "without capability", "with capability"], ...table].map((r) => r[i]!.length)));
    const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
    console.log(["seccomp matrix (RuntimeDefault = baseline):", line(["call", "without capability", "with capability"]), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...table.map(line)].join("\n"));
    expect(wrong).toEqual([]);
  });

  it("refuses at CreateContainer a Localhost profile runc could not load", async () => {
    const bad = join(base, "bad-profile.json");
    writeFileSync(bad, JSON.stringify({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["read"], action: "SCMP_ACT_SOMETIMES" }] }));
    const res = await statusOf(podshim.cri.runtime("CreateContainer", {
      pod_sandbox_id: pod, sandbox_config: podConfig,
      config: { metadata: { name: "badprofile" }, image: { image: bed.images.busybox }, command: ["true"], linux: { security_context: { seccomp: { profile_type: 2, localhost_ref: bad } } } },
    }, 60_000));
    expect(res.code).toBe(Status.INVALID_ARGUMENT);
    expect(res.details).toContain("unknown action");
    const listed = await podshim.cri.runtime("ListContainers", { filter: { pod_sandbox_id: pod } });
    expect(listed.containers.map((c: { metadata: { name: string } }) => c.metadata.name)).not.toContain("badprofile");
  });
});
