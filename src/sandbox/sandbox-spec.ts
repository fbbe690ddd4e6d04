// The OCI spec of a pod's pause container, as containerd's CRI plugin builds it
// (internal/cri/server/podsandbox/sandbox_run_linux.go, pkg/cri/server/sandbox_run_linux.go in
// 1.6/1.7). Pure: everything it needs from the node comes in through SandboxSpecInput, so every
// rule is a unit test away.
//
// The pause container only holds namespaces, so it gets less than an app container: no cgroup
// mount, no /etc/hosts or /etc/hostname (only resolv.conf, which VM-based runtimes read to set up
// the guest's DNS), a read-only root, minimal CPU shares and the default capabilities even when
// the pod is privileged. Like app containers (and containerd's), it has no /run tmpfs.
import { InvalidArgumentError, UnimplementedError } from "../errors/errors.js";
import type { Int64Value, PodSandboxConfig, SecurityProfile } from "../gen/cri/runtime/v1/api.js";
import { NamespaceMode } from "../gen/cri/runtime/v1/api.js";
import type { ImageConfig } from "../distribution/manifest.js";
import {
  DEFAULT_DEVICE_RULES,
  DEFAULT_MASKED_PATHS,
  DEFAULT_READONLY_PATHS,
  defaultCapabilities,
  defaultMounts,
  defaultNamespaces,
  SANDBOX_CPU_SHARES,
  SANDBOX_OOM_SCORE_ADJ,
} from "../oci/defaults.js";
import { cgroupsPath, type CgroupDriver } from "../oci/cgroups.js";
import { checkId } from "../oci/ids.js";
import { profileFromPath, seccompFor } from "../oci/security-profile.js";
import type { LinuxNamespace, LinuxSeccomp, Mount, Spec, User } from "../oci/spec-types.js";
import { ContainerType, CriAnnotation, NamespaceType, OCI_VERSION } from "../oci/spec-types.js";
import { checkSysctls } from "../oci/sysctl.js";
import type { SandboxFilePaths } from "./sandbox-files.js";

// Kept here too for the callers that found them here first.
export { CgroupDriver, cgroupsPath, DEFAULT_CGROUP_PARENT, DEFAULT_SYSTEMD_SLICE, SYSTEMD_SCOPE_PREFIX } from "../oci/cgroups.js";

export interface SandboxSpecInput {
  id: string;
  config: PodSandboxConfig;
  /** The pause image's config: its Entrypoint + Cmd, Env, WorkingDir and User are used. */
  image: ImageConfig;
  /** The pod's network namespace; absent for host-network pods. */
  netnsPath?: string;
  /** Not written into the spec (containerd writes no such annotation either); kept so callers
   * pass one input for the sandbox and its record. */
  runtimeHandler: string;
  cgroupDriver: CgroupDriver;
  /** Never ask for an oom_score_adj below podshim's own (hosts without CAP_SYS_RESOURCE). */
  restrictOomScoreAdj: boolean;
  /** podshim's own /proc/self/oom_score_adj, read by the caller. */
  currentOomScoreAdj: number;
  files: SandboxFilePaths;
  /** Recorded as io.kubernetes.cri.podsandbox.image-name, as containerd 2 does. */
  imageName?: string;
  /** The runtime default seccomp profile; absent = RuntimeDefault means unconfined. */
  defaultSeccomp?: LinuxSeccomp;
  /** Localhost profiles, read from the node by the caller, by their localhost_ref. */
  localhostSeccomp?: Readonly<Record<string, LinuxSeccomp>>;
  /** Pod annotations whose keys match one of these globs (`*`, `?`, `[...]`) are copied into
   * the spec: containerd's per-runtime pod_annotations. None by default. */
  podAnnotations?: readonly string[];
  /** containerd's enable_unprivileged_ports: net.ipv4.ip_unprivileged_port_start=0 in pod
   * network namespaces unless the pod sets it. */
  unprivilegedPorts?: boolean;
  /** containerd's enable_unprivileged_icmp: net.ipv4.ping_group_range="0 2147483647" likewise.
   * Leave it off when podshim itself runs in a user namespace, where the range is refused. */
  unprivilegedIcmp?: boolean;
}

const READONLY_BIND_OPTIONS = ["rbind", "ro", "nosuid", "nodev", "noexec"];

export function buildSandboxSpec(input: SandboxSpecInput): Spec {
  const { id, config } = input;
  if (id === "" || id.includes("/") || id.includes(":")) throw new InvalidArgumentError(`sandbox id ${JSON.stringify(id)} is not usable in paths`);
  const linux = config.linux;
  const security = linux?.securityContext;
  const ns = security?.namespaceOptions;
  const hostNetwork = ns?.network === NamespaceMode.NODE;
  const hostPid = ns?.pid === NamespaceMode.NODE;
  const hostIpc = ns?.ipc === NamespaceMode.NODE;
  const privileged = security?.privileged === true;

  if (!hostNetwork && !input.netnsPath) throw new InvalidArgumentError("a pod without host networking needs a network namespace path");

  const spec: Spec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: false,
      user: sandboxUser(input),
      args: processArgs(input.image),
      env: imageEnv(input.image),
      cwd: input.image.config?.WorkingDir || "/",
      capabilities: { bounding: defaultCapabilities(), effective: defaultCapabilities(), permitted: defaultCapabilities() },
      noNewPrivileges: true,
      oomScoreAdj: input.restrictOomScoreAdj ? Math.max(SANDBOX_OOM_SCORE_ADJ, input.currentOomScoreAdj) : SANDBOX_OOM_SCORE_ADJ,
    },
    root: { path: "rootfs", readonly: true },
    mounts: sandboxMounts(input, hostIpc, privileged),
    annotations: sandboxAnnotations(input),
    linux: {
      resources: { devices: DEFAULT_DEVICE_RULES.map((d) => ({ ...d })), cpu: { shares: SANDBOX_CPU_SHARES } },
      cgroupsPath: cgroupsPath(id, linux?.cgroupParent ?? "", input.cgroupDriver),
      namespaces: sandboxNamespaces(input, { hostNetwork, hostPid, hostIpc }),
      maskedPaths: [...DEFAULT_MASKED_PATHS],
      readonlyPaths: [...DEFAULT_READONLY_PATHS],
    },
  };
  // runc refuses a hostname without a UTS namespace of the container's own, and a host-network
  // pod shares the node's; the kubelet sends none for such pods anyway.
  if (!hostNetwork && config.hostname !== "") spec.hostname = config.hostname;

  const sysctl = sandboxSysctls(input, hostNetwork, hostIpc);
  if (Object.keys(sysctl).length > 0) spec.linux.sysctl = sysctl;

  const seccomp = sandboxSeccomp(input, privileged);
  if (seccomp !== undefined) spec.linux.seccomp = seccomp;
  return spec;
}

function processArgs(image: ImageConfig): string[] {
  const args = [...(image.config?.Entrypoint ?? []), ...(image.config?.Cmd ?? [])];
  return args.length > 0 ? args : ["/pause"];
}

// An entry without "=" unsets a variable, and there is nothing before the image's own to unset.
function imageEnv(image: ImageConfig): string[] {
  return (image.config?.Env ?? []).filter((e) => e.includes("="));
}

function parseImageUser(user: string): { uid: number; gid: number } {
  const m = /^(\d+)(?::(\d+))?$/.exec(user);
  // Names need the image's /etc/passwd; pause images name users by number (pause 3.8+ uses
  // 65535:65535), and one that does not is better refused here than half-resolved.
  if (!m) throw new InvalidArgumentError(`the pause image's user ${JSON.stringify(user)} is not numeric (uid or uid:gid)`);
  return { uid: checkId(Number(m[1]), "image uid"), gid: m[2] === undefined ? 0 : checkId(Number(m[2]), "image gid") };
}

/** runAsUser/runAsGroup when given, else the image's User, else root. A uid without a gid gets
 * gid 0, which is also what a lookup in a pause image (no /etc/passwd) finds. */
function sandboxUser(input: SandboxSpecInput): User {
  const security = input.config.linux?.securityContext;
  const runAsUser: Int64Value | undefined = security?.runAsUser;
  const runAsGroup: Int64Value | undefined = security?.runAsGroup;
  let uid = 0;
  let gid = 0;
  if (runAsUser !== undefined) {
    uid = checkId(runAsUser.value, "runAsUser");
    if (runAsGroup !== undefined) gid = checkId(runAsGroup.value, "runAsGroup");
  } else if (runAsGroup !== undefined) {
    throw new InvalidArgumentError(`runAsGroup ${runAsGroup.value} is specified without runAsUser`);
  } else if (input.image.config?.User) {
    ({ uid, gid } = parseImageUser(input.image.config.User));
  }
  const groups = (security?.supplementalGroups ?? []).map((g) => checkId(g, "supplemental group"));
  return { uid, gid, additionalGids: [...new Set(groups)].sort((a, b) => a - b) };
}

function sandboxNamespaces(
  input: SandboxSpecInput,
  host: { hostNetwork: boolean; hostPid: boolean; hostIpc: boolean },
): LinuxNamespace[] {
  const userns = input.config.linux?.securityContext?.namespaceOptions?.usernsOptions;
  if (userns !== undefined && userns.mode !== NamespaceMode.NODE) {
    if (userns.mode === NamespaceMode.POD) throw new UnimplementedError("user namespaces for pods are not supported yet");
    throw new InvalidArgumentError(`user namespace mode ${userns.mode} is not supported: only POD or NODE`);
  }
  const out: LinuxNamespace[] = [];
  for (const n of defaultNamespaces()) {
    if (n.type === NamespaceType.Pid && host.hostPid) continue;
    if (n.type === NamespaceType.Ipc && host.hostIpc) continue;
    // The UTS namespace goes with the network: a host-network pod sees the node's hostname.
    if ((n.type === NamespaceType.Uts || n.type === NamespaceType.Network) && host.hostNetwork) continue;
    if (n.type === NamespaceType.Network) n.path = input.netnsPath;
    out.push(n);
  }
  return out;
}

function sandboxMounts(input: SandboxSpecInput, hostIpc: boolean, privileged: boolean): Mount[] {
  const sharedShm = hostIpc ? "/dev/shm" : input.files.shm;
  const mounts = defaultMounts().filter((m) => m.destination !== "/run" && !(m.destination === "/dev/shm" && sharedShm !== undefined));
  if (privileged) {
    // A privileged pod may reconfigure the node through sysfs; containerd lets its pause
    // container see it writable too.
    const sys = mounts.find((m) => m.destination === "/sys");
    if (sys) sys.options = sys.options.map((o) => (o === "ro" ? "rw" : o));
  }
  // The pause container only keeps the shm alive; read-only is enough, and nosuid/nodev/noexec
  // keep the remount valid inside a user namespace.
  if (sharedShm !== undefined) mounts.push({ destination: "/dev/shm", type: "bind", source: sharedShm, options: [...READONLY_BIND_OPTIONS] });
  mounts.push({ destination: "/etc/resolv.conf", type: "bind", source: input.files.resolvConf, options: [...READONLY_BIND_OPTIONS] });
  return mounts;
}

function sandboxSysctls(input: SandboxSpecInput, hostNetwork: boolean, hostIpc: boolean): Record<string, string> {
  const out = checkSysctls(input.config.linux?.sysctls ?? {}, { hostNetwork, hostIpc });
  if (!hostNetwork) {
    if (input.unprivilegedPorts && !("net.ipv4.ip_unprivileged_port_start" in out)) out["net.ipv4.ip_unprivileged_port_start"] = "0";
    if (input.unprivilegedIcmp && !("net.ipv4.ping_group_range" in out)) out["net.ipv4.ping_group_range"] = "0 2147483647";
  }
  return out;
}

/** The profile from the security context, else from the deprecated path string. */
function seccompProfile(input: SandboxSpecInput): SecurityProfile | undefined {
  const security = input.config.linux?.securityContext;
  return security?.seccomp ?? profileFromPath(security?.seccompProfilePath ?? "", "seccomp");
}

function sandboxSeccomp(input: SandboxSpecInput, privileged: boolean): LinuxSeccomp | undefined {
  if (privileged) return undefined;
  return seccompFor(seccompProfile(input), input);
}

// Go's path.Match, which containerd uses for pod_annotations: `*`, `?` and `[...]` (negated
// with `^`) never match "/".
function globToRegExp(glob: string): RegExp {
  const literal = (c: string): string => c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 2);
      // Go reports a malformed pattern as an error, which containerd treats as no match.
      if (end < 0) return /(?!)/;
      re += `(?!/)[${glob.slice(i + 1, end)}]`;
      i = end;
    } else if (c === "\\" && i + 1 < glob.length) re += literal(glob[++i]!);
    else re += literal(c);
  }
  return new RegExp(`^${re}$`);
}

function sandboxAnnotations(input: SandboxSpecInput): Record<string, string> {
  const { config } = input;
  const out: Record<string, string> = {};
  const patterns = (input.podAnnotations ?? []).map(globToRegExp);
  if (patterns.length > 0) {
    for (const [k, v] of Object.entries(config.annotations)) if (patterns.some((p) => p.test(k))) out[k] = v;
  }
  const res = config.linux?.resources;
  if (res !== undefined) {
    // VM-based runtimes size the guest from these before any container exists.
    out[CriAnnotation.SandboxCpuPeriod] = res.cpuPeriod.toString();
    out[CriAnnotation.SandboxCpuQuota] = res.cpuQuota.toString();
    out[CriAnnotation.SandboxCpuShares] = res.cpuShares.toString();
    out[CriAnnotation.SandboxMemory] = res.memoryLimitInBytes.toString();
  }
  // Ours last: a pod annotation cannot pose as the sandbox's identity.
  out[CriAnnotation.SandboxId] = input.id;
  out[CriAnnotation.SandboxNamespace] = config.metadata?.namespace ?? "";
  out[CriAnnotation.SandboxUid] = config.metadata?.uid ?? "";
  out[CriAnnotation.SandboxName] = config.metadata?.name ?? "";
  out[CriAnnotation.SandboxLogDirectory] = config.logDirectory;
  if (input.imageName !== undefined) out[CriAnnotation.SandboxImageName] = input.imageName;
  out[CriAnnotation.ContainerType] = ContainerType.Sandbox;
  return out;
}
