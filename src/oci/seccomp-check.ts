// Refuses, at CreateContainer, a seccomp profile runc could not load: the kernel would only
// say so at StartContainer, as an opaque runc error, after the container was recorded.
import { readFile } from "node:fs/promises";
import { FailedPreconditionError, InvalidArgumentError } from "../errors/errors.js";
import type { LinuxSeccomp } from "./spec-types.js";

// libseccomp's action names and the kernel's word for each in actions_avail.
const ACTIONS: Readonly<Record<string, string>> = Object.freeze({
  SCMP_ACT_KILL: "kill_thread", SCMP_ACT_KILL_THREAD: "kill_thread", SCMP_ACT_KILL_PROCESS: "kill_process",
  SCMP_ACT_TRAP: "trap", SCMP_ACT_ERRNO: "errno", SCMP_ACT_TRACE: "trace", SCMP_ACT_ALLOW: "allow",
  SCMP_ACT_LOG: "log", SCMP_ACT_NOTIFY: "user_notif",
});
const OPS = new Set(["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"]);
const ARCHES = new Set([
  "SCMP_ARCH_NATIVE", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
  "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
  "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390",
  "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",
]);
const FLAGS = new Set(["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]);
const SYSCALL_NAME = /^[a-z_][a-z0-9_]{0,63}$/;
const MAX_ERRNO = 4095;

/** What the kernel's seccomp offers: undefined when it has no seccomp filter mode at all. */
export interface KernelSeccomp {
  actions: ReadonlySet<string>;
}

let kernel: Promise<KernelSeccomp | undefined> | undefined;

/** Read once: /proc/sys/kernel/seccomp/actions_avail exists only with CONFIG_SECCOMP_FILTER. */
export function kernelSeccomp(): Promise<KernelSeccomp | undefined> {
  kernel ??= readFile("/proc/sys/kernel/seccomp/actions_avail", "utf8").then(
    (text) => ({ actions: new Set(text.trim().split(/\s+/)) }),
    () => undefined,
  );
  return kernel;
}

function checkAction(action: unknown, where: string, k: KernelSeccomp): void {
  const word = typeof action === "string" ? ACTIONS[action] : undefined;
  if (word === undefined) throw new InvalidArgumentError(`seccomp profile: ${where} has unknown action ${JSON.stringify(action)}`);
  if (!k.actions.has(word)) throw new FailedPreconditionError(`seccomp profile: ${where} uses ${action as string}, which this kernel's seccomp does not offer (it offers ${[...k.actions].join(", ")})`);
}

const isU64 = (n: unknown): boolean => typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= Number.MAX_SAFE_INTEGER;

function checkErrno(n: unknown, where: string): void {
  if (n !== undefined && (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > MAX_ERRNO)) {
    throw new InvalidArgumentError(`seccomp profile: ${where} errnoRet ${JSON.stringify(n)} is not an errno (0..${MAX_ERRNO})`);
  }
}

/** Throws InvalidArgument for a malformed profile and FailedPrecondition for one this kernel
 * cannot load. `k` defaults to the running kernel. */
export async function checkSeccompLoadable(p: LinuxSeccomp, k?: KernelSeccomp): Promise<void> {
  const kern = k ?? (await kernelSeccomp());
  if (kern === undefined) throw new FailedPreconditionError("seccomp profile requested, but this kernel has no seccomp filter support (no /proc/sys/kernel/seccomp/actions_avail)");
  checkAction(p.defaultAction, "defaultAction", kern);
  checkErrno(p.defaultErrnoRet, "default");
  for (const a of p.architectures ?? []) {
    if (!ARCHES.has(a)) throw new InvalidArgumentError(`seccomp profile: unknown architecture ${JSON.stringify(a)}`);
  }
  for (const f of p.flags ?? []) {
    if (!FLAGS.has(f)) throw new InvalidArgumentError(`seccomp profile: unknown flag ${JSON.stringify(f)}`);
  }
  for (const [i, s] of (p.syscalls ?? []).entries()) {
    const where = `syscalls[${i}]`;
    if (!Array.isArray(s.names) || s.names.length === 0) throw new InvalidArgumentError(`seccomp profile: ${where} names no system call`);
    for (const n of s.names) {
      if (typeof n !== "string" || !SYSCALL_NAME.test(n)) throw new InvalidArgumentError(`seccomp profile: ${where} has an invalid system call name ${JSON.stringify(n)}`);
    }
    checkAction(s.action, where, kern);
    checkErrno(s.errnoRet, where);
    for (const a of s.args ?? []) {
      if (!Number.isInteger(a.index) || a.index < 0 || a.index > 5) throw new InvalidArgumentError(`seccomp profile: ${where} argument index ${JSON.stringify(a.index)} is not 0..5`);
      if (!OPS.has(a.op)) throw new InvalidArgumentError(`seccomp profile: ${where} has unknown operator ${JSON.stringify(a.op)}`);
      if (!isU64(a.value) || (a.valueTwo !== undefined && !isU64(a.valueTwo))) throw new InvalidArgumentError(`seccomp profile: ${where} argument values must be unsigned integers`);
    }
  }
  if (p.listenerPath !== undefined && p.listenerPath !== "" && !(p.syscalls ?? []).some((s) => s.action === "SCMP_ACT_NOTIFY") && p.defaultAction !== "SCMP_ACT_NOTIFY") {
    throw new InvalidArgumentError("seccomp profile: listenerPath is set but no rule uses SCMP_ACT_NOTIFY");
  }
}
