// Request validation at the CRI boundary, once, before any handler does work: every string that
// can reach a file name, a process argument, an environment variable or a file podshim writes
// is checked here, so a caller's mistake is INVALID_ARGUMENT and leaves nothing behind, never a
// TypeError from spawn or a refusal from runc reported as INTERNAL.
//
// The limits are Kubernetes' own (names as DNS labels and subdomains, hostname <= 64), the
// kernel's (namespaced sysctls only), and the ranges the cgroup files accept.
import { isIP } from "node:net";
import { InvalidArgumentError } from "../errors/errors.js";
import {
  NamespaceMode, Protocol,
  type ContainerConfig, type LinuxContainerResources, type LinuxContainerSecurityContext, type Mount,
  type PodSandboxConfig,
} from "../gen/cri/runtime/v1/api.js";
import { sysctlNamespace } from "../oci/sysctl.js";
import type * as cri from "../gen/cri/runtime/v1/api.js";
import type { AnyStreamRpc, AnyUnaryRpc, Handlers } from "../rpc/handlers.js";

// Case is not enforced: the kubelet sends lower case, but critest names its pods with capitals.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/i;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/i;
const HOSTNAME = /^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$/;
// Sysctl names: dotted (or slashed, for interface names with dots) words; never a path step.
const SYSCTL_NAME = /^[A-Za-z0-9_]+(?:[./][A-Za-z0-9_:-]+)*$/;
const CGROUP_FILE = /^[a-z][a-z0-9_]*\.[a-z0-9_.]+$/;
const CPUSET = /^$|^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$/;
const CAPABILITY = /^(CAP_)?[A-Za-z_]{1,32}$|^ALL$/i;
const PAGE_SIZE = /^[0-9]+(B|KB|MB|GB|TB|PB)$/;
const MAX_ID = 256;
const MAX_UID = 0xffff_fffe;
const MAX_PATH = 4096;

function fail(message: string): never {
  throw new InvalidArgumentError(message);
}

/** Any string anywhere in the request containing NUL: it would cut a C string short or make
 * Node's spawn throw. Bytes fields (Buffers) are data and may hold anything. */
function checkNoNul(value: unknown, path: string, rpc: string, depth = 0): void {
  if (typeof value === "string") {
    if (value.includes("\0")) fail(`${rpc}: ${path} contains a NUL byte`);
    return;
  }
  if (value === null || typeof value !== "object" || depth > 32 || ArrayBuffer.isView(value)) return;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) checkNoNul(value[i], `${path}[${i}]`, rpc, depth + 1);
    return;
  }
  for (const [k, v] of Object.entries(value)) {
    if (k.includes("\0")) fail(`${rpc}: a key in ${path} contains a NUL byte`);
    checkNoNul(v, path === "" ? k : `${path}.${k}`, rpc, depth + 1);
  }
}

const show = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}...` : s);

function checkId(rpc: string, field: string, id: string): void {
  if (id === "") fail(`${rpc}: ${field} is required`);
  if (id.length > MAX_ID) fail(`${rpc}: ${field} is ${id.length} characters long (at most ${MAX_ID})`);
}

function checkDnsLabel(rpc: string, field: string, s: string): void {
  if (s === "") fail(`${rpc}: ${field} is required`);
  if (s.length > 63 || !DNS_LABEL.test(s)) fail(`${rpc}: ${field} ${show(s)} must be a DNS label (letters, digits and '-', at most 63)`);
}

/**
 * A container's name: a DNS label's characters, but up to 253 of them. The kubelet's names are
 * DNS labels; other CRI clients make longer ones (critest's "container-for-execSync-test-" and a
 * UUID is 64), and containerd's CRI takes them, so refusing them would tell podshim from it.
 */
function checkContainerName(rpc: string, field: string, s: string): void {
  if (s === "") fail(`${rpc}: ${field} is required`);
  if (s.length > 253 || !DNS_LABEL.test(s)) fail(`${rpc}: ${field} ${show(s)} must be letters, digits and '-', at most 253`);
}

function checkDnsSubdomain(rpc: string, field: string, s: string): void {
  if (s === "") fail(`${rpc}: ${field} is required`);
  if (s.length > 253 || !DNS_SUBDOMAIN.test(s)) fail(`${rpc}: ${field} ${show(s)} must be a DNS subdomain (letters, digits, '-' and '.', at most 253)`);
}

function hasDotDot(p: string): boolean {
  return p.split("/").includes("..");
}

function checkAbsolute(rpc: string, field: string, p: string, { optional = true, noDotDot = true } = {}): void {
  if (p === "") {
    if (!optional) fail(`${rpc}: ${field} is required`);
    return;
  }
  if (!p.startsWith("/")) fail(`${rpc}: ${field} ${show(p)} must be an absolute path`);
  if (p.length > MAX_PATH) fail(`${rpc}: ${field} is longer than ${MAX_PATH} characters`);
  if (noDotDot && hasDotDot(p)) fail(`${rpc}: ${field} ${show(p)} must not contain '..'`);
}

function checkOneLine(rpc: string, field: string, s: string, max = 1024): void {
  if (/[\r\n]/.test(s)) fail(`${rpc}: ${field} ${show(s)} must be one line`);
  if (s.length > max) fail(`${rpc}: ${field} is longer than ${max} characters`);
}

function checkRange(rpc: string, field: string, v: bigint | number, min: bigint, max: bigint): void {
  const b = BigInt(v);
  if (b < min || b > max) fail(`${rpc}: ${field} ${b} is out of range (${min}..${max})`);
}

function checkUid(rpc: string, field: string, v: bigint | undefined): void {
  if (v !== undefined) checkRange(rpc, field, v, 0n, BigInt(MAX_UID));
}

/** The cgroup values runc writes; out of range the kernel refuses them at start. */
export function checkResources(rpc: string, field: string, r: LinuxContainerResources | undefined): void {
  if (r === undefined) return;
  // 0 = not set; cpu.shares accepts 2..262144.
  if (r.cpuShares !== 0n) checkRange(rpc, `${field}.cpu_shares`, r.cpuShares, 2n, 262_144n);
  if (r.cpuPeriod !== 0n) checkRange(rpc, `${field}.cpu_period`, r.cpuPeriod, 1_000n, 1_000_000n);
  if (r.cpuQuota !== 0n && r.cpuQuota !== -1n) checkRange(rpc, `${field}.cpu_quota`, r.cpuQuota, 1_000n, 1n << 53n);
  checkRange(rpc, `${field}.memory_limit_in_bytes`, r.memoryLimitInBytes, 0n, 1n << 62n);
  if (r.memorySwapLimitInBytes !== -1n) checkRange(rpc, `${field}.memory_swap_limit_in_bytes`, r.memorySwapLimitInBytes, 0n, 1n << 62n);
  checkRange(rpc, `${field}.oom_score_adj`, r.oomScoreAdj, -1000n, 1000n);
  if (!CPUSET.test(r.cpusetCpus)) fail(`${rpc}: ${field}.cpuset_cpus ${show(r.cpusetCpus)} is not a CPU list like 0-3,6`);
  if (!CPUSET.test(r.cpusetMems)) fail(`${rpc}: ${field}.cpuset_mems ${show(r.cpusetMems)} is not a node list like 0-1`);
  for (const h of r.hugepageLimits) {
    if (!PAGE_SIZE.test(h.pageSize)) fail(`${rpc}: ${field}.hugepage_limits page size ${show(h.pageSize)} is not like 2MB`);
    checkRange(rpc, `${field}.hugepage_limits[${h.pageSize}]`, h.limit, 0n, 1n << 62n);
  }
  for (const [k, v] of Object.entries(r.unified)) {
    // Each key names a file in the cgroup directory.
    if (!CGROUP_FILE.test(k) || k.includes("..")) fail(`${rpc}: ${field}.unified key ${show(k)} is not a cgroup file name like memory.high`);
    checkOneLine(rpc, `${field}.unified[${k}]`, v, 4096);
  }
}

function checkMounts(rpc: string, mounts: readonly Mount[]): void {
  for (const [i, m] of mounts.entries()) {
    checkAbsolute(rpc, `mounts[${i}].container_path`, m.containerPath, { optional: false });
    // Host paths are the node's own and may legitimately hold '..' through symlinks; only shape.
    if (m.image === undefined || m.hostPath !== "") checkAbsolute(rpc, `mounts[${i}].host_path`, m.hostPath, { optional: false, noDotDot: false });
    if (m.imageSubPath !== "" && (m.imageSubPath.startsWith("/") || hasDotDot(m.imageSubPath))) fail(`${rpc}: mounts[${i}].image_sub_path ${show(m.imageSubPath)} must be relative without '..'`);
  }
}

function checkSysctls(rpc: string, sysctls: Readonly<Record<string, string>>, hostNetwork: boolean, hostIpc: boolean): void {
  for (const [k, v] of Object.entries(sysctls)) {
    if (k.length > 256 || !SYSCTL_NAME.test(k) || k.includes("..")) fail(`${rpc}: sysctl ${show(k)} is not a sysctl name`);
    const ns = sysctlNamespace(k);
    if (ns === undefined) fail(`${rpc}: sysctl ${k} is not namespaced: only kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.* and net.* may be set for a pod`);
    if (ns === "net" && hostNetwork) fail(`${rpc}: sysctl ${k} is not allowed with host networking`);
    if (ns === "ipc" && hostIpc) fail(`${rpc}: sysctl ${k} is not allowed with host IPC`);
    checkOneLine(rpc, `sysctl ${k}`, v, 4096);
  }
}

/** Pod sandbox config: RunPodSandbox, and CreateContainer's copy of it. */
export function checkSandboxConfig(rpc: string, c: PodSandboxConfig | undefined): void {
  if (c === undefined) fail(`${rpc}: config is required`);
  const m = c.metadata;
  if (m === undefined) fail(`${rpc}: config.metadata is required`);
  checkDnsSubdomain(rpc, "metadata.name", m.name);
  checkDnsLabel(rpc, "metadata.namespace", m.namespace);
  if (m.uid === "") fail(`${rpc}: metadata.uid is required`);
  if (m.uid.length > 128 || m.uid.includes("/") || /\s/.test(m.uid)) fail(`${rpc}: metadata.uid ${show(m.uid)} must be at most 128 characters, without '/' or spaces`);
  if (c.hostname !== "" && (c.hostname.length > 64 || !HOSTNAME.test(c.hostname))) fail(`${rpc}: hostname ${show(c.hostname)} must be at most 64 letters, digits, '-' or '.'`);
  checkAbsolute(rpc, "log_directory", c.logDirectory);
  for (const s of c.dnsConfig?.servers ?? []) if (isIP(s) === 0) fail(`${rpc}: dns_config server ${show(s)} is not an IP address`);
  for (const s of c.dnsConfig?.searches ?? []) if (s.length > 253 || /\s/.test(s) || s === "") fail(`${rpc}: dns_config search ${show(s)} is not a domain`);
  for (const s of c.dnsConfig?.options ?? []) if (s.length > 256 || /\s/.test(s) || s === "") fail(`${rpc}: dns_config option ${show(s)} must be one word`);
  for (const [i, p] of c.portMappings.entries()) {
    if (p.protocol !== Protocol.TCP && p.protocol !== Protocol.UDP && p.protocol !== Protocol.SCTP) fail(`${rpc}: port_mappings[${i}].protocol ${p.protocol} is unknown`);
    checkRange(rpc, `port_mappings[${i}].container_port`, p.containerPort, 1n, 65_535n);
    checkRange(rpc, `port_mappings[${i}].host_port`, p.hostPort, 0n, 65_535n);
    if (p.hostIp !== "" && isIP(p.hostIp) === 0) fail(`${rpc}: port_mappings[${i}].host_ip ${show(p.hostIp)} is not an IP address`);
  }
  const linux = c.linux;
  if (linux === undefined) return;
  if (linux.cgroupParent !== "" && (hasDotDot(linux.cgroupParent) || linux.cgroupParent.length > MAX_PATH)) fail(`${rpc}: cgroup_parent ${show(linux.cgroupParent)} must not contain '..'`);
  const ns = linux.securityContext?.namespaceOptions;
  checkSysctls(rpc, linux.sysctls, ns?.network === NamespaceMode.NODE, ns?.ipc === NamespaceMode.NODE);
  checkResources(rpc, "linux.resources", linux.resources);
  checkResources(rpc, "linux.overhead", linux.overhead);
  const sc = linux.securityContext;
  checkUid(rpc, "run_as_user", sc?.runAsUser?.value);
  checkUid(rpc, "run_as_group", sc?.runAsGroup?.value);
  for (const g of sc?.supplementalGroups ?? []) checkUid(rpc, "supplemental_groups", g);
}

function checkContainerSecurity(rpc: string, sc: LinuxContainerSecurityContext | undefined): void {
  if (sc === undefined) return;
  for (const c of [...(sc.capabilities?.addCapabilities ?? []), ...(sc.capabilities?.dropCapabilities ?? []), ...(sc.capabilities?.addAmbientCapabilities ?? [])]) {
    if (!CAPABILITY.test(c)) fail(`${rpc}: capability ${show(c)} is not a capability name`);
  }
  checkUid(rpc, "run_as_user", sc.runAsUser?.value);
  checkUid(rpc, "run_as_group", sc.runAsGroup?.value);
  for (const g of sc.supplementalGroups) checkUid(rpc, "supplemental_groups", g);
  if (sc.runAsUsername.length > 256 || sc.runAsUsername.includes(":")) fail(`${rpc}: run_as_username ${show(sc.runAsUsername)} is not a user name`);
  for (const p of sc.maskedPaths) checkAbsolute(rpc, "masked_paths", p, { optional: false });
  for (const p of sc.readonlyPaths) checkAbsolute(rpc, "readonly_paths", p, { optional: false });
}

export function checkContainerConfig(rpc: string, c: ContainerConfig | undefined): void {
  if (c === undefined) fail(`${rpc}: config is required`);
  if (c.metadata === undefined) fail(`${rpc}: config.metadata is required`);
  checkContainerName(rpc, "metadata.name", c.metadata.name);
  // log_path is joined under the pod's log_directory: relative, and never out of it.
  if (c.logPath !== "" && (c.logPath.startsWith("/") || hasDotDot(c.logPath) || c.logPath.length > MAX_PATH)) {
    fail(`${rpc}: log_path ${show(c.logPath)} must be a relative path without '..'`);
  }
  checkAbsolute(rpc, "working_dir", c.workingDir, { noDotDot: false });
  for (const [i, e] of c.envs.entries()) {
    if (e.key === "" || e.key.includes("=")) fail(`${rpc}: envs[${i}] key ${show(e.key)} must be non-empty and without '='`);
    // The value is bytes on the wire; a NUL would end it early in the process's environment.
    if (ArrayBuffer.isView(e.value) && (e.value as Uint8Array).includes(0)) fail(`${rpc}: envs[${i}] value contains a NUL byte`);
  }
  checkMounts(rpc, c.mounts);
  for (const [i, d] of c.devices.entries()) {
    checkAbsolute(rpc, `devices[${i}].container_path`, d.containerPath, { optional: false });
    checkAbsolute(rpc, `devices[${i}].host_path`, d.hostPath, { optional: false, noDotDot: false });
    if (!/^[rwm]{0,3}$/.test(d.permissions)) fail(`${rpc}: devices[${i}].permissions ${show(d.permissions)} must be a combination of r, w and m`);
  }
  checkResources(rpc, "linux.resources", c.linux?.resources);
  checkContainerSecurity(rpc, c.linux?.securityContext);
}

// What each RPC checks beyond NUL bytes. Absent = NUL bytes only.
const CHECKS = Object.freeze({
  RunPodSandbox: (r: cri.RunPodSandboxRequest) => checkSandboxConfig("RunPodSandbox", r.config),
  StopPodSandbox: (r: cri.StopPodSandboxRequest) => checkId("StopPodSandbox", "pod_sandbox_id", r.podSandboxId),
  RemovePodSandbox: (r: cri.RemovePodSandboxRequest) => checkId("RemovePodSandbox", "pod_sandbox_id", r.podSandboxId),
  PodSandboxStatus: (r: cri.PodSandboxStatusRequest) => checkId("PodSandboxStatus", "pod_sandbox_id", r.podSandboxId),
  PodSandboxStats: (r: cri.PodSandboxStatsRequest) => checkId("PodSandboxStats", "pod_sandbox_id", r.podSandboxId),
  CreateContainer: (r: cri.CreateContainerRequest) => {
    checkId("CreateContainer", "pod_sandbox_id", r.podSandboxId);
    checkContainerConfig("CreateContainer", r.config);
  },
  StartContainer: (r: cri.StartContainerRequest) => checkId("StartContainer", "container_id", r.containerId),
  StopContainer: (r: cri.StopContainerRequest) => {
    checkId("StopContainer", "container_id", r.containerId);
    checkRange("StopContainer", "timeout", r.timeout, -1n, 1n << 40n);
  },
  RemoveContainer: (r: cri.RemoveContainerRequest) => checkId("RemoveContainer", "container_id", r.containerId),
  ContainerStatus: (r: cri.ContainerStatusRequest) => checkId("ContainerStatus", "container_id", r.containerId),
  ContainerStats: (r: cri.ContainerStatsRequest) => checkId("ContainerStats", "container_id", r.containerId),
  ReopenContainerLog: (r: cri.ReopenContainerLogRequest) => checkId("ReopenContainerLog", "container_id", r.containerId),
  UpdateContainerResources: (r: cri.UpdateContainerResourcesRequest) => {
    checkId("UpdateContainerResources", "container_id", r.containerId);
    checkResources("UpdateContainerResources", "linux", r.linux);
  },
  ExecSync: (r: cri.ExecSyncRequest) => {
    checkId("ExecSync", "container_id", r.containerId);
    checkRange("ExecSync", "timeout", r.timeout, 0n, 1n << 40n);
  },
  Exec: (r: cri.ExecRequest) => checkId("Exec", "container_id", r.containerId),
  Attach: (r: cri.AttachRequest) => checkId("Attach", "container_id", r.containerId),
  PortForward: (r: cri.PortForwardRequest) => checkId("PortForward", "pod_sandbox_id", r.podSandboxId),
  PullImage: (r: cri.PullImageRequest) => {
    // Tokens travel as HTTP header values: printable ASCII only.
    for (const f of ["registryToken", "identityToken", "auth"] as const) {
      const v = (r.auth?.[f] ?? "") as string;
      if (!/^[\x20-\x7e]*$/.test(v)) fail(`PullImage: auth.${f} must be printable ASCII`);
    }
  },
} satisfies Record<string, (req: never) => void>);

/** Checks one request of `rpc`; throws InvalidArgumentError naming the field. */
export function validateRequest(rpc: string, req: unknown): void {
  checkNoNul(req, "", rpc);
  // The transport decoded req with rpc's own deserializer, so it is the type rpc's check takes.
  (CHECKS as Readonly<Record<string, ((req: unknown) => void) | undefined>>)[rpc]?.(req);
}

/** The same handlers, each validating its request before it runs. */
export function withValidation(h: Partial<Handlers>): Partial<Handlers> {
  const unary: Record<string, AnyUnaryRpc> = {};
  const stream: Record<string, AnyStreamRpc> = {};
  for (const [rpc, fn] of Object.entries(h.unary ?? {})) {
    unary[rpc] = async (req, ctx) => {
      validateRequest(rpc, req);
      return fn(req, ctx);
    };
  }
  for (const [rpc, fn] of Object.entries(h.stream ?? {})) {
    stream[rpc] = async (req, send, ctx) => {
      validateRequest(rpc, req);
      return fn(req, send, ctx);
    };
  }
  return { ...h, unary, stream };
}
