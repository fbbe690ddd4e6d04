// The defaults every podshim spec starts from: the same facts containerd's default Unix spec
// (pkg/oci) and its CRI plugin start from, so a pod behaves the same under either runtime.
// Data is frozen; the functions hand out fresh copies for a builder to change.
import type { LinuxDeviceCgroup, LinuxNamespace, Mount } from "./spec-types.js";
import { NamespaceType } from "./spec-types.js";

/** Docker's historical set, which every CRI runtime kept so images behave alike. */
export const DEFAULT_CAPABILITIES: readonly string[] = Object.freeze([
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
]);

/** Kernel interfaces that leak host information or allow host-wide changes. The runtime hides
 * each: /dev/null over a file, an empty read-only tmpfs over a directory. */
export const DEFAULT_MASKED_PATHS: readonly string[] = Object.freeze([
  "/proc/acpi",
  "/proc/asound",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/sys/firmware",
  "/sys/devices/virtual/powercap",
  "/proc/scsi",
]);

export const DEFAULT_READONLY_PATHS: readonly string[] = Object.freeze([
  "/proc/bus",
  "/proc/fs",
  "/proc/irq",
  "/proc/sys",
  "/proc/sysrq-trigger",
]);

export const DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** 64 MiB: the size of the default /dev and /dev/shm tmpfs, and of a pod's shared shm. */
export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;

/** The shm tmpfs of a pod: world-writable with the sticky bit, never executable. */
export const SHM_TMPFS_OPTIONS: readonly string[] = Object.freeze([
  "nosuid",
  "noexec",
  "nodev",
  "mode=1777",
  `size=${DEFAULT_SHM_SIZE / 1024}k`,
]);

const frozenMount = (m: Mount): Readonly<Mount> => Object.freeze({ ...m, options: Object.freeze([...m.options]) as string[] });

/** In this order: a mount point must exist before anything is mounted below it. */
export const DEFAULT_MOUNTS: readonly Readonly<Mount>[] = Object.freeze([
  { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
  { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
  {
    destination: "/dev/pts",
    type: "devpts",
    source: "devpts",
    // gid 5 is tty in every common distribution; newinstance gives the container its own ptys.
    options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
  },
  { destination: "/dev/shm", type: "tmpfs", source: "shm", options: [...SHM_TMPFS_OPTIONS] },
  { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
  { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
  { destination: "/run", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
].map(frozenMount));

/** Not a default of the base spec: the CRI adds it to app containers only (never to the pause
 * container), read-only unless the runtime is configured otherwise. */
export const CGROUP_MOUNT: Readonly<Mount> = frozenMount({
  destination: "/sys/fs/cgroup",
  type: "cgroup",
  source: "cgroup",
  options: ["nosuid", "noexec", "nodev", "relatime", "ro"],
});

/** Deny every device. runc and crun append their own allow-list of the harmless character
 * devices (null, zero, full, random, urandom, tty, console, ptmx, pts) after the spec's rules,
 * so repeating it here would only duplicate it; containerd's default spec holds just this rule. */
export const DEFAULT_DEVICE_RULES: readonly Readonly<LinuxDeviceCgroup>[] = Object.freeze([
  Object.freeze({ allow: false, access: "rwm" }),
]);

/** Every device, for privileged containers. */
export const ALLOW_ALL_DEVICES: Readonly<LinuxDeviceCgroup> = Object.freeze({ allow: true, access: "rwm" });

/** containerd's base spec caps RLIMIT_NOFILE at 1024, but its CRI drops that again so pods
 * inherit the runtime's limits (containerd/cri#515). podshim sets none. */
export const DEFAULT_RLIMITS: readonly never[] = Object.freeze([]);

/** A fresh namespace for each of these unless the pod shares the node's. */
export const DEFAULT_NAMESPACES: readonly NamespaceType[] = Object.freeze([
  NamespaceType.Pid,
  NamespaceType.Ipc,
  NamespaceType.Uts,
  NamespaceType.Mount,
  NamespaceType.Network,
]);

/** The kubelet's choice for pause containers (kubernetes#47938): the last thing the OOM killer
 * should pick, since losing it loses the pod's namespaces. */
export const SANDBOX_OOM_SCORE_ADJ = -998;

/** cgroup v1 cpu.shares for the pause container: the minimum, it only sleeps. */
export const SANDBOX_CPU_SHARES = 2;

export function defaultMounts(): Mount[] {
  return DEFAULT_MOUNTS.map((m) => ({ ...m, options: [...m.options] }));
}

export function defaultNamespaces(): LinuxNamespace[] {
  return DEFAULT_NAMESPACES.map((type) => ({ type }));
}

export function defaultCapabilities(): string[] {
  return [...DEFAULT_CAPABILITIES];
}
