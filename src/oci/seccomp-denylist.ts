// The deny-list seccomp profile, kept for operators who choose it (seccomp_default_profile = "denylist").
//
// Shape: allow by default, refuse a short list. A container already runs without most
// capabilities, so the kernel refuses most dangerous calls on its own; the list narrows what is
// left: calls whose capability check has been bypassed before, interfaces that are not
// namespaced (keyrings, the clock, kernel modules), and the ways to build new namespaces, where
// an unprivileged user namespace hands the process a full capability set to attack the kernel
// with. Each group is lifted when the container holds the capability that normally grants that
// power, so a pod given CAP_SYS_ADMIN may mount and one given CAP_SYS_PTRACE may debug, and the
// profile is a function of the container's capability set.
//
// Refused calls fail with EPERM, the error a missing capability would give, so programs take
// the path they already have for "not allowed here". clone3 is the exception: its flags sit in
// a struct a filter cannot read, so it gets ENOSYS and libc falls back to clone, whose flags
// can be checked.
//
// Only the native architecture is listed. Rules are resolved to syscall numbers per
// architecture; a process using another ABI of the same CPU (i386 or x32 on x86-64, arm32 on
// arm64) would meet different numbers, and any call a rule missed there would slip through.
// With one architecture listed, libseccomp's filter refuses every foreign-ABI call outright
// (its bad-architecture action). The cost: 32-bit binaries do not run under RuntimeDefault;
// such a pod needs Unconfined or a Localhost profile.
//
// A default-allow filter cannot hold an allow-list of argument values: runc turns several
// conditions on one argument into separate rules, any one of which matches. So personality()
// is refused when it would set one of the flags the kernel itself drops on setuid execution
// (those that weaken a process's memory layout), each flag its own rule; other personalities
// (PER_LINUX, PER_LINUX32, UNAME26) stay allowed. The query form 0xffffffff sets every bit and
// is refused too; programs that query (gdb, setarch) report the error and go on.
import { UnimplementedError } from "../errors/errors.js";
import type { LinuxSeccomp, LinuxSeccompArg, LinuxSyscall } from "./spec-types.js";

const EPERM = 1;
const ENOSYS = 38;

/** One refused group: lifted when the container holds any of `unless`. */
interface Rule {
  why: string;
  names: readonly string[];
  unless?: readonly string[];
  errno?: number;
  /** Each entry becomes its own syscall rule (see the personality note above). */
  flagsIn?: { index: number; flags: readonly number[] };
}

// Namespace flags of clone(2) and unshare(2). CLONE_NEWTIME (0x80) only means that to
// unshare: in clone's first argument the low byte is the exit signal.
const CLONE_NEWNS = 0x00020000;
const CLONE_NEWCGROUP = 0x02000000;
const CLONE_NEWUTS = 0x04000000;
const CLONE_NEWIPC = 0x08000000;
const CLONE_NEWUSER = 0x10000000;
const CLONE_NEWPID = 0x20000000;
const CLONE_NEWNET = 0x40000000;
const CLONE_NEWTIME = 0x00000080;
const CLONE_NAMESPACE_FLAGS = [CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET];

// personality(2) flags in PER_CLEAR_ON_SETID.
const READ_IMPLIES_EXEC = 0x0400000;
const ADDR_NO_RANDOMIZE = 0x0040000;
const ADDR_COMPAT_LAYOUT = 0x0200000;
const MMAP_PAGE_ZERO = 0x0100000;

const SYS_ADMIN = "CAP_SYS_ADMIN";

export const DENYLIST_RULES: readonly Readonly<Rule>[] = Object.freeze([
  { why: "loading kernel code", names: ["init_module", "finit_module", "delete_module"], unless: ["CAP_SYS_MODULE"] },
  {
    why: "interfaces the kernel removed or a container never needs",
    names: ["create_module", "get_kernel_syms", "query_module", "nfsservctl", "uselib", "_sysctl"],
  },
  { why: "restarting or replacing the kernel", names: ["reboot", "kexec_load", "kexec_file_load"], unless: ["CAP_SYS_BOOT"] },
  { why: "node-wide swap", names: ["swapon", "swapoff"], unless: [SYS_ADMIN] },
  {
    why: "changing the mount tree",
    names: ["mount", "umount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr"],
    unless: [SYS_ADMIN],
  },
  { why: "entering other namespaces", names: ["setns"], unless: [SYS_ADMIN] },
  { why: "creating namespaces", names: ["clone", "unshare"], unless: [SYS_ADMIN], flagsIn: { index: 0, flags: CLONE_NAMESPACE_FLAGS } },
  { why: "creating a time namespace", names: ["unshare"], unless: [SYS_ADMIN], flagsIn: { index: 0, flags: [CLONE_NEWTIME] } },
  { why: "clone flags a filter cannot read", names: ["clone3"], unless: [SYS_ADMIN], errno: ENOSYS },
  { why: "kernel keyrings, which are not per container", names: ["keyctl", "add_key", "request_key"] },
  { why: "loading BPF programs", names: ["bpf"], unless: [SYS_ADMIN, "CAP_BPF"] },
  { why: "performance counters that observe the node", names: ["perf_event_open"], unless: [SYS_ADMIN, "CAP_PERFMON"] },
  { why: "a common kernel exploitation aid", names: ["userfaultfd"], unless: ["CAP_SYS_PTRACE"] },
  { why: "process accounting for the node", names: ["acct"], unless: ["CAP_SYS_PACCT"] },
  {
    why: "the node's clock",
    names: ["settimeofday", "stime", "clock_settime", "clock_adjtime", "adjtimex"],
    unless: ["CAP_SYS_TIME"],
  },
  { why: "the kernel log", names: ["syslog"], unless: ["CAP_SYSLOG"] },
  { why: "node-wide quota and profiling interfaces", names: ["quotactl", "quotactl_fd", "lookup_dcookie"], unless: [SYS_ADMIN] },
  { why: "opening files by handle, past the mount namespace", names: ["open_by_handle_at", "name_to_handle_at"], unless: ["CAP_DAC_READ_SEARCH"] },
  {
    why: "inspecting other processes",
    names: ["ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"],
    unless: ["CAP_SYS_PTRACE"],
  },
  { why: "raw I/O ports", names: ["iopl", "ioperm"], unless: ["CAP_SYS_RAWIO"] },
  { why: "hanging up the terminal", names: ["vhangup"], unless: ["CAP_SYS_TTY_CONFIG"] },
  { why: "NUMA placement beyond the process's own", names: ["mbind", "set_mempolicy", "migrate_pages", "move_pages"], unless: ["CAP_SYS_NICE"] },
  {
    why: "personalities that weaken the address space",
    names: ["personality"],
    flagsIn: { index: 0, flags: [READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, ADDR_COMPAT_LAYOUT, MMAP_PAGE_ZERO] },
  },
  { why: "io_uring, a large attack surface no capability scopes", names: ["io_uring_setup", "io_uring_enter", "io_uring_register"] },
].map((r) => Object.freeze(r as Rule)));

const ARCHITECTURES: Readonly<Record<string, string>> = Object.freeze({
  x64: "SCMP_ARCH_X86_64",
  arm64: "SCMP_ARCH_AARCH64",
});

function capName(c: string): string {
  const u = c.toUpperCase();
  return u.startsWith("CAP_") ? u : `CAP_${u}`;
}

/** The profile for a container holding `capabilities` (its bounding set, CAP_* or bare names).
 * `arch` is Node's process.arch of the node; only x64 and arm64 are supported. */
export function denylistSeccomp(capabilities: readonly string[], arch: string = process.arch): LinuxSeccomp {
  const scmpArch = ARCHITECTURES[arch];
  if (scmpArch === undefined) throw new UnimplementedError(`podshim has no RuntimeDefault seccomp profile for architecture ${arch}`);
  const held = new Set(capabilities.map(capName));
  const syscalls: LinuxSyscall[] = [];
  for (const rule of DENYLIST_RULES) {
    if (rule.unless?.some((c) => held.has(c))) continue;
    const base = { names: [...rule.names], action: "SCMP_ACT_ERRNO", errnoRet: rule.errno ?? EPERM };
    if (rule.flagsIn === undefined) {
      syscalls.push(base);
      continue;
    }
    const { index, flags } = rule.flagsIn;
    for (const flag of flags) {
      // MASKED_EQ: value is the mask, valueTwo what the masked argument must equal.
      const arg: LinuxSeccompArg = { index, value: flag, valueTwo: flag, op: "SCMP_CMP_MASKED_EQ" };
      syscalls.push({ ...base, names: [...rule.names], args: [arg] });
    }
  }
  return { defaultAction: "SCMP_ACT_ALLOW", architectures: [scmpArch], syscalls };
}
