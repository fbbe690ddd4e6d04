// Linux capability names in the CAP_* form runc and crun take, and the two ways a runtime
// learns which of them it can hand out.
import { InvalidArgumentError } from "../errors/errors.js";

/** Indexed by capability number (include/uapi/linux/capability.h); Linux 5.9 through 6.x stop at 40. */
export const CAPABILITY_NAMES: readonly string[] = Object.freeze([
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_IPC_OWNER",
  "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO",
  "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT",
  "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG",
  "CAP_MKNOD",
  "CAP_LEASE",
  "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE",
  "CAP_MAC_ADMIN",
  "CAP_SYSLOG",
  "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND",
  "CAP_AUDIT_READ",
  "CAP_PERFMON",
  "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
]);

const KNOWN = new Set(CAPABILITY_NAMES);

/** The CRI names capabilities without the prefix ("NET_ADMIN"); people write either form in
 * any case. Returns the CAP_* form, or throws for a name no kernel defines. */
export function normalizeCapability(name: string): string {
  const upper = name.trim().toUpperCase();
  const full = upper.startsWith("CAP_") ? upper : `CAP_${upper}`;
  if (!KNOWN.has(full)) throw new InvalidArgumentError(`unknown capability ${JSON.stringify(name)}`);
  return full;
}

/** The names set in a hex mask as /proc/<pid>/status prints it (CapEff, CapBnd). Bits beyond
 * the names known here are left out: runc would refuse a name it cannot resolve. */
export function capabilitiesFromMask(hex: string): string[] {
  const text = hex.trim();
  if (!/^[0-9a-fA-F]{1,16}$/.test(text)) throw new InvalidArgumentError(`capability mask ${JSON.stringify(hex)} is not hexadecimal`);
  const mask = BigInt(`0x${text}`);
  return CAPABILITY_NAMES.filter((_, i) => (mask >> BigInt(i)) & 1n);
}

/** Every capability the kernel knows, given /proc/sys/kernel/cap_last_cap. */
export function capabilitiesUpTo(lastCap: number): string[] {
  return CAPABILITY_NAMES.slice(0, Math.max(0, lastCap + 1));
}
