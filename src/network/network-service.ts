import { watch, type FSWatcher } from "node:fs";
import { join } from "node:path";
import { FailedPreconditionError, InvalidArgumentError, messageOf } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import { KeyedLock } from "../util/keyed-lock.js";
import { bandwidthFromAnnotations } from "./bandwidth.js";
import { CniResultCache, type CniCacheEntry } from "./cni-cache.js";
import { loadCniNetwork, type CniLoadResult, type CniNetwork } from "./cni-config.js";
import { CniRuntime, podIps, type CniCapabilityArgs, type CniPortMapping, type CniResult, type CniRuntimeArgs } from "./cni.js";
import { PodCidrStore } from "./pod-cidr.js";
import { bringUpLoopback } from "./netns.js";

export interface NetworkServiceOptions {
  cniConfDir: string;
  cniBinDirs: readonly string[];
  stateDir: string;
  /** Where the CNI result cache lives: persistent, so DEL still works after a reboot
   * (the IP leases of host-local survive one). Defaults to stateDir. */
  rootDir?: string;
  logger: Logger;
  /** Per CNI plugin execution (default 60 s). */
  cniExecTimeoutMs?: number;
  /** Sets a namespace's lo up, or resolves to false to have the CNI loopback plugin do it
   * (default: netns.ts's bringUpLoopback, which does it through the native spawner). */
  loopbackUp?: (netns: string) => Promise<boolean>;
}

/** A port the pod publishes, as CRI's PortMapping has it: protocol is CRI's enum number
 * (TCP 0, UDP 1, SCTP 2) or its name. */
export interface PodPortMapping {
  protocol: number | string;
  containerPort: number;
  hostPort: number;
  hostIp?: string;
}

/** What setUpPod needs to know about a pod. */
export interface PodNetworkRequest {
  id: string;
  name: string;
  namespace: string;
  uid: string;
  /** The pinned network namespace (netns.ts). */
  netns: string;
  portMappings: readonly PodPortMapping[];
  annotations: Readonly<Record<string, string>>;
}

export interface PodNetworkResult {
  /** IPv4 first, then IPv6. */
  ips: string[];
  result: CniResult;
}

const RELOAD_MS = 1000;
/** The pod's interface name, as every Kubernetes runtime names it. */
const POD_IFNAME = "eth0";
/** How often a conf dir that cannot be watched (not there yet) is tried again. */
const WATCH_RETRY_MS = 5000;

/**
 * Pod networking as the rest of podshim sees it: whether a CNI network is usable
 * (NetworkReady), the pod CIDR the kubelet gave, and setting pods up and tearing them down
 * with the result cache that makes DEL exact after a restart. The config is re-read at most
 * once a second, so a .conflist dropped into the conf dir is seen without a restart.
 */
export class NetworkService {
  readonly podCidr: PodCidrStore;
  private cached: { at: number; result: CniLoadResult } | undefined;
  private lastFile: string | undefined;
  readonly cni: CniRuntime;
  readonly cniCache: CniResultCache;
  private readonly podLocks = new KeyedLock();
  private watcher: FSWatcher | undefined;
  private watchRetry: NodeJS.Timeout | undefined;
  private watching = false;

  constructor(private readonly opts: NetworkServiceOptions) {
    this.podCidr = new PodCidrStore(opts.stateDir);
    this.cni = new CniRuntime({
      binDirs: opts.cniBinDirs,
      logger: opts.logger,
      ...(opts.cniExecTimeoutMs !== undefined ? { execTimeoutMs: opts.cniExecTimeoutMs } : {}),
    });
    this.cniCache = new CniResultCache(opts.rootDir ?? opts.stateDir);
  }

  async start(): Promise<void> {
    await this.podCidr.load();
    // An older podshim kept the cache under the state dir: carry its entries over.
    if (this.opts.rootDir && this.opts.rootDir !== this.opts.stateDir) await this.cniCache.adopt(join(this.opts.stateDir, "cni"));
  }

  async loadNetworkConfig(): Promise<CniLoadResult> {
    if (this.cached && Date.now() - this.cached.at < RELOAD_MS) return this.cached.result;
    const result = await loadCniNetwork(this.opts.cniConfDir, this.opts.cniBinDirs);
    this.cached = { at: Date.now(), result };
    const file = result.ok ? result.network.file : undefined;
    if (file !== this.lastFile) {
      if (result.ok) this.opts.logger.info({ file, network: result.network.name }, "CNI network config loaded");
      else this.opts.logger.warn({ reason: result.message }, "no usable CNI network config");
      this.lastFile = file;
    }
    return result;
  }

  async setPodCidr(cidr: string): Promise<void> {
    if (await this.podCidr.set(cidr)) this.opts.logger.info({ podCidr: cidr }, "pod CIDR updated");
  }

  /**
   * Wires a pod into the current CNI network: lo up (by the spawner, else by the CNI loopback
   * plugin), then the network's ADD with the pod's identity in CNI_ARGS and its port
   * mappings, bandwidth annotations and the node's pod CIDR as capabilities. The config,
   * runtime args and result are cached for DEL. A failed ADD is undone (DEL) before the error
   * is thrown, so no IP lease, veth or iptables rule outlives it; the caller may still call
   * tearDownPod, which is then a no-op DEL.
   *
   * Errors: FailedPreconditionError when there is no usable network config or a plugin
   * binary is missing; InvalidArgumentError for a malformed port mapping or bandwidth
   * annotation; CniPluginError (an InternalError) carrying the plugin's message verbatim.
   */
  async setUpPod(pod: PodNetworkRequest, opts: { signal?: AbortSignal } = {}): Promise<PodNetworkResult> {
    const loaded = await this.loadNetworkConfig();
    if (!loaded.ok) throw new FailedPreconditionError(loaded.message);
    const net = loaded.network;
    const rt: CniRuntimeArgs = {
      containerId: pod.id,
      netns: pod.netns,
      ifName: POD_IFNAME,
      // The order containerd and CRI-O use; IgnoreUnknown keeps plugins that know none of
      // these keys from refusing them.
      args: {
        IgnoreUnknown: "1",
        K8S_POD_NAMESPACE: pod.namespace,
        K8S_POD_NAME: pod.name,
        K8S_POD_INFRA_CONTAINER_ID: pod.id,
        K8S_POD_UID: pod.uid,
      },
      capabilityArgs: this.capabilityArgs(pod),
    };
    const log = this.opts.logger.child({ pod: `${pod.namespace}/${pod.name}`, sandbox: pod.id, network: net.name });
    return this.podLocks.run(pod.id, async () => {
      const started = Date.now();
      // Written before the first plugin runs: a podshim that dies mid-ADD finds on restart
      // what to DEL, with the port mappings portmap needs to find its rules again.
      await this.cniCache.save({ podId: pod.id, network: cacheable(net), runtime: rt });
      let result: CniResult;
      try {
        // lo up: the spawner does it with a syscall where it can, else the CNI loopback plugin.
        if (!(await (this.opts.loopbackUp ?? bringUpLoopback)(pod.netns))) await this.cni.loopbackUp(pod.netns, pod.id, opts);
        result = await this.cni.add(net, rt, opts);
        await this.cniCache.save({ podId: pod.id, network: cacheable(net), runtime: rt, result });
      } catch (err) {
        try {
          // Without the caller's signal: the undo must run even when the caller gave up.
          await this.cni.del(net, rt);
          await this.cniCache.remove(pod.id);
        } catch (undoErr) {
          // The cache entry stays, so a later tearDownPod retries the DEL.
          log.error({ err: messageOf(undoErr) }, "CNI DEL after a failed ADD failed too; the pod's network may be left behind");
        }
        throw err;
      }
      const ips = podIps(result);
      log.debug({ ips, ms: Date.now() - started }, "pod network set up");
      return { ips, result };
    });
  }

  /**
   * Undoes setUpPod: DEL with the config, runtime args and result cached at ADD, then the
   * cache entry goes. Idempotent, and fine for pods podshim never set up: without a cache
   * entry DEL runs with the current config (IPAM still releases by container id).
   * Call it before deleting the netns: bridge 1.1.1 removes its masquerade rule only when
   * it still finds the pod's interface in the namespace. When DEL with the cached config
   * fails and the conf dir now holds a different one, DEL is tried with that instead (an
   * operator fixing a config the plugin could not parse); otherwise the error is thrown and
   * the entry kept for the next try.
   */
  async tearDownPod(podId: string, netns: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
    await this.podLocks.run(podId, async () => {
      const log = this.opts.logger.child({ sandbox: podId });
      let entry: CniCacheEntry | undefined;
      try {
        entry = await this.cniCache.load(podId);
      } catch (err) {
        if (err instanceof InvalidArgumentError) throw err;
        log.warn({ err: messageOf(err) }, "CNI cache entry unreadable; running DEL with the current config");
      }
      let net: CniNetwork;
      let rt: CniRuntimeArgs;
      if (entry) {
        net = { ...entry.network };
        rt = { ...entry.runtime, netns };
      } else {
        const loaded = await this.loadNetworkConfig();
        if (!loaded.ok) {
          log.warn({ reason: loaded.message }, "no CNI cache entry and no usable network config: nothing to DEL");
          return;
        }
        net = loaded.network;
        rt = { containerId: podId, netns, ifName: POD_IFNAME, args: { IgnoreUnknown: "1", K8S_POD_INFRA_CONTAINER_ID: podId }, capabilityArgs: {} };
      }
      const started = Date.now();
      try {
        await this.cni.del(net, rt, entry?.result, opts);
      } catch (err) {
        // A config the plugin cannot even parse fails DEL as it failed ADD, and the cache
        // would replay it forever. Once the operator has fixed the file, DEL with that.
        const current = entry ? await this.loadNetworkConfig() : undefined;
        if (!current?.ok || samePlugins(current.network, net)) throw err;
        log.warn({ err: messageOf(err), file: current.network.file }, "CNI DEL with the cached config failed; trying the current config");
        await this.cni.del(current.network, rt, entry?.result, opts);
      }
      await this.cniCache.remove(podId);
      log.debug({ network: net.name, ms: Date.now() - started, cached: entry !== undefined }, "pod network torn down");
    });
  }

  /**
   * Watches the conf dir so a config dropped in, changed or removed is seen at the next
   * call instead of up to a second later. A dir that does not exist yet is watched for
   * once it does. The watcher never keeps the process alive.
   */
  watch(): void {
    if (this.watching) return;
    this.watching = true;
    this.startWatcher();
  }

  close(): void {
    this.watching = false;
    clearTimeout(this.watchRetry);
    this.watchRetry = undefined;
    this.watcher?.close();
    this.watcher = undefined;
  }

  private startWatcher(): void {
    if (!this.watching) return;
    try {
      const w = watch(this.opts.cniConfDir, { persistent: false }, () => {
        this.cached = undefined;
      });
      w.on("error", () => {
        // The dir went away (or was replaced): drop what we knew and look for it again.
        w.close();
        if (this.watcher === w) this.watcher = undefined;
        this.cached = undefined;
        this.retryWatch();
      });
      this.watcher = w;
      this.cached = undefined;
    } catch {
      this.retryWatch();
    }
  }

  private retryWatch(): void {
    if (!this.watching || this.watchRetry) return;
    this.watchRetry = setTimeout(() => {
      this.watchRetry = undefined;
      this.startWatcher();
    }, WATCH_RETRY_MS);
    this.watchRetry.unref();
  }

  private capabilityArgs(pod: PodNetworkRequest): CniCapabilityArgs {
    const caps: CniCapabilityArgs = {};
    const ports = pod.portMappings.filter((p) => p.hostPort > 0).map(toCniPortMapping);
    if (ports.length > 0) caps.portMappings = ports;
    const bandwidth = bandwidthFromAnnotations(pod.annotations);
    if (bandwidth) caps.bandwidth = bandwidth;
    const cidrs = this.podCidr.current;
    if (cidrs.length > 0) caps.ipRanges = cidrs.map((subnet) => [{ subnet }]);
    return caps;
  }
}

const PROTOCOLS: Readonly<Record<string, string>> = { "0": "tcp", "1": "udp", "2": "sctp", tcp: "tcp", udp: "udp", sctp: "sctp" };

function toCniPortMapping(p: PodPortMapping): CniPortMapping {
  const protocol = PROTOCOLS[String(p.protocol).toLowerCase()];
  if (!protocol) throw new InvalidArgumentError(`port mapping ${p.hostPort}:${p.containerPort} has unknown protocol ${String(p.protocol)}`);
  if (!Number.isInteger(p.hostPort) || p.hostPort > 65535 || !Number.isInteger(p.containerPort) || p.containerPort < 1 || p.containerPort > 65535) {
    throw new InvalidArgumentError(`port mapping ${p.hostPort}:${p.containerPort}/${protocol}: ports must be 1-65535`);
  }
  return { hostPort: p.hostPort, containerPort: p.containerPort, protocol, ...(p.hostIp ? { hostIP: p.hostIp } : {}) };
}

function samePlugins(a: CniNetwork, b: CniNetwork): boolean {
  return a.name === b.name && a.cniVersion === b.cniVersion && JSON.stringify(a.plugins) === JSON.stringify(b.plugins);
}

function cacheable(net: CniNetwork): CniCacheEntry["network"] {
  return { name: net.name, cniVersion: net.cniVersion, file: net.file, plugins: net.plugins, raw: net.raw };
}
