// The part of the OCI runtime spec (config.json, runtime-spec 1.0.2 / 1.1) that podshim writes.
// Field names and JSON shapes are the spec's; optional fields are left out of the JSON rather
// than written empty, as Go's omitempty does, so a spec read back from containerd compares equal.

/** The version podshim declares. Every field written here already exists in 1.0.2, and Debian's
 * runc 1.1 implements 1.0.2-dev, the same value containerd 1.6 writes. */
export const OCI_VERSION = "1.0.2-dev";

/** How containerd names a runtime spec inside a protobuf Any (Container.spec, CreateTask). */
export const SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

/** Annotations the CRI plugin of containerd writes into specs. The keys are read by others:
 * containerd-shim-runc-v2 runs every container whose sandbox-id is the same in one shim
 * process, and tools such as crictl and NRI plugins look up pods by them. */
export const CriAnnotation = {
  ContainerType: "io.kubernetes.cri.container-type",
  SandboxId: "io.kubernetes.cri.sandbox-id",
  SandboxName: "io.kubernetes.cri.sandbox-name",
  SandboxNamespace: "io.kubernetes.cri.sandbox-namespace",
  SandboxUid: "io.kubernetes.cri.sandbox-uid",
  SandboxLogDirectory: "io.kubernetes.cri.sandbox-log-directory",
  SandboxImageName: "io.kubernetes.cri.podsandbox.image-name",
  SandboxCpuPeriod: "io.kubernetes.cri.sandbox-cpu-period",
  SandboxCpuQuota: "io.kubernetes.cri.sandbox-cpu-quota",
  SandboxCpuShares: "io.kubernetes.cri.sandbox-cpu-shares",
  SandboxMemory: "io.kubernetes.cri.sandbox-memory",
  ContainerName: "io.kubernetes.cri.container-name",
  ImageName: "io.kubernetes.cri.image-name",
} as const;
export type CriAnnotation = (typeof CriAnnotation)[keyof typeof CriAnnotation];

export const ContainerType = { Sandbox: "sandbox", Container: "container" } as const;
export type ContainerType = (typeof ContainerType)[keyof typeof ContainerType];

export interface Spec {
  ociVersion: string;
  process: Process;
  root: Root;
  hostname?: string;
  mounts: Mount[];
  annotations: Record<string, string>;
  linux: Linux;
}

export interface Process {
  terminal: boolean;
  consoleSize?: { height: number; width: number };
  user: User;
  args: string[];
  env: string[];
  cwd: string;
  capabilities: LinuxCapabilities;
  rlimits?: PosixRlimit[];
  noNewPrivileges: boolean;
  apparmorProfile?: string;
  oomScoreAdj?: number;
  selinuxLabel?: string;
}

export interface User {
  uid: number;
  gid: number;
  umask?: number;
  additionalGids: number[];
}

/** Capability names in the CAP_* form runc and crun expect. */
export interface LinuxCapabilities {
  bounding: string[];
  effective: string[];
  permitted: string[];
  inheritable?: string[];
  ambient?: string[];
}

export interface PosixRlimit {
  /** RLIMIT_NOFILE, RLIMIT_NPROC, ... */
  type: string;
  hard: number;
  soft: number;
}

export interface Root {
  /** Relative paths are relative to the bundle directory. */
  path: string;
  readonly: boolean;
}

export interface Mount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

export const NamespaceType = {
  Pid: "pid",
  Network: "network",
  Mount: "mount",
  Ipc: "ipc",
  Uts: "uts",
  User: "user",
  Cgroup: "cgroup",
  Time: "time",
} as const;
export type NamespaceType = (typeof NamespaceType)[keyof typeof NamespaceType];

export interface LinuxNamespace {
  type: NamespaceType;
  /** Join this namespace instead of creating one. */
  path?: string;
}

export interface LinuxIdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

/** One device cgroup rule. type "a" (or absent) is every device; major/minor absent is any. */
export interface LinuxDeviceCgroup {
  allow: boolean;
  type?: "a" | "c" | "b";
  major?: number;
  minor?: number;
  /** Any combination of r, w, m. */
  access?: string;
}

export interface LinuxMemory {
  limit?: number;
  reservation?: number;
  swap?: number;
  kernel?: number;
  kernelTCP?: number;
  swappiness?: number;
  disableOOMKiller?: boolean;
  useHierarchy?: boolean;
}

export interface LinuxCpu {
  shares?: number;
  quota?: number;
  period?: number;
  realtimeRuntime?: number;
  realtimePeriod?: number;
  cpus?: string;
  mems?: string;
  idle?: number;
}

export interface LinuxPids {
  limit: number;
}

export interface LinuxHugepageLimit {
  /** "2MB", "1GB", ... */
  pageSize: string;
  limit: number;
}

export interface LinuxResources {
  devices: LinuxDeviceCgroup[];
  memory?: LinuxMemory;
  cpu?: LinuxCpu;
  pids?: LinuxPids;
  hugepageLimits?: LinuxHugepageLimit[];
  /** cgroup v2 files and values, written as they are. */
  unified?: Record<string, string>;
}

/** A device node the runtime creates in the container's /dev. */
export interface LinuxDevice {
  path: string;
  type: "c" | "b" | "u" | "p";
  major: number;
  minor: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

export interface LinuxSeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

export interface LinuxSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: LinuxSeccompArg[];
}

export interface LinuxSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: LinuxSyscall[];
}

export interface Linux {
  uidMappings?: LinuxIdMapping[];
  gidMappings?: LinuxIdMapping[];
  sysctl?: Record<string, string>;
  resources: LinuxResources;
  /** cgroupfs: a path ("/parent/id"); systemd: "slice:prefix:name". */
  cgroupsPath: string;
  namespaces: LinuxNamespace[];
  devices?: LinuxDevice[];
  seccomp?: LinuxSeccomp;
  maskedPaths: string[];
  readonlyPaths: string[];
  /** Propagation of the root mount: "rslave" or "rshared" when a bind mount needs host mounts
   * to reach it; runc's default (rprivate) otherwise. */
  rootfsPropagation?: string;
  mountLabel?: string;
}
