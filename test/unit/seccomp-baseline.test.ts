import { describe, expect, it } from "vitest";
import { defaultConfig } from "../../src/config/options.js";
import { UnimplementedError } from "../../src/errors/errors.js";
import { CAPABILITY_NAMES } from "../../src/oci/capabilities.js";
import { DEFAULT_CAPABILITIES } from "../../src/oci/defaults.js";
import { CLONE_NAMESPACE_MASK } from "../../src/oci/seccomp-baseline.js";
import { baselineSeccomp, runtimeDefaultSeccomp } from "../../src/oci/seccomp.js";
import type { LinuxSeccomp } from "../../src/oci/spec-types.js";

const rules = (p: LinuxSeccomp, name: string) => (p.syscalls ?? []).filter((s) => s.names.includes(name));
const allowedOutright = (p: LinuxSeccomp, name: string) => rules(p, name).some((s) => s.action === "SCMP_ACT_ALLOW" && s.args === undefined);
const mentioned = (p: LinuxSeccomp, name: string) => rules(p, name).length > 0;

describe("baseline seccomp: shape", () => {
  const p = baselineSeccomp(DEFAULT_CAPABILITIES, "x64");

  it("refuses by default with EPERM and lists every ABI of the host CPU", () => {
    expect(p.defaultAction).toBe("SCMP_ACT_ERRNO");
    expect(p.defaultErrnoRet).toBe(1);
    expect(p.architectures).toEqual(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
    expect(baselineSeccomp([], "arm64").architectures).toEqual(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
    expect(() => baselineSeccomp([], "mips")).toThrow(UnimplementedError);
  });

  it("is the default RuntimeDefault; the deny-list is the named alternative", () => {
    expect(defaultConfig().seccompDefaultProfile).toBe("baseline");
    expect(runtimeDefaultSeccomp(DEFAULT_CAPABILITIES, "x64")).toEqual(p);
    expect(runtimeDefaultSeccomp(DEFAULT_CAPABILITIES, "x64", "denylist").defaultAction).toBe("SCMP_ACT_ALLOW");
  });

  it("puts at most one condition in a rule and never names a call twice unconditionally", () => {
    const seen = new Set<string>();
    for (const s of p.syscalls!) {
      expect((s.args ?? []).length).toBeLessThanOrEqual(1);
      if (s.args !== undefined) continue;
      for (const n of s.names) {
        expect(seen.has(n), n).toBe(false);
        seen.add(n);
      }
    }
  });

  it.each(["read", "write", "openat", "execve", "mmap", "futex", "rt_sigaction", "chmod", "mknod", "socketcall", "chown32", "arch_prctl", "modify_ldt"])(
    "allows %s", (name) => expect(allowedOutright(p, name)).toBe(true));

  it.each([
    "mount", "umount2", "unshare", "setns", "keyctl", "add_key", "request_key", "bpf", "kexec_load", "kexec_file_load",
    "init_module", "reboot", "ptrace", "process_vm_readv", "perf_event_open", "pivot_root", "swapon", "userfaultfd",
    "io_uring_setup", "clock_settime", "sethostname", "syslog", "acct", "open_by_handle_at", "iopl", "mbind",
  ])("does not allow %s for a default container", (name) => expect(allowedOutright(p, name)).toBe(false));

  it("allows clone only without namespace flags; clone3 answers ENOSYS", () => {
    const clone = rules(p, "clone");
    expect(clone).toEqual([{ names: ["clone"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: CLONE_NAMESPACE_MASK, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" }] }]);
    expect(CLONE_NAMESPACE_MASK).toBe(0x10000000 | 0x20000000 | 0x40000000 | 0x08000000 | 0x04000000 | 0x02000000 | 0x00020000);
    expect(rules(p, "clone3")).toEqual([{ names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: 38 }]);
  });

  it("allows socket for every family but AF_ALG (38) and AF_VSOCK (40)", () => {
    const ok = (family: number) => rules(p, "socket").some(({ args }) => {
      const a = args![0]!;
      return a.op === "SCMP_CMP_LT" ? family < a.value : a.op === "SCMP_CMP_GT" ? family > a.value : family === a.value;
    });
    expect([1, 2, 10, 16, 17, 37, 39, 41, 44].every(ok)).toBe(true);
    expect(ok(38)).toBe(false);
    expect(ok(40)).toBe(false);
  });

  it("allows only the personalities that keep ASLR", () => {
    expect(rules(p, "personality").map((r) => r.args![0]!.value).sort((a, b) => a - b)).toEqual([0, 8, 0x20000, 0x20008, 0xffffffff]);
    expect(rules(p, "personality").every((r) => r.args![0]!.op === "SCMP_CMP_EQ")).toBe(true);
  });

  it("names the arm calls only on arm64 and the x86 ones only on x64", () => {
    const arm = baselineSeccomp([], "arm64");
    expect(allowedOutright(arm, "set_tls")).toBe(true);
    expect(mentioned(arm, "arch_prctl")).toBe(false);
    expect(mentioned(p, "set_tls")).toBe(false);
  });
});

describe("baseline seccomp: capabilities open their groups", () => {
  it.each([
    ["CAP_SYS_ADMIN", ["mount", "umount2", "unshare", "setns", "clone", "clone3", "bpf", "sethostname", "perf_event_open"]],
    ["CAP_SYS_PTRACE", ["ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"]],
    ["CAP_SYS_MODULE", ["init_module", "finit_module", "delete_module"]],
    ["CAP_SYS_BOOT", ["reboot"]],
    ["CAP_SYS_TIME", ["settimeofday", "clock_settime"]],
    ["CAP_SYSLOG", ["syslog"]],
    ["CAP_BPF", ["bpf"]],
    ["CAP_PERFMON", ["perf_event_open"]],
    ["CAP_SYS_CHROOT", ["chroot"]],
    ["CAP_DAC_READ_SEARCH", ["open_by_handle_at"]],
  ] as const)("%s allows %j", (cap, names) => {
    const p = baselineSeccomp([cap], "x64");
    for (const n of names) expect(allowedOutright(p, n), n).toBe(true);
    const bare = baselineSeccomp([cap.replace(/^CAP_/, "").toLowerCase()], "x64");
    for (const n of names) expect(allowedOutright(bare, n), n).toBe(true);
  });

  it("with CAP_SYS_ADMIN, clone has no flag condition and clone3 is plain allowed", () => {
    const p = baselineSeccomp(["CAP_SYS_ADMIN"], "x64");
    expect(rules(p, "clone").some((r) => r.args !== undefined)).toBe(false);
    expect(rules(p, "clone3").every((r) => r.action === "SCMP_ACT_ALLOW")).toBe(true);
  });

  it("never allows keyrings, kexec, pivot_root or io_uring, whatever the capabilities", () => {
    const p = baselineSeccomp(CAPABILITY_NAMES, "x64");
    for (const n of ["keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load", "pivot_root", "io_uring_setup", "swapon"]) {
      expect(mentioned(p, n), n).toBe(false);
    }
  });

  it("is a pure function of its inputs", () => {
    const a = baselineSeccomp(DEFAULT_CAPABILITIES, "x64");
    a.syscalls![0]!.names.push("keyctl");
    expect(allowedOutright(baselineSeccomp(DEFAULT_CAPABILITIES, "x64"), "keyctl")).toBe(false);
  });
});
