import type { Logger } from "../log/logger.js";
import { loadCniNetwork, type CniLoadResult } from "./cni-config.js";
import { PodCidrStore } from "./pod-cidr.js";

export interface NetworkServiceOptions {
  cniConfDir: string;
  cniBinDirs: readonly string[];
  stateDir: string;
  logger: Logger;
}

const RELOAD_MS = 1000;

/**
 * Pod networking as the rest of podshim sees it. For now: whether a CNI network is usable
 * (NetworkReady) and the pod CIDR the kubelet gave. The config is re-read at most once a
 * second, so an operator who drops a .conflist into the conf dir is seen without a restart.
 */
export class NetworkService {
  readonly podCidr: PodCidrStore;
  private cached: { at: number; result: CniLoadResult } | undefined;
  private lastFile: string | undefined;

  constructor(private readonly opts: NetworkServiceOptions) {
    this.podCidr = new PodCidrStore(opts.stateDir);
  }

  async start(): Promise<void> {
    await this.podCidr.load();
  }

  async network(): Promise<CniLoadResult> {
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
}
