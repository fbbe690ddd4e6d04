import { isAbsolute } from "node:path";
import { defaultRuntimes, type RuntimeHandlerConfig } from "./runtimes.js";

// Every setting podshim has, once: its flag, its TOML key, its default, how a value is
// checked, and the line `podshim --help` prints. Flags and TOML keys are an interface
// scripts and docs rely on: rename nothing.

export interface Config {
  listen: string;
  containerd: string;
  namespace: string;
  root: string;
  state: string;
  cniConfDir: string;
  cniBinDirs: string[];
  pauseImage: string;
  registryConfigDir: string;
  streamAddress: { host: string; port: number };
  /** PEM files for a TLS streaming server; "" = plain HTTP (the default, on loopback). */
  streamTlsCert: string;
  streamTlsKey: string;
  restrictOomScoreAdj: boolean;
  /** containerd's enable_unprivileged_ports: pods' network namespaces let any user bind any port. */
  enableUnprivilegedPorts: boolean;
  /** containerd's enable_unprivileged_icmp: any group may open ICMP echo sockets in pods. */
  enableUnprivilegedIcmp: boolean;
  /** containerd's device_ownership_from_security_context: CRI devices owned by the process's uid/gid. */
  deviceOwnershipFromSecurityContext: boolean;
  cgroupDriver: CgroupDriver;
  logLevel: LogLevel;
  /** On SIGTERM, how long in-flight calls may run before they are cut off and undone. */
  shutdownGraceSeconds: number;
  /** What RuntimeDefault seccomp means: the baseline allow-list or the older deny-list. */
  seccompDefaultProfile: SeccompDefaultProfile;
  /** Port-forward caps: concurrent connections per pod and in total, streams per SPDY session. */
  portForwardMaxPerPod: number;
  portForwardMaxTotal: number;
  streamMaxStreamsPerSession: number;
  /** Prometheus /metrics, /healthz and /readyz; undefined = off (the default). */
  metricsAddress: { host: string; port: number } | undefined;
  /** The peer mirror (src/peer): where this node serves its content by digest; undefined = off. */
  peerAddress: { host: string; port: number } | undefined;
  /** Peers tried before the registry for content by digest, as HOST:PORT. */
  peers: string[];
  /** A file of peers (HOST:PORT per line), re-read when it changes; "" = none. */
  peersFile: string;
  /** Resolve tags from peers when the registry cannot, and answer peers' tag requests. */
  peerResolveTags: boolean;
  /** RuntimeClass handlers by name; "" is the default. TOML only ([runtimes.<name>]). */
  runtimes: Record<string, RuntimeHandlerConfig>;
}

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const CGROUP_DRIVERS = ["cgroupfs", "systemd"] as const;
export type CgroupDriver = (typeof CGROUP_DRIVERS)[number];
export const SECCOMP_DEFAULT_PROFILES = ["baseline", "denylist"] as const;
export type SeccompDefaultProfile = (typeof SECCOMP_DEFAULT_PROFILES)[number];

/** Thrown for a bad value; the message is one line that names the flag. */
export class ConfigError extends Error {}

type Parse<T> = (raw: unknown, source: string) => T;

export interface OptionSpec<K extends keyof Config = keyof Config> {
  key: K;
  flag: string;
  toml: string;
  kind: "string" | "boolean" | "list";
  metavar?: string;
  help: string;
  defaultText: string;
  parse: Parse<Config[K]>;
}

function str(raw: unknown, source: string): string {
  if (typeof raw !== "string") throw new ConfigError(`${source} must be a string`);
  if (raw.trim() === "") throw new ConfigError(`${source} must not be empty`);
  return raw;
}

function absPath(raw: unknown, source: string): string {
  const s = str(raw, source);
  if (!isAbsolute(s)) throw new ConfigError(`${source} must be an absolute path, got "${s}"`);
  return s.length > 1 ? s.replace(/\/+$/, "") : s;
}

/** A unix socket path, with or without the unix:// scheme that kubelet and crictl use. */
function socketPath(raw: unknown, source: string): string {
  let s = str(raw, source);
  if (s.startsWith("unix://")) s = s.slice("unix://".length);
  else if (s.startsWith("unix:")) s = s.slice("unix:".length);
  const path = absPath(s, source);
  // sun_path holds 108 bytes including the terminating NUL.
  if (Buffer.byteLength(path) > 107) throw new ConfigError(`${source} is too long for a unix socket (${Buffer.byteLength(path)} bytes, at most 107)`);
  return path;
}

function oneOf<T extends string>(values: readonly T[]): Parse<T> {
  return (raw, source) => {
    const s = str(raw, source);
    if (!(values as readonly string[]).includes(s)) {
      throw new ConfigError(`${source} must be one of ${values.join(", ")}, got "${s}"`);
    }
    return s as T;
  };
}

function bool(raw: unknown, source: string): boolean {
  if (typeof raw === "boolean") return raw;
  if (raw === "true" || raw === "1") return true;
  if (raw === "false" || raw === "0") return false;
  throw new ConfigError(`${source} must be true or false, got ${JSON.stringify(raw)}`);
}

/** A whole number of seconds, 0 to 3600. */
function seconds(raw: unknown, source: string): number {
  const n = typeof raw === "number" ? raw : Number(str(raw, source));
  if (!Number.isInteger(n) || n < 0 || n > 3600) throw new ConfigError(`${source} must be a whole number of seconds from 0 to 3600, got ${JSON.stringify(raw)}`);
  return n;
}

/** An absolute path, or "" for none. */
function optionalPath(raw: unknown, source: string): string {
  if (raw === "") return "";
  return absPath(raw, source);
}

function pathList(raw: unknown, source: string): string[] {
  const items = Array.isArray(raw) ? raw : typeof raw === "string" ? raw.split(":") : undefined;
  if (!items) throw new ConfigError(`${source} must be a colon-separated list of directories`);
  const dirs = items.filter((d) => d !== "").map((d) => absPath(d, source));
  if (dirs.length === 0) throw new ConfigError(`${source} must name at least one directory`);
  return dirs;
}

// containerd's identifier rule for namespaces: alphanumerics separated by single . _ or -,
// at most 76 characters.
const IDENTIFIER = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
function namespace(raw: unknown, source: string): string {
  const s = str(raw, source);
  if (s.length > 76 || !IDENTIFIER.test(s)) {
    throw new ConfigError(`${source} must be a containerd namespace name (letters and digits separated by . _ or -, at most 76), got "${s}"`);
  }
  return s;
}

// Loose on purpose: the full reference grammar lives with the image code; this only
// refuses what can never be a reference.
function imageRef(raw: unknown, source: string): string {
  const s = str(raw, source);
  if (!/^[a-z0-9][^\s]*$/.test(s)) {
    throw new ConfigError(`${source} must be an image reference like registry.k8s.io/pause:3.10, got "${s}"`);
  }
  return s;
}

function positiveInt(max: number): Parse<number> {
  return (raw, source) => {
    const n = typeof raw === "number" || typeof raw === "bigint" ? Number(raw) : typeof raw === "string" && /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > max) throw new ConfigError(`${source} must be a whole number from 1 to ${max}, got ${JSON.stringify(raw)}`);
    return n;
  };
}

export function parseHostPort(raw: unknown, source: string): { host: string; port: number } {
  const s = str(raw, source);
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ConfigError(`${source} must be HOST:PORT (port 0 picks a free one), got "${s}"`);
  return { host: (m[1] ?? m[2])!, port };
}

/** HOST:PORT, or "" for off. */
function optionalHostPort(raw: unknown, source: string): { host: string; port: number } | undefined {
  if (raw === "") return undefined;
  return parseHostPort(raw, source);
}

/** HOST:PORT entries: an array in TOML, a comma-separated list on the command line. */
function peerList(raw: unknown, source: string): string[] {
  const items = Array.isArray(raw) ? raw : typeof raw === "string" ? raw.split(",") : undefined;
  if (!items) throw new ConfigError(`${source} must be a list of HOST:PORT peers`);
  const out: string[] = [];
  for (const item of items) {
    if (typeof item !== "string") throw new ConfigError(`${source} must be a list of HOST:PORT peers, got ${JSON.stringify(item)}`);
    if (item.trim() === "") continue;
    parseHostPort(item.trim(), source);
    out.push(item.trim());
  }
  return out;
}

function spec<K extends keyof Config>(s: OptionSpec<K>): OptionSpec<K> {
  return s;
}

export const OPTIONS = [
  spec({ key: "listen", flag: "listen", toml: "listen", kind: "string", metavar: "PATH", parse: socketPath,
    defaultText: "/run/podshim/podshim.sock", help: "unix socket the CRI gRPC server listens on" }),
  spec({ key: "containerd", flag: "containerd", toml: "containerd", kind: "string", metavar: "PATH", parse: socketPath,
    defaultText: "/run/containerd/containerd.sock", help: "containerd's gRPC socket" }),
  spec({ key: "namespace", flag: "namespace", toml: "namespace", kind: "string", metavar: "NAME", parse: namespace,
    defaultText: "podshim", help: "containerd namespace podshim keeps its objects in" }),
  spec({ key: "root", flag: "root", toml: "root", kind: "string", metavar: "DIR", parse: absPath,
    defaultText: "/var/lib/podshim", help: "persistent state (survives reboots)" }),
  spec({ key: "state", flag: "state", toml: "state", kind: "string", metavar: "DIR", parse: absPath,
    defaultText: "/run/podshim", help: "runtime state (FIFOs, network namespaces, caches)" }),
  spec({ key: "cniConfDir", flag: "cni-conf-dir", toml: "cni_conf_dir", kind: "string", metavar: "DIR", parse: absPath,
    defaultText: "/etc/cni/net.d", help: "where CNI network configs (.conflist, .conf, .json) are read from" }),
  spec({ key: "cniBinDirs", flag: "cni-bin-dir", toml: "cni_bin_dir", kind: "list", metavar: "DIRS", parse: pathList,
    defaultText: "/opt/cni/bin:/usr/lib/cni", help: "colon-separated directories searched for CNI plugins" }),
  spec({ key: "pauseImage", flag: "pause-image", toml: "pause_image", kind: "string", metavar: "REF", parse: imageRef,
    defaultText: "registry.k8s.io/pause:3.10", help: "image of each pod's infra (pause) container" }),
  spec({ key: "registryConfigDir", flag: "registry-config-dir", toml: "registry_config_dir", kind: "string", metavar: "DIR", parse: absPath,
    defaultText: "/etc/podshim/certs.d", help: "containerd-style certs.d tree of <host>/hosts.toml files" }),
  spec({ key: "streamAddress", flag: "stream-address", toml: "stream_address", kind: "string", metavar: "HOST:PORT", parse: parseHostPort,
    defaultText: "127.0.0.1:0", help: "address of the exec/attach/port-forward streaming server" }),
  spec({ key: "streamTlsCert", flag: "stream-tls-cert", toml: "stream_tls_cert", kind: "string", metavar: "FILE", parse: optionalPath,
    defaultText: "", help: "PEM certificate of the streaming server; with --stream-tls-key it serves https" }),
  spec({ key: "streamTlsKey", flag: "stream-tls-key", toml: "stream_tls_key", kind: "string", metavar: "FILE", parse: optionalPath,
    defaultText: "", help: "PEM private key of the streaming server" }),
  spec({ key: "restrictOomScoreAdj", flag: "restrict-oom-score-adj", toml: "restrict_oom_score_adj", kind: "boolean", parse: bool,
    defaultText: "false", help: "never ask for an oom_score_adj below podshim's own (hosts without CAP_SYS_RESOURCE)" }),
  spec({ key: "enableUnprivilegedPorts", flag: "enable-unprivileged-ports", toml: "enable_unprivileged_ports", kind: "boolean", parse: bool,
    defaultText: "false", help: "set net.ipv4.ip_unprivileged_port_start=0 in pod network namespaces (unless the pod sets it)" }),
  spec({ key: "enableUnprivilegedIcmp", flag: "enable-unprivileged-icmp", toml: "enable_unprivileged_icmp", kind: "boolean", parse: bool,
    defaultText: "false", help: "set net.ipv4.ping_group_range=\"0 2147483647\" in pod network namespaces (unless the pod sets it)" }),
  spec({ key: "deviceOwnershipFromSecurityContext", flag: "device-ownership-from-security-context", toml: "device_ownership_from_security_context", kind: "boolean", parse: bool,
    defaultText: "false", help: "give a container's CRI devices its process's uid and gid instead of the node's owner" }),
  spec({ key: "cgroupDriver", flag: "cgroup-driver", toml: "cgroup_driver", kind: "string", metavar: "DRIVER", parse: oneOf(CGROUP_DRIVERS),
    defaultText: "cgroupfs", help: `cgroup driver reported to the kubelet (${CGROUP_DRIVERS.join(", ")})` }),
  spec({ key: "logLevel", flag: "log-level", toml: "log_level", kind: "string", metavar: "LEVEL", parse: oneOf(LOG_LEVELS),
    defaultText: "info", help: `log level (${LOG_LEVELS.join(", ")})` }),
  spec({ key: "shutdownGraceSeconds", flag: "shutdown-grace", toml: "shutdown_grace", kind: "string", metavar: "SECONDS", parse: seconds,
    defaultText: "30", help: "on SIGTERM, how long in-flight calls may finish before they are cut off and undone" }),
  spec({ key: "seccompDefaultProfile", flag: "seccomp-default-profile", toml: "seccomp_default_profile", kind: "string", metavar: "NAME",
    parse: oneOf(SECCOMP_DEFAULT_PROFILES), defaultText: "baseline",
    help: "what RuntimeDefault seccomp applies: baseline (allow-list, like Docker/containerd) or denylist" }),
  spec({ key: "portForwardMaxPerPod", flag: "port-forward-max-per-pod", toml: "port_forward_max_per_pod", kind: "string", metavar: "N",
    parse: positiveInt(100_000), defaultText: "64", help: "concurrent port-forward connections allowed into one pod" }),
  spec({ key: "portForwardMaxTotal", flag: "port-forward-max-total", toml: "port_forward_max_total", kind: "string", metavar: "N",
    parse: positiveInt(1_000_000), defaultText: "1024", help: "concurrent port-forward connections allowed on the node" }),
  spec({ key: "streamMaxStreamsPerSession", flag: "stream-max-streams-per-session", toml: "stream_max_streams_per_session", kind: "string", metavar: "N",
    parse: positiveInt(100_000), defaultText: "256", help: "streams one SPDY session may open (exec, attach, port-forward)" }),
  spec({ key: "metricsAddress", flag: "metrics-address", toml: "metrics_address", kind: "string", metavar: "HOST:PORT", parse: optionalHostPort,
    defaultText: "", help: "serve Prometheus /metrics, /healthz and /readyz over HTTP here, e.g. 127.0.0.1:10257; off when empty" }),
  spec({ key: "peerAddress", flag: "peer-address", toml: "peer_address", kind: "string", metavar: "HOST:PORT", parse: optionalHostPort,
    defaultText: "", help: "serve this node's images to peers by digest (OCI distribution read API, plain HTTP) here; off when empty" }),
  spec({ key: "peers", flag: "peers", toml: "peers", kind: "list", metavar: "HOST:PORT,...", parse: peerList,
    defaultText: "", help: "peers asked before the registry for blobs and manifests by digest (comma-separated; an array in TOML)" }),
  spec({ key: "peersFile", flag: "peers-file", toml: "peers_file", kind: "string", metavar: "FILE", parse: optionalPath,
    defaultText: "", help: "file of more peers, HOST:PORT per line (# comments), re-read when it changes" }),
  spec({ key: "peerResolveTags", flag: "peer-resolve-tags", toml: "peer_resolve_tags", kind: "boolean", parse: bool,
    defaultText: "false", help: "when the registry cannot resolve a tag, ask peers (and answer peers' tag requests); tags are not content-addressed" }),
] as const satisfies readonly OptionSpec[];

export function defaultConfig(): Config {
  const out: Partial<Record<keyof Config, unknown>> = {};
  for (const o of OPTIONS as readonly OptionSpec[]) out[o.key] = o.parse(o.defaultText, `default of --${o.flag}`);
  out.runtimes = defaultRuntimes();
  return out as Config;
}
