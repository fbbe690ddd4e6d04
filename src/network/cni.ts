// The runtime side of the CNI spec (1.0.0, and the 0.3/0.4 configs libcni still runs):
// which plugin runs with which stdin and environment, in which order, and what its output
// means. The plugins do the networking; this file only drives them.
import { basename } from "node:path";
import { FailedPreconditionError, InternalError, InvalidArgumentError } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import type { CniBandwidth } from "./bandwidth.js";
import { findPlugin, type CniNetwork } from "./cni-config.js";
import { defaultEnv, runProgram, withSbinPath } from "../util/exec.js";
import { netnsExists } from "./netns.js";
import { observeCniExec } from "../metrics/metrics.js";

export interface CniPortMapping {
  hostPort: number;
  containerPort: number;
  /** "tcp", "udp" or "sctp", lower case as portmap expects. */
  protocol: string;
  hostIP?: string;
}

export interface CniIpRange {
  subnet: string;
  rangeStart?: string;
  rangeEnd?: string;
  gateway?: string;
}

/** The well-known capabilities of CNI's CONVENTIONS.md that podshim fills in. */
export interface CniCapabilityArgs {
  portMappings?: CniPortMapping[];
  bandwidth?: CniBandwidth;
  /** One range set per address family: host-local hands out one address from each. */
  ipRanges?: CniIpRange[][];
}

export interface CniRuntimeArgs {
  containerId: string;
  /** Path of the network namespace; "" when there is none (DEL only). */
  netns: string;
  ifName: string;
  /** CNI_ARGS, in order: IgnoreUnknown=1;K8S_POD_NAMESPACE;K8S_POD_NAME;K8S_POD_INFRA_CONTAINER_ID;K8S_POD_UID. */
  args: Record<string, string>;
  capabilityArgs: CniCapabilityArgs;
}

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  /** Set for interfaces inside the sandbox (the netns path); absent for host interfaces. */
  sandbox?: string;
}

export interface CniIpConfig {
  /** Address with prefix, "10.88.0.5/16". */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
  /** Only in 0.3.x/0.4.0 results. */
  version?: string;
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** A plugin's ADD result (the spec's "Success" output); fields a plugin omits stay absent. */
export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIpConfig[];
  routes?: CniRoute[];
  dns?: CniDns;
  [key: string]: unknown;
}

export const CniCommand = { Add: "ADD", Del: "DEL", Check: "CHECK" } as const;
export type CniCommand = (typeof CniCommand)[keyof typeof CniCommand];

/**
 * A plugin said no (non-zero exit). An InternalError for the CRI: the node's network
 * plugin failed, not the caller's request (a config that is missing altogether is a
 * FailedPreconditionError, raised before any plugin runs). The plugin's `msg` and
 * `details` are in the message verbatim, since they are what an operator can act on;
 * `code` is the spec's error code (11 means "try again later") for callers that retry.
 */
export class CniPluginError extends InternalError {
  constructor(
    readonly plugin: string,
    readonly command: CniCommand,
    readonly code: number | undefined,
    readonly msg: string,
    readonly details: string,
    options?: { cause?: unknown },
  ) {
    super(`CNI plugin ${plugin} failed (${command}): ${msg}${details ? `: ${details}` : ""}`, options);
  }
}

export interface CniRuntimeOptions {
  binDirs: readonly string[];
  /** Per plugin execution; the plugin (and what it spawned) is killed after it. */
  execTimeoutMs?: number;
  logger?: Logger;
}

export interface CniCallOptions {
  signal?: AbortSignal;
}

const DEFAULT_EXEC_TIMEOUT_MS = 60_000;
const PLUGIN_LOOKUP_TTL_MS = 10_000;

/** The network podshim brings lo up with, the way containerd and CRI-O do. */
export const LOOPBACK_NETWORK: CniNetwork = {
  name: "cni-loopback",
  cniVersion: "1.0.0",
  file: "(built in)",
  plugins: [{ type: "loopback" }],
  raw: { cniVersion: "1.0.0", name: "cni-loopback", plugins: [{ type: "loopback" }] },
};

/**
 * Runs a network's plugin chain. Calls for one container must not overlap (the spec
 * forbids parallel operations on a container; NetworkService serialises per pod); calls
 * for different containers may.
 */
export class CniRuntime {
  private readonly timeoutMs: number;
  private readonly pluginPaths = new Map<string, { path: string; at: number }>();

  constructor(private readonly opts: CniRuntimeOptions) {
    this.timeoutMs = opts.execTimeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
  }

  /**
   * ADD: each plugin in order, each given the previous one's result as prevResult; the
   * last result is the network's. A failure leaves whatever the earlier plugins did in
   * place: the caller undoes it with del(), as the spec asks for any ADD.
   */
  async add(net: CniNetwork, rt: CniRuntimeArgs, opts: CniCallOptions = {}): Promise<CniResult> {
    if (rt.netns === "") throw new InvalidArgumentError("CNI ADD needs a network namespace path");
    let prev: CniResult | undefined;
    for (const plugin of net.plugins) {
      const out = await this.exec(net, plugin, CniCommand.Add, rt, prev, opts);
      prev = parseResult(out, plugin.type);
    }
    return prev!;
  }

  /**
   * DEL: each plugin in reverse order, each given the cached final ADD result (spec 0.4.0
   * and later). Idempotent: with no cached result, or with the namespace gone, plugins are
   * still called so they release what they hold (IP leases, iptables rules); a namespace
   * that is gone is passed as an empty CNI_NETNS, which the spec lets DEL have, because a
   * plugin handed a stale path that is no longer a namespace errors instead of cleaning up.
   * Like libcni it stops at the first failure: carrying on would free the IP while, say,
   * portmap's DNAT rules still point at it, for the next pod to receive that traffic.
   */
  async del(net: CniNetwork, rt: CniRuntimeArgs, cachedResult?: CniResult, opts: CniCallOptions = {}): Promise<void> {
    const netns = rt.netns !== "" && (await netnsExists(rt.netns)) ? rt.netns : "";
    const prev = cachedResult && versionAtLeast(net.cniVersion, 0, 4) ? cachedResult : undefined;
    for (const plugin of [...net.plugins].reverse()) {
      await this.exec(net, plugin, CniCommand.Del, { ...rt, netns }, prev, opts);
    }
  }

  /**
   * CHECK: each plugin in order with the cached ADD result. Not run when the list sets
   * disableCheck; refused for configs older than 0.4.0, which have no CHECK.
   */
  async check(net: CniNetwork, rt: CniRuntimeArgs, prevResult: CniResult, opts: CniCallOptions = {}): Promise<void> {
    if (net.raw.disableCheck === true) return;
    if (!versionAtLeast(net.cniVersion, 0, 4)) {
      throw new FailedPreconditionError(`CNI network ${net.name} has cniVersion ${net.cniVersion}, which has no CHECK (0.4.0 and later)`);
    }
    for (const plugin of net.plugins) await this.exec(net, plugin, CniCommand.Check, rt, prevResult, opts);
  }

  /** Brings lo up in a namespace: the pod's own network only sets up eth0. */
  async loopbackUp(netns: string, containerId = loopbackId(netns), opts: CniCallOptions = {}): Promise<CniResult> {
    return this.add(LOOPBACK_NETWORK, { containerId, netns, ifName: "lo", args: {}, capabilityArgs: {} }, opts);
  }

  async loopbackDown(netns: string, containerId = loopbackId(netns), opts: CniCallOptions = {}): Promise<void> {
    await this.del(LOOPBACK_NETWORK, { containerId, netns, ifName: "lo", args: {}, capabilityArgs: {} }, undefined, opts);
  }

  /**
   * Where a plugin binary is, looked up at most every PLUGIN_LOOKUP_TTL_MS: each lookup is a
   * stat per bin dir (and an ENOENT error per dir that lacks it), a dozen per pod start. A
   * plugin installed or moved is found within that time; one gone meanwhile fails the exec
   * and is looked up afresh next time.
   */
  private async pluginPath(type: string): Promise<string | undefined> {
    const hit = this.pluginPaths.get(type);
    if (hit && Date.now() - hit.at < PLUGIN_LOOKUP_TTL_MS) return hit.path;
    const path = await findPlugin(type, this.opts.binDirs);
    if (path) this.pluginPaths.set(type, { path, at: Date.now() });
    else this.pluginPaths.delete(type);
    return path;
  }

  private async exec(
    net: CniNetwork,
    plugin: CniNetwork["plugins"][number],
    command: CniCommand,
    rt: CniRuntimeArgs,
    prevResult: CniResult | undefined,
    opts: CniCallOptions,
  ): Promise<string> {
    const path = await this.pluginPath(plugin.type);
    if (!path) {
      throw new FailedPreconditionError(`CNI plugin ${plugin.type} (network ${net.name}) not found in ${this.opts.binDirs.join(":")}`);
    }
    const stdin = JSON.stringify(pluginConfig(net, plugin, rt.capabilityArgs, prevResult));
    const env = cniEnv(defaultEnv(), command, rt, this.opts.binDirs);
    const started = Date.now();
    const res = await runProgram(path, [], {
      input: stdin,
      env,
      timeoutMs: this.timeoutMs,
      what: `CNI plugin ${plugin.type} (${command})`,
      ...(opts.signal ? { signal: opts.signal } : {}),
    }).catch((err: unknown) => {
      observeCniExec(plugin.type, command, (Date.now() - started) / 1000, false);
      // It may have gone from where it was found: look again next time.
      this.pluginPaths.delete(plugin.type);
      throw err;
    });
    observeCniExec(plugin.type, command, (Date.now() - started) / 1000, res.code === 0);
    this.opts.logger?.debug(
      { plugin: plugin.type, command, network: net.name, containerId: rt.containerId, ms: Date.now() - started, code: res.code },
      "CNI plugin ran",
    );
    if (res.code !== 0) throw pluginError(plugin.type, command, res);
    return res.stdout;
  }
}

/**
 * The stdin of one plugin in a list, the way libcni builds it: the plugin's own config,
 * the list's name and cniVersion, runtimeConfig holding exactly the capabilities the plugin
 * declares (a plugin handed one it did not ask for may act on it, or refuse it), and the
 * previous result when there is one.
 */
export function pluginConfig(
  net: CniNetwork,
  plugin: CniNetwork["plugins"][number],
  capabilityArgs: CniCapabilityArgs,
  prevResult: CniResult | undefined,
): Record<string, unknown> {
  const conf: Record<string, unknown> = { ...plugin, name: net.name, cniVersion: net.cniVersion };
  const declared = plugin.capabilities;
  const runtimeConfig: Record<string, unknown> = {};
  if (typeof declared === "object" && declared !== null) {
    for (const [cap, on] of Object.entries(declared as Record<string, unknown>)) {
      const value = (capabilityArgs as Record<string, unknown>)[cap];
      if (on === true && value !== undefined) runtimeConfig[cap] = value;
    }
  }
  if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
  if (prevResult !== undefined) conf.prevResult = prevResult;
  else delete conf.prevResult;
  return conf;
}

/** CNI_ARGS: `K=V;K=V` in the given order. Keys and values cannot carry the separators. */
export function formatCniArgs(args: Readonly<Record<string, string>>): string {
  return Object.entries(args)
    .map(([k, v]) => {
      if (k === "" || /[=;]/.test(k) || v.includes(";")) {
        throw new InvalidArgumentError(`CNI_ARGS entry ${JSON.stringify(k)}=${JSON.stringify(v)} cannot contain ";" (nor "=" in the key)`);
      }
      return `${k}=${v}`;
    })
    .join(";");
}

/** The plugin's environment: podshim's own (PATH for iptables, tc), any CNI_ variables of
 * podshim's own removed so they cannot leak into a call, then the call's. */
export function cniEnv(base: NodeJS.ProcessEnv, command: CniCommand, rt: CniRuntimeArgs, binDirs: readonly string[]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(withSbinPath(base))) if (!k.startsWith("CNI_")) env[k] = v;
  env.CNI_COMMAND = command;
  env.CNI_CONTAINERID = rt.containerId;
  env.CNI_NETNS = rt.netns;
  env.CNI_IFNAME = rt.ifName;
  env.CNI_ARGS = formatCniArgs(rt.args);
  env.CNI_PATH = binDirs.join(":");
  return env;
}

/**
 * The pod's addresses, without prefix length, IPv4 first then IPv6 (the order the kubelet
 * takes as primary then secondary for dual-stack). When the result names interfaces, only
 * addresses on interfaces inside the sandbox count: a plugin may report the host side too
 * (a gateway address on the bridge).
 */
export function podIps(result: CniResult): string[] {
  const interfaces = result.interfaces;
  const v4: string[] = [];
  const v6: string[] = [];
  for (const ip of result.ips ?? []) {
    if (typeof ip?.address !== "string") continue;
    if (interfaces && interfaces.length > 0 && typeof ip.interface === "number") {
      if (!interfaces[ip.interface]?.sandbox) continue;
    }
    const addr = ip.address.split("/")[0]!;
    const list = addr.includes(":") ? v6 : v4;
    if (!list.includes(addr)) list.push(addr);
  }
  return [...v4, ...v6];
}

function parseResult(stdout: string, plugin: string): CniResult {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch (err) {
    throw new InternalError(`CNI plugin ${plugin} (ADD) succeeded but printed no JSON result: ${preview(stdout)}`, { cause: err });
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new InternalError(`CNI plugin ${plugin} (ADD) printed a result that is not a JSON object: ${preview(stdout)}`);
  }
  return doc as CniResult;
}

function pluginError(plugin: string, command: CniCommand, res: { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }): CniPluginError {
  const status = res.code !== null ? `exit status ${res.code}` : `killed by ${res.signal}`;
  const cause = new Error(`${status}; stdout: ${preview(res.stdout)}; stderr: ${preview(res.stderr)}`);
  let doc: unknown;
  try {
    doc = JSON.parse(res.stdout);
  } catch {
    doc = undefined;
  }
  if (typeof doc === "object" && doc !== null && typeof (doc as { msg?: unknown }).msg === "string") {
    const e = doc as { code?: unknown; msg: string; details?: unknown };
    return new CniPluginError(plugin, command, typeof e.code === "number" ? e.code : undefined, e.msg, typeof e.details === "string" ? e.details : "", { cause });
  }
  // Not the spec's error object: say what there is.
  const text = res.stderr.trim() || res.stdout.trim();
  return new CniPluginError(plugin, command, undefined, text ? `${status}: ${preview(text)}` : status, "", { cause });
}

function preview(s: string): string {
  const t = s.trim();
  return t.length > 2000 ? `${t.slice(0, 2000)}...` : t || "(empty)";
}

/** True when a "major.minor.patch" version is at least major.minor. */
export function versionAtLeast(version: string, major: number, minor: number): boolean {
  const [a = 0, b = 0] = version.split(".").map((n) => Number.parseInt(n, 10) || 0);
  return a > major || (a === major && b >= minor);
}

function loopbackId(netns: string): string {
  return basename(netns).replace(/[^A-Za-z0-9_.-]/g, "-").replace(/^[^A-Za-z0-9]+/, "") || "podshim-loopback";
}
