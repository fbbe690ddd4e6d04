import { describe, expect, it } from "vitest";
import { UnimplementedError } from "../../src/errors/errors.js";
import { capabilitiesFromMask, capabilitiesUpTo, CAPABILITY_NAMES, normalizeCapability } from "../../src/oci/capabilities.js";
import { DEFAULT_CAPABILITIES } from "../../src/oci/defaults.js";
import { denylistSeccomp as runtimeDefaultSeccomp } from "../../src/oci/seccomp-denylist.js";
import type { LinuxSeccomp } from "../../src/oci/spec-types.js";
import { InvalidArgumentError } from "../../src/errors/errors.js";

const refused = (p: LinuxSeccomp, name: string) => (p.syscalls ?? []).filter((s) => s.names.includes(name));
const refusedOutright = (p: LinuxSeccomp, name: string) => refused(p, name).some((s) => s.args === undefined);

describe("denylistSeccomp: shape", () => {
  const p = runtimeDefaultSeccomp(DEFAULT_CAPABILITIES, "x64");

  it("allows by default, only for the native architecture", () => {
    expect(p.defaultAction).toBe("SCMP_ACT_ALLOW");
    expect(p.architectures).toEqual(["SCMP_ARCH_X86_64"]);
    expect(runtimeDefaultSeccomp([], "arm64").architectures).toEqual(["SCMP_ARCH_AARCH64"]);
    expect(p.flags).toBeUndefined();
    expect(p.defaultErrnoRet).toBeUndefined();
  });

  it("refuses everything with ERRNO: EPERM, except clone3 with ENOSYS", () => {
    for (const s of p.syscalls!) {
      expect(s.action).toBe("SCMP_ACT_ERRNO");
      expect(s.names.length).toBeGreaterThan(0);
      expect(s.errnoRet).toBe(s.names.includes("clone3") ? 38 : 1);
    }
    expect(refusedOutright(p, "clone3")).toBe(true);
  });

  it("puts at most one condition in a rule, so runc and crun read it alike", () => {
    for (const s of p.syscalls!) expect((s.args ?? []).length).toBeLessThanOrEqual(1);
  });

  it.each([
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff",
    "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsmount", "fsconfig", "fspick", "setns",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "acct", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "stime", "syslog", "quotactl", "lookup_dcookie", "open_by_handle_at", "name_to_handle_at",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "iopl", "ioperm", "vhangup", "nfsservctl", "uselib",
    "create_module", "get_kernel_syms", "query_module", "mbind", "set_mempolicy", "migrate_pages", "move_pages",
    "io_uring_setup",
  ])("refuses %s for a default container", (name) => {
    expect(refusedOutright(p, name)).toBe(true);
  });

  it("leaves ordinary calls alone", () => {
    for (const name of ["read", "write", "openat", "execve", "chmod", "sethostname", "get_mempolicy", "socket", "chroot", "mknod"]) {
      expect(refused(p, name)).toEqual([]);
    }
  });

  it("refuses clone and unshare only with a namespace flag, one masked rule per flag", () => {
    const rules = refused(p, "clone");
    const flags = rules.map((r) => {
      expect(r.args).toHaveLength(1);
      const a = r.args![0]!;
      expect(a).toMatchObject({ index: 0, op: "SCMP_CMP_MASKED_EQ" });
      expect(a.valueTwo).toBe(a.value);
      return a.value;
    });
    expect(flags.sort((a, b) => a - b)).toEqual([0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000]);
    expect(flags.reduce((a, b) => a | b, 0)).toBe(0x7e020000);
    // CLONE_NEWTIME is an unshare flag only: in clone's first argument the low byte is a signal.
    const unshareFlags = refused(p, "unshare").map((r) => r.args![0]!.value);
    expect(unshareFlags).toContain(0x80);
    expect(flags).not.toContain(0x80);
    expect(refusedOutright(p, "unshare")).toBe(false);
    expect(refusedOutright(p, "clone")).toBe(false);
  });

  it("refuses personality only when it would weaken the address space", () => {
    const masks = refused(p, "personality").map((r) => r.args![0]!);
    expect(masks.map((a) => a.value).sort((a, b) => a - b)).toEqual([0x0040000, 0x0100000, 0x0200000, 0x0400000]);
    for (const a of masks) expect(a.valueTwo).toBe(a.value);
    // PER_LINUX, PER_LINUX32 and UNAME26 match no rule.
    for (const value of [0x0, 0x8, 0x20000, 0x20008]) expect(masks.some((a) => (value & a.value) === a.valueTwo)).toBe(false);
  });

  it("is fresh JSON each call", () => {
    const a = runtimeDefaultSeccomp(DEFAULT_CAPABILITIES, "x64");
    a.syscalls![0]!.names.push("read");
    expect(runtimeDefaultSeccomp(DEFAULT_CAPABILITIES, "x64")).toEqual(p);
    expect(JSON.parse(JSON.stringify(p))).toEqual(p);
  });

  it("refuses architectures it has no profile for", () => {
    expect(() => runtimeDefaultSeccomp([], "mips")).toThrow(UnimplementedError);
  });
});

describe("denylistSeccomp: capabilities lift their groups", () => {
  it.each([
    ["CAP_SYS_ADMIN", ["mount", "umount2", "setns", "swapon", "quotactl", "clone3", "bpf", "perf_event_open"], ["clone", "unshare"]],
    ["SYS_ADMIN", ["mount"], ["clone"]],
    ["cap_sys_ptrace", ["ptrace", "process_vm_readv", "kcmp", "userfaultfd"], []],
    ["CAP_SYS_MODULE", ["init_module", "finit_module", "delete_module"], []],
    ["CAP_SYS_BOOT", ["reboot", "kexec_load"], []],
    ["CAP_SYS_TIME", ["settimeofday", "clock_settime", "adjtimex"], []],
    ["CAP_SYS_NICE", ["mbind", "set_mempolicy", "migrate_pages", "move_pages"], []],
    ["CAP_BPF", ["bpf"], []],
    ["CAP_PERFMON", ["perf_event_open"], []],
    ["CAP_DAC_READ_SEARCH", ["open_by_handle_at"], []],
    ["CAP_SYS_RAWIO", ["iopl", "ioperm"], []],
    ["CAP_SYSLOG", ["syslog"], []],
    ["CAP_SYS_PACCT", ["acct"], []],
    ["CAP_SYS_TTY_CONFIG", ["vhangup"], []],
  ])("%s", (cap, outright, conditional) => {
    const p = runtimeDefaultSeccomp([...DEFAULT_CAPABILITIES, cap], "x64");
    for (const name of [...outright, ...conditional]) expect(refused(p, name)).toEqual([]);
  });

  it("no capability lifts keyrings, removed interfaces, io_uring or personality flags", () => {
    const p = runtimeDefaultSeccomp(CAPABILITY_NAMES, "x64");
    for (const name of ["keyctl", "add_key", "request_key", "nfsservctl", "uselib", "create_module", "io_uring_setup"]) {
      expect(refusedOutright(p, name)).toBe(true);
    }
    expect(refused(p, "personality")).toHaveLength(4);
    expect(refused(p, "mount")).toEqual([]);
  });
});

describe("capabilities", () => {
  it.each([
    ["net_admin", "CAP_NET_ADMIN"],
    ["CAP_SYS_ADMIN", "CAP_SYS_ADMIN"],
    ["cap_chown", "CAP_CHOWN"],
    [" Kill ", "CAP_KILL"],
  ])("normalizes %j to %s", (name, want) => {
    expect(normalizeCapability(name)).toBe(want);
  });

  it("refuses names no kernel defines", () => {
    expect(() => normalizeCapability("CAP_FLY")).toThrow(InvalidArgumentError);
    expect(() => normalizeCapability("ALL")).toThrow(InvalidArgumentError);
  });

  it("reads /proc/self/status masks", () => {
    // This node's CapEff: everything up to 40 but CAP_SYS_RESOURCE (24).
    const caps = capabilitiesFromMask("000001fffeffffff");
    expect(caps).toHaveLength(40);
    expect(caps).not.toContain("CAP_SYS_RESOURCE");
    expect(caps).toContain("CAP_CHECKPOINT_RESTORE");
    expect(capabilitiesFromMask("0000000000000000")).toEqual([]);
    expect(capabilitiesFromMask("ffffffffffffffff")).toEqual([...CAPABILITY_NAMES]);
    expect(capabilitiesFromMask("00000000a80425fb").sort()).toEqual([...DEFAULT_CAPABILITIES].sort());
    expect(() => capabilitiesFromMask("xyz")).toThrow(InvalidArgumentError);
  });

  it("lists every capability up to cap_last_cap", () => {
    expect(capabilitiesUpTo(40)).toEqual([...CAPABILITY_NAMES]);
    expect(capabilitiesUpTo(37)).toHaveLength(38);
    expect(capabilitiesUpTo(37).at(-1)).toBe("CAP_AUDIT_READ");
  });
});
