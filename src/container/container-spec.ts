// The OCI spec of an app container, as containerd's CRI plugin builds it (pkg/cri/server/
// container_create_linux.go in 1.6/1.7). Pure: whatever it needs from the node (the sandbox's
// pid and files, the resolved user, devices, capabilities and profiles the node offers) comes in
// through ContainerSpecInput, so every rule is a unit test away.
//
// Where this differs from the pause container: the process is the image's (or the kubelet's),
// it joins the pod's namespaces instead of creating them, it sees /etc/hostname, /etc/hosts, the
// pod's shm and its cgroup, and the security context applies in full (privileged, capabilities,
// masked paths, seccomp, AppArmor). Like containerd it gets no /run tmpfs: images that ship files
// under /run (nginx's pid dir, for one) would lose them.
import { InvalidArgumentError, UnimplementedError } from "../errors/errors.js";
import type {
  ContainerConfig,
  LinuxContainerResources,
  LinuxContainerSecurityContext,
  Mount as CriMount,
  PodSandboxConfig,
  SecurityProfile,
} from "../gen/cri/runtime/v1/api.js";
import { MountPropagation, NamespaceMode, Signal } from "../gen/cri/runtime/v1/api.js";
import type { ImageConfig } from "../distribution/manifest.js";
import { cgroupsPath, type CgroupDriver } from "../oci/cgroups.js";
import { normalizeCapability } from "../oci/capabilities.js";
import {
  ALLOW_ALL_DEVICES,
  CGROUP_MOUNT,
  DEFAULT_CAPABILITIES,
  DEFAULT_DEVICE_RULES,
  DEFAULT_MASKED_PATHS,
  DEFAULT_PATH_ENV,
  DEFAULT_READONLY_PATHS,
  defaultMounts,
} from "../oci/defaults.js";
import { apparmorFor, profileFromPath, seccompFor, type AppArmorHost } from "../oci/security-profile.js";
import type { LinuxDevice, LinuxDeviceCgroup, LinuxNamespace, LinuxResources, LinuxSeccomp, Mount, Spec } from "../oci/spec-types.js";
import { ContainerType, CriAnnotation, NamespaceType, OCI_VERSION } from "../oci/spec-types.js";
import { checkSysctls } from "../oci/sysctl.js";
import type { SandboxFilePaths } from "../sandbox/sandbox-files.js";
import type { ResolvedDevice } from "./rootfs-files.js";
import type { ResolvedUser } from "./user.js";

/** How the node's cgroups behave, for resources at create and at UpdateContainerResources. */
export interface ResourceOptions {
  /** The node runs the unified hierarchy only (cgroup v2). A hybrid host, with v1 controllers
   * and a cgroup2 mount on the side, counts as v1: runc drives the v1 controllers there. */
  cgroupV2: boolean;
  /** Swap can be limited (v1: memory.memsw.limit_in_bytes exists; v2: memory.swap.max). Without
   * it a swap limit is dropped, and no limit is set on swap by default. */
  swapController?: boolean;
  /** The hugetlb controller is there. Absent means yes; false drops hugepage limits, as
   * containerd's default tolerate_missing_hugetlb_controller does. */
  hugetlbController?: boolean;
}

export interface ContainerSpecInput extends ResourceOptions {
  /** The container's id: it names the cgroup, so it must be usable in a path. */
  id: string;
  sandboxId: string;
  config: ContainerConfig;
  /** The pod's config as the kubelet sends it with CreateContainer: privileged, sysctls,
   * cgroup parent, metadata. */
  sandboxConfig: PodSandboxConfig;
  /** The image's config: Entrypoint, Cmd, Env and WorkingDir are used (User is resolved by the
   * caller into `user`). */
  image: ImageConfig;
  /** Recorded as io.kubernetes.cri.image-name: the image's first repo tag, else what the
   * kubelet asked for. */
  imageName: string;
  /** The pod's hostname, for the HOSTNAME variable: what the sandbox wrote to its hostname
   * file (the node's name for host-network pods). */
  hostname: string;
  /** The pause process: its ipc, uts and (PID mode POD) pid namespaces are joined. */
  sandboxPid: number;
  /** The pod's pinned network namespace; absent means the pause process's. */
  netnsPath?: string;
  /** For PID mode TARGET: the pid of the running container named by target_id. */
  targetPid?: number;
  /** The sandbox's files: /etc/hostname, /etc/hosts, /etc/resolv.conf and the pod's shm. */
  files: SandboxFilePaths;
  /** The identity from resolveUser (user.ts) against this container's rootfs. */
  user: Pick<ResolvedUser, "uid" | "gid" | "additionalGids">;
  cgroupDriver: CgroupDriver;
  /** Never ask for an oom_score_adj below podshim's own (hosts without CAP_SYS_RESOURCE). */
  restrictOomScoreAdj: boolean;
  /** podshim's own /proc/self/oom_score_adj, read by the caller. */
  currentOomScoreAdj: number;
  /** What "ALL" and privileged grant: the capabilities podshim itself holds (CapEff of
   * /proc/self/status, see capabilitiesFromMask). runc cannot pass on a capability it lacks,
   * and a container asking for one would fail at start; it is refused here instead. */
  allCapabilities: readonly string[];
  /** Every device of the node (hostDevices()), given to privileged containers. */
  hostDevices?: readonly ResolvedDevice[];
  /** config.devices, resolved on the node (resolveDevices()). */
  devices?: readonly ResolvedDevice[];
  /** containerd's privileged_without_host_devices: privileged, but only the CRI devices. */
  privilegedWithoutHostDevices?: boolean;
  /** containerd's device_ownership_from_security_context: CRI devices belong to the process's
   * uid and gid instead of the host node's owner. */
  deviceOwnershipFromSecurityContext?: boolean;
  /** The RuntimeDefault seccomp profile, or a function of the container's capabilities building
   * it (runtimeDefaultSeccomp); absent = RuntimeDefault means unconfined. */
  defaultSeccomp?: LinuxSeccomp | ((capabilities: readonly string[]) => LinuxSeccomp);
  /** Localhost seccomp profiles, read from the node by the caller, by their localhost_ref. */
  localhostSeccomp?: Readonly<Record<string, LinuxSeccomp>>;
  /** The node's AppArmor; absent when the host has none. */
  apparmor?: AppArmorHost;
  /** CRI mount host_path -> the real path to bind (prepareMountSources()); a path missing here
   * is bound as given. */
  mountSources?: Readonly<Record<string, string>>;
}

const PROC_NS = (pid: number, ns: string): string => `/proc/${pid}/ns/${ns}`;

export function buildContainerSpec(input: ContainerSpecInput): Spec {
  const { id, config, sandboxConfig } = input;
  checkPathId(id, "container id");
  checkPathId(input.sandboxId, "sandbox id");
  const name = config.metadata?.name ?? "";
  if (name === "") throw new InvalidArgumentError("the container config has no metadata name");

  const sc = config.linux?.securityContext;
  const ns = sc?.namespaceOptions;
  const hostNetwork = ns?.network === NamespaceMode.NODE;
  const hostIpc = ns?.ipc === NamespaceMode.NODE;
  const privileged = sc?.privileged === true;
  if (privileged && sandboxConfig.linux?.securityContext?.privileged !== true) {
    throw new InvalidArgumentError(`container ${name} is privileged but its pod is not: a privileged container needs a privileged pod`);
  }
  const withHostDevices = privileged && !input.privilegedWithoutHostDevices;

  const caps = capabilities(sc, privileged, withHostDevices, input.allCapabilities);
  const workingDir = config.workingDir;
  if (workingDir !== "" && !workingDir.startsWith("/")) throw new InvalidArgumentError(`working_dir ${JSON.stringify(workingDir)} is not an absolute path`);

  const { mounts, rootfsPropagation } = containerMounts(input, sc, hostIpc, privileged);
  const spec: Spec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: config.tty,
      user: { uid: input.user.uid, gid: input.user.gid, additionalGids: [...input.user.additionalGids] },
      args: processArgs(config, input.image),
      env: processEnv(input),
      cwd: workingDir || input.image.config?.WorkingDir || "/",
      capabilities: { bounding: [...caps], effective: [...caps], permitted: [...caps] },
      noNewPrivileges: sc?.noNewPrivs === true,
    },
    root: { path: "rootfs", readonly: sc?.readonlyRootfs === true },
    mounts,
    annotations: containerAnnotations(input, name),
    linux: {
      resources: resourcesToSpec(config.linux?.resources, input, { devices: [] }),
      cgroupsPath: cgroupsPath(id, sandboxConfig.linux?.cgroupParent ?? "", input.cgroupDriver),
      namespaces: containerNamespaces(input, privileged),
      maskedPaths: privileged ? [] : pathsOrDefault(sc?.maskedPaths, DEFAULT_MASKED_PATHS),
      readonlyPaths: privileged ? [] : pathsOrDefault(sc?.readonlyPaths, DEFAULT_READONLY_PATHS),
    },
  };
  if (rootfsPropagation !== undefined) spec.linux.rootfsPropagation = rootfsPropagation;

  const oom = oomScoreAdjFor(config.linux?.resources, input.restrictOomScoreAdj, input.currentOomScoreAdj);
  if (oom !== undefined) spec.process.oomScoreAdj = oom;

  applyDevices(spec, input, withHostDevices);

  const sysctl = checkSysctls(sandboxConfig.linux?.sysctls ?? {}, { hostNetwork, hostIpc });
  if (Object.keys(sysctl).length > 0) spec.linux.sysctl = sysctl;

  const apparmor = apparmorFor(sc?.apparmor ?? profileFromPath(sc?.apparmorProfile ?? "", "apparmor"), privileged, input.apparmor);
  if (apparmor !== undefined) spec.process.apparmorProfile = apparmor;

  if (!privileged) {
    const d = input.defaultSeccomp;
    const seccomp = seccompFor(seccompProfile(sc), {
      ...(d !== undefined ? { defaultSeccomp: typeof d === "function" ? () => d(caps) : d } : {}),
      ...(input.localhostSeccomp !== undefined ? { localhostSeccomp: input.localhostSeccomp } : {}),
    });
    if (seccomp !== undefined) spec.linux.seccomp = seccomp;
  }
  return spec;
}

function checkPathId(id: string, what: string): void {
  if (id === "" || id.includes("/") || id.includes(":") || id === "." || id === "..") throw new InvalidArgumentError(`${what} ${JSON.stringify(id)} is not usable in paths`);
}

function seccompProfile(sc: LinuxContainerSecurityContext | undefined): SecurityProfile | undefined {
  return sc?.seccomp ?? profileFromPath(sc?.seccompProfilePath ?? "", "seccomp");
}

// ------------------------------------------------------------------------------------ process

/** The kubelet's command and args, filled in from the image the way Docker does: the command
 * replaces the entrypoint and drops the image's Cmd; args alone replace only the Cmd. */
export function processArgs(config: Pick<ContainerConfig, "command" | "args">, image: ImageConfig): string[] {
  let command = config.command;
  let args = config.args;
  if (command.length === 0) {
    if (args.length === 0) args = image.config?.Cmd ?? [];
    const entrypoint = image.config?.Entrypoint ?? [];
    // `ENTRYPOINT [""]` is how a Dockerfile resets an inherited entrypoint.
    if (!(entrypoint.length === 1 && entrypoint[0] === "")) command = entrypoint;
  }
  const all = [...command, ...args];
  if (all.length === 0) throw new InvalidArgumentError("no command specified: neither the container config nor the image has a command or entrypoint");
  return all;
}

/** An ordered environment where a later assignment of a name replaces the earlier one in place
 * and a bare name (no "=") removes it. */
class Environment {
  private readonly vars = new Map<string, string>();
  apply(entry: string): void {
    const eq = entry.indexOf("=");
    if (eq < 0) {
      this.vars.delete(entry);
      return;
    }
    this.vars.set(entry.slice(0, eq), entry);
  }
  list(): string[] {
    return [...this.vars.values()];
  }
}

function envValue(v: Uint8Array | string): string {
  return typeof v === "string" ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("utf8");
}

/** PATH (a default the image usually replaces), TERM for terminals, HOSTNAME, then the image's
 * variables and the kubelet's, later ones winning. */
function processEnv(input: ContainerSpecInput): string[] {
  const env = new Environment();
  env.apply(DEFAULT_PATH_ENV);
  if (input.config.tty) env.apply("TERM=xterm");
  env.apply(`HOSTNAME=${input.hostname}`);
  for (const e of input.image.config?.Env ?? []) env.apply(e);
  for (const kv of input.config.envs) {
    if (kv.key === "" || kv.key.includes("=")) throw new InvalidArgumentError(`environment variable name ${JSON.stringify(kv.key)} is empty or contains "="`);
    env.apply(`${kv.key}=${envValue(kv.value)}`);
  }
  return env.list();
}

/** The capability set: the defaults (all for privileged), then ALL, then each name; add before
 * drop, so add ALL + drop X is everything but X and drop ALL + add X is only X. */
function capabilities(sc: LinuxContainerSecurityContext | undefined, privileged: boolean, withHostDevices: boolean, all: readonly string[]): string[] {
  const known = all.map(normalizeCapability);
  let caps = new Set(privileged ? known : DEFAULT_CAPABILITIES);
  const requested = sc?.capabilities;
  // containerd ignores add/drop for a privileged container unless it runs without host devices.
  if (requested === undefined || withHostDevices) return [...caps];
  const isAll = (c: string): boolean => c.trim().toUpperCase() === "ALL";
  if (requested.addCapabilities.some(isAll)) caps = new Set(known);
  if (requested.dropCapabilities.some(isAll)) caps = new Set();
  const available = new Set(known);
  for (const c of requested.addCapabilities.filter((c) => !isAll(c))) {
    const cap = normalizeCapability(c);
    if (!available.has(cap)) throw new InvalidArgumentError(`capability ${cap} cannot be granted: podshim itself does not hold it on this node`);
    caps.add(cap);
  }
  for (const c of requested.dropCapabilities.filter((c) => !isAll(c))) caps.delete(normalizeCapability(c));
  return [...caps];
}

export function oomScoreAdjFor(res: LinuxContainerResources | undefined, restrict: boolean, current: number): number | undefined {
  // Without resources containerd leaves the field out and the process inherits the shim's.
  if (res === undefined) return undefined;
  const adj = safeNumber(res.oomScoreAdj, "oom_score_adj");
  if (adj < -1000 || adj > 1000) throw new InvalidArgumentError(`oom_score_adj ${adj} is out of range -1000..1000`);
  return restrict ? Math.max(adj, current) : adj;
}

// ------------------------------------------------------------------------------------- mounts

/** A bind mount before it becomes an OCI mount: a CRI mount or one of the sandbox's files. */
interface Bind {
  containerPath: string;
  hostPath: string;
  readonly: boolean;
  recursiveReadOnly: boolean;
  propagation: MountPropagation;
}

/** Lexically clean, without a trailing slash: how mounts are compared and sorted. */
function cleanPath(p: string): string {
  const n = posixNormalize(p);
  return n.length > 1 && n.endsWith("/") ? n.slice(0, -1) : n;
}

function posixNormalize(p: string): string {
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return `/${out.join("/")}`;
}

const depth = (p: string): number => (p === "/" ? 0 : p.split("/").length - 1);

function criBind(m: CriMount, sources: Readonly<Record<string, string>> | undefined): Bind {
  if (m.image !== undefined && m.image.image !== "") throw new UnimplementedError(`mount ${m.containerPath}: image volumes are not supported`);
  if (m.uidMappings.length > 0 || m.gidMappings.length > 0) throw new UnimplementedError(`mount ${m.containerPath}: id-mapped mounts are not supported`);
  if (m.mountOptions.length > 0) throw new UnimplementedError(`mount ${m.containerPath}: mount options are not supported`);
  if (!m.containerPath.startsWith("/")) throw new InvalidArgumentError(`mount container path ${JSON.stringify(m.containerPath)} is not absolute`);
  if (!m.hostPath.startsWith("/")) throw new InvalidArgumentError(`mount host path ${JSON.stringify(m.hostPath)} for ${m.containerPath} is not absolute`);
  if (m.recursiveReadOnly) {
    // A recursively read-only mount under which host mounts could still appear would not be.
    if (!m.readonly) throw new InvalidArgumentError(`mount ${m.containerPath}: recursive read-only needs readonly`);
    if (m.propagation !== MountPropagation.PROPAGATION_PRIVATE) throw new InvalidArgumentError(`mount ${m.containerPath}: recursive read-only needs private propagation`);
  }
  return {
    containerPath: m.containerPath,
    hostPath: sources?.[m.hostPath] ?? m.hostPath,
    readonly: m.readonly,
    recursiveReadOnly: m.recursiveReadOnly,
    propagation: m.propagation,
  };
}

/** The sandbox's files at their usual places, each unless a CRI mount claims the path. */
function sandboxBinds(input: ContainerSpecInput, readonlyRootfs: boolean, hostIpc: boolean, claimed: ReadonlySet<string>): Bind[] {
  const out: Bind[] = [];
  const add = (containerPath: string, hostPath: string, readonly: boolean): void => {
    if (!claimed.has(containerPath)) out.push({ containerPath, hostPath, readonly, recursiveReadOnly: false, propagation: MountPropagation.PROPAGATION_PRIVATE });
  };
  add("/etc/hostname", input.files.hostname, readonlyRootfs);
  add("/etc/hosts", input.files.hosts, readonlyRootfs);
  add("/etc/resolv.conf", input.files.resolvConf, readonlyRootfs);
  // Without a pod-wide shm the container keeps the default private tmpfs.
  const shm = hostIpc ? "/dev/shm" : input.files.shm;
  if (shm !== undefined) add("/dev/shm", shm, false);
  return out;
}

function propagationOption(p: MountPropagation): "rprivate" | "rslave" | "rshared" {
  if (p === MountPropagation.PROPAGATION_BIDIRECTIONAL) return "rshared";
  if (p === MountPropagation.PROPAGATION_HOST_TO_CONTAINER) return "rslave";
  // Unknown values fall back to private, as containerd does, rather than leak mounts.
  return "rprivate";
}

function containerMounts(
  input: ContainerSpecInput,
  sc: LinuxContainerSecurityContext | undefined,
  hostIpc: boolean,
  privileged: boolean,
): { mounts: Mount[]; rootfsPropagation?: string } {
  const cri = input.config.mounts.map((m) => criBind(m, input.mountSources));
  const claimed = new Set(cri.map((b) => cleanPath(b.containerPath)));
  const binds = [...cri, ...sandboxBinds(input, sc?.readonlyRootfs === true, hostIpc, claimed)];
  // Parents before children, or a parent mounted later would hide its children; the sort is
  // stable so equal depths keep the kubelet's order.
  binds.sort((a, b) => depth(cleanPath(a.containerPath)) - depth(cleanPath(b.containerPath)));

  const base = defaultMounts().filter((m) => m.destination !== "/run");
  const cgroup = { ...CGROUP_MOUNT, options: [...CGROUP_MOUNT.options] };
  base.push(cgroup);
  if (privileged) {
    // A privileged container may reconfigure the node through sysfs and its cgroups.
    for (const m of base) if (m.type === "sysfs" || m.type === "cgroup") m.options = m.options.map((o) => (o === "ro" ? "rw" : o));
  }
  const bound = new Set(binds.map((b) => cleanPath(b.containerPath)));
  const mounts = base.filter((m) => {
    const dst = cleanPath(m.destination);
    // A /dev from the kubelet replaces everything the runtime would put under it.
    return !bound.has(dst) && !(bound.has("/dev") && dst.startsWith("/dev/"));
  });

  let rootfsPropagation: string | undefined;
  for (const b of binds) {
    const propagation = propagationOption(b.propagation);
    if (propagation === "rshared") rootfsPropagation = "rshared";
    else if (propagation === "rslave" && rootfsPropagation === undefined) rootfsPropagation = "rslave";
    const options = ["rbind", propagation, b.readonly ? "ro" : "rw"];
    if (b.recursiveReadOnly) options.push("rro");
    mounts.push({ destination: b.containerPath, type: "bind", source: b.hostPath, options });
  }
  return rootfsPropagation === undefined ? { mounts } : { mounts, rootfsPropagation };
}

function pathsOrDefault(requested: readonly string[] | undefined, defaults: readonly string[]): string[] {
  return requested !== undefined && requested.length > 0 ? [...requested] : [...defaults];
}

// ---------------------------------------------------------------------------------- namespaces

function containerNamespaces(input: ContainerSpecInput, privileged: boolean): LinuxNamespace[] {
  const ns = input.config.linux?.securityContext?.namespaceOptions;
  const userns = ns?.usernsOptions;
  if (userns !== undefined && userns.mode !== NamespaceMode.NODE) {
    if (userns.mode === NamespaceMode.POD) throw new UnimplementedError("user namespaces for pods are not supported yet");
    throw new InvalidArgumentError(`user namespace mode ${userns.mode} is not supported: only POD or NODE`);
  }
  const pid = ns?.pid ?? NamespaceMode.POD;
  const sandboxPid = (): number => {
    if (!Number.isInteger(input.sandboxPid) || input.sandboxPid <= 0) throw new InvalidArgumentError(`sandbox ${input.sandboxId} has no running pause process to join`);
    return input.sandboxPid;
  };
  const out: LinuxNamespace[] = [];
  switch (pid) {
    case NamespaceMode.NODE:
      break;
    case NamespaceMode.CONTAINER:
      out.push({ type: NamespaceType.Pid });
      break;
    case NamespaceMode.TARGET: {
      const target = input.targetPid;
      if (target === undefined || !Number.isInteger(target) || target <= 0) {
        throw new InvalidArgumentError(`PID namespace target ${JSON.stringify(ns?.targetId ?? "")} is not a running container of this pod`);
      }
      out.push({ type: NamespaceType.Pid, path: PROC_NS(target, "pid") });
      break;
    }
    case NamespaceMode.POD:
      out.push({ type: NamespaceType.Pid, path: PROC_NS(sandboxPid(), "pid") });
      break;
    default:
      throw new InvalidArgumentError(`unknown PID namespace mode ${pid}`);
  }
  if (ns?.ipc !== NamespaceMode.NODE) out.push({ type: NamespaceType.Ipc, path: PROC_NS(sandboxPid(), "ipc") });
  // The UTS namespace goes with the network: a host-network pod sees the node's hostname.
  if (ns?.network !== NamespaceMode.NODE) out.push({ type: NamespaceType.Uts, path: PROC_NS(sandboxPid(), "uts") });
  out.push({ type: NamespaceType.Mount });
  if (ns?.network !== NamespaceMode.NODE) out.push({ type: NamespaceType.Network, path: input.netnsPath ?? PROC_NS(sandboxPid(), "net") });
  // A cgroup namespace hides the node's hierarchy; containerd gives one only on v2, where the
  // container then sees its own cgroup as the root, and never to privileged containers.
  if (input.cgroupV2 && !privileged) out.push({ type: NamespaceType.Cgroup });
  return out;
}

// ---------------------------------------------------------------------------------- resources

function safeNumber(v: bigint, what: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`${what} ${v} is out of range`);
  return n;
}

function nonNegative(v: bigint, what: string): number {
  const n = safeNumber(v, what);
  if (n < 0) throw new InvalidArgumentError(`${what} ${v} is negative`);
  return n;
}

/**
 * The CRI resources on top of `base` (a copy is returned): only fields the kubelet set (non-zero,
 * non-empty) change, so the same function builds a new container's resources and applies an
 * UpdateContainerResources to a running one. Devices of `base` are kept.
 */
export function resourcesToSpec(res: LinuxContainerResources | undefined, opts: ResourceOptions, base: LinuxResources = { devices: [] }): LinuxResources {
  const out: LinuxResources = structuredClone(base);
  if (res === undefined) return out;
  const cpu = { ...out.cpu };
  const period = nonNegative(res.cpuPeriod, "cpu_period");
  const quota = safeNumber(res.cpuQuota, "cpu_quota");
  const shares = nonNegative(res.cpuShares, "cpu_shares");
  if (period !== 0) cpu.period = period;
  if (quota !== 0) cpu.quota = quota;
  if (shares !== 0) cpu.shares = shares;
  if (res.cpusetCpus !== "") cpu.cpus = res.cpusetCpus;
  if (res.cpusetMems !== "") cpu.mems = res.cpusetMems;
  if (Object.keys(cpu).length > 0) out.cpu = cpu;

  const memory = { ...out.memory };
  const limit = nonNegative(res.memoryLimitInBytes, "memory_limit_in_bytes");
  const swap = safeNumber(res.memorySwapLimitInBytes, "memory_swap_limit_in_bytes");
  if (limit !== 0) {
    memory.limit = limit;
    // Swap as large as memory means no swap at all: without this a limited container would
    // spill to swap instead of meeting its limit.
    if (swap === 0 && opts.swapController) memory.swap = limit;
  }
  if (swap !== 0 && opts.swapController) memory.swap = swap;
  if (Object.keys(memory).length > 0) out.memory = memory;

  if (res.hugepageLimits.length > 0 && opts.hugetlbController !== false) {
    const pages = new Map((out.hugepageLimits ?? []).map((h) => [h.pageSize, h.limit]));
    for (const h of res.hugepageLimits) pages.set(h.pageSize, nonNegative(h.limit, `hugepage limit ${h.pageSize}`));
    out.hugepageLimits = [...pages].map(([pageSize, limit]) => ({ pageSize, limit }));
  }

  // runc refuses unified keys on a v1 host outright.
  if (opts.cgroupV2 && Object.keys(res.unified).length > 0) out.unified = { ...out.unified, ...res.unified };
  return out;
}

/** UpdateContainerResources on a stored spec: a new spec whose linux.resources is what to hand
 * to containerd's Tasks.Update (and to keep for restarts). oom_score_adj is not changed: a
 * running process's cannot be lowered through the cgroup, and containerd leaves it too. */
export function applyResourceUpdate(spec: Spec, res: LinuxContainerResources, opts: ResourceOptions): Spec {
  const next = structuredClone(spec);
  next.linux.resources = resourcesToSpec(res, opts, spec.linux.resources);
  return next;
}

function applyDevices(spec: Spec, input: ContainerSpecInput, withHostDevices: boolean): void {
  const toSpec = (d: ResolvedDevice, owner?: { uid: number; gid: number }): LinuxDevice => ({
    path: d.path,
    type: d.type,
    major: d.major,
    minor: d.minor,
    fileMode: d.fileMode,
    uid: owner?.uid ?? d.uid,
    gid: owner?.gid ?? d.gid,
  });
  if (withHostDevices) {
    const host = input.hostDevices ?? [];
    if (host.length > 0) spec.linux.devices = host.map((d) => toSpec(d));
    spec.linux.resources.devices = [{ ...ALLOW_ALL_DEVICES }];
    return;
  }
  const devices = input.devices ?? [];
  const owner = input.deviceOwnershipFromSecurityContext ? { uid: spec.process.user.uid, gid: spec.process.user.gid } : undefined;
  const rules: LinuxDeviceCgroup[] = DEFAULT_DEVICE_RULES.map((r) => ({ ...r }));
  for (const d of devices) rules.push({ allow: true, type: d.type, major: d.major, minor: d.minor, access: d.permissions });
  spec.linux.resources.devices = [...rules, ...spec.linux.resources.devices];
  if (devices.length > 0) spec.linux.devices = devices.map((d) => toSpec(d, owner));
}

// -------------------------------------------------------------------------------- annotations

function containerAnnotations(input: ContainerSpecInput, name: string): Record<string, string> {
  const meta = input.sandboxConfig.metadata;
  return {
    [CriAnnotation.ContainerType]: ContainerType.Container,
    [CriAnnotation.SandboxId]: input.sandboxId,
    [CriAnnotation.SandboxNamespace]: meta?.namespace ?? "",
    [CriAnnotation.SandboxUid]: meta?.uid ?? "",
    [CriAnnotation.SandboxName]: meta?.name ?? "",
    [CriAnnotation.ContainerName]: name,
    [CriAnnotation.ImageName]: input.imageName,
  };
}

// ------------------------------------------------------------------------------------ signals

const SIGNALS: Readonly<Record<string, number>> = Object.freeze({
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, IOT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11, USR2: 12,
  PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CLD: 17, CONT: 18, STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22,
  URG: 23, XCPU: 24, XFSZ: 25, VTALRM: 26, PROF: 27, WINCH: 28, IO: 29, POLL: 29, PWR: 30, SYS: 31,
});
/** glibc's SIGRTMIN: the kernel's 32 and 33 belong to the threading library, so images and
 * Go's signal tables count real-time signals from 34. */
const SIGRTMIN = 34;
const SIGRTMAX = 64;
export const SIGTERM = 15;

/** A signal as images and people write it: "SIGTERM", "term", "15", "SIGRTMIN+3", "RTMAX-1". */
export function parseSignal(text: string): number {
  const t = text.trim().toUpperCase();
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    if (n >= 1 && n <= SIGRTMAX) return n;
    throw new InvalidArgumentError(`signal ${text} is out of range 1..${SIGRTMAX}`);
  }
  const name = t.startsWith("SIG") ? t.slice(3) : t;
  const known = SIGNALS[name];
  if (known !== undefined) return known;
  const rt = /^RT(MIN|MAX)(?:([+-])(\d+))?$/.exec(name);
  if (rt) {
    const offset = rt[3] === undefined ? 0 : Number(rt[3]);
    const n = rt[1] === "MIN" ? (rt[2] === "-" ? NaN : SIGRTMIN + offset) : rt[2] === "+" ? NaN : SIGRTMAX - offset;
    if (n >= SIGRTMIN && n <= SIGRTMAX) return n;
  }
  throw new InvalidArgumentError(`unknown signal ${JSON.stringify(text)}`);
}

const CRI_SIGNAL_NAMES = new Map<number, string>(Object.entries(Signal).map(([k, v]) => [v as number, k]));

/** The number of a CRI Signal enum value; undefined for SIGNAL_RUNTIME_DEFAULT and unknown ones. */
export function criSignalNumber(signal: Signal): number | undefined {
  const key = CRI_SIGNAL_NAMES.get(signal);
  if (key === undefined || !key.startsWith("SIGNAL_SIG")) return undefined;
  return parseSignal(key.slice("SIGNAL_SIG".length).replace("PLUS", "+").replace("MINUS", "-"));
}

// Aliases (SIGIOT, SIGCLD, SIGPOLL) come after the names they alias in the enum; the first wins.
const CRI_SIGNALS_BY_NUMBER = new Map<number, Signal>();
for (const value of CRI_SIGNAL_NAMES.keys()) {
  const n = criSignalNumber(value as Signal);
  if (n !== undefined && !CRI_SIGNALS_BY_NUMBER.has(n)) CRI_SIGNALS_BY_NUMBER.set(n, value as Signal);
}

/** The CRI Signal enum value for a signal number, for ContainerStatus.stop_signal. */
export function criSignalOf(signal: number): Signal {
  return CRI_SIGNALS_BY_NUMBER.get(signal) ?? Signal.SIGNAL_RUNTIME_DEFAULT;
}

/** The signal StopContainer sends first: the config's, else the image's STOPSIGNAL, else SIGTERM. */
export function effectiveStopSignal(config: Pick<ContainerConfig, "stopSignal">, image: ImageConfig): number {
  const fromConfig = criSignalNumber(config.stopSignal);
  if (fromConfig !== undefined) return fromConfig;
  const fromImage = image.config?.StopSignal;
  if (fromImage !== undefined && fromImage !== "") return parseSignal(fromImage);
  return SIGTERM;
}
