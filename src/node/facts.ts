// Facts about the node podshim runs on, read from the kernel's own files: for `crictl info`
// and `podshim doctor`. Each read is cheap and failure-tolerant (a missing file is an answer).
import { readFile, statfs } from "node:fs/promises";

// statfs magic numbers (linux/magic.h).
const CGROUP2_SUPER_MAGIC = 0x63677270;
const TMPFS_MAGIC = 0x01021994;

export type CgroupLayout = "v2" | "hybrid" | "v1" | "none";

async function fsType(path: string): Promise<number | undefined> {
  try {
    return Number((await statfs(path)).type);
  } catch {
    return undefined;
  }
}

/** v2 (unified at /sys/fs/cgroup), hybrid (v1 controllers plus cgroup2 at unified/), or v1. */
export async function cgroupLayout(): Promise<CgroupLayout> {
  const root = await fsType("/sys/fs/cgroup");
  if (root === CGROUP2_SUPER_MAGIC) return "v2";
  if (root === undefined) return "none";
  if (root === TMPFS_MAGIC && (await fsType("/sys/fs/cgroup/unified")) === CGROUP2_SUPER_MAGIC) return "hybrid";
  return "v1";
}

export async function apparmorEnabled(): Promise<boolean> {
  return (await readFile("/sys/module/apparmor/parameters/enabled", "utf8").catch(() => "N")).trim() === "Y";
}

/** The kernel's seccomp support as /proc/self/status reports it (the Seccomp line exists with CONFIG_SECCOMP). */
export async function seccompAvailable(): Promise<boolean> {
  const status = await readFile("/proc/self/status", "utf8").catch(() => "");
  return /^Seccomp:/m.test(status);
}

export interface NodeFacts {
  cgroupLayout: CgroupLayout;
  apparmor: boolean;
  seccomp: boolean;
  kernel: string;
}

export async function nodeFacts(): Promise<NodeFacts> {
  const [layout, apparmor, seccomp, kernel] = await Promise.all([
    cgroupLayout(), apparmorEnabled(), seccompAvailable(),
    readFile("/proc/sys/kernel/osrelease", "utf8").then((s) => s.trim(), () => "unknown"),
  ]);
  return { cgroupLayout: layout, apparmor, seccomp, kernel };
}
