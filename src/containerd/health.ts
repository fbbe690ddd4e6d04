import type { Logger } from "../logger/logger.js";
import { isAlreadyExists, messageOf } from "../errors/errors.js";
import { VersionService } from "../gen/containerd/services/version/v1/version.js";
import { NamespacesService } from "../gen/containerd/services/namespaces/v1/namespace.js";
import type { ContainerdClient } from "./client.js";

export type ContainerdHealthState =
  | { ready: true; version: string; revision: string }
  | { ready: false; message: string };

const PROBE_TIMEOUT_MS = 2000;
// Status is polled by the kubelet every few seconds and by people at will; one probe serves
// every caller within this window.
const PROBE_CACHE_MS = 500;
const WATCH_INTERVAL_MS = 5000;

/**
 * Knows whether containerd answers. A probe is a Version call with a short deadline; the
 * background watch keeps the channel warm, logs when containerd goes away and comes back,
 * and (re)creates podshim's namespace each time it comes back.
 */
export class ContainerdHealth {
  private last: { at: number; state: ContainerdHealthState } | undefined;
  private inflight: Promise<ContainerdHealthState> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly readyHooks: Array<() => void> = [];

  constructor(
    private readonly client: ContainerdClient,
    private readonly logger: Logger,
  ) {}

  /** The current state, probed now unless a probe finished within the last half second. */
  check(): Promise<ContainerdHealthState> {
    if (this.last && Date.now() - this.last.at < PROBE_CACHE_MS) return Promise.resolve(this.last.state);
    this.inflight ??= this.probe().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  /** Called each time containerd becomes reachable (after the namespace exists). */
  onReady(hook: () => void): void {
    this.readyHooks.push(hook);
  }

  start(): void {
    this.timer = setInterval(() => void this.check(), WATCH_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async probe(): Promise<ContainerdHealthState> {
    let state: ContainerdHealthState;
    try {
      const v = await this.client.call(VersionService.version, {}, { timeoutMs: PROBE_TIMEOUT_MS, namespace: null });
      state = { ready: true, version: v.version, revision: v.revision };
    } catch (err) {
      state = { ready: false, message: messageOf(err) };
    }
    const was = this.last?.state;
    this.last = { at: Date.now(), state };
    if (state.ready && was?.ready !== true) {
      this.logger.info({ socket: this.client.socket, version: state.version }, "containerd is reachable");
      await this.ensureNamespace();
      for (const hook of this.readyHooks) hook();
    } else if (!state.ready && was?.ready !== false) {
      this.logger.warn({ socket: this.client.socket, err: state.message }, "containerd is not reachable");
    }
    return state;
  }

  private async ensureNamespace(): Promise<void> {
    try {
      await this.client.call(NamespacesService.create, {
        namespace: { name: this.client.namespace, labels: { "io.podshim/managed": "true" } },
        // containerd publishes a namespace event in the namespace of the call itself, so the
        // header must name the new namespace (1.6 refuses the call without one).
      }, { timeoutMs: PROBE_TIMEOUT_MS });
      this.logger.info({ namespace: this.client.namespace }, "created containerd namespace");
    } catch (err) {
      if (!isAlreadyExists(err)) this.logger.warn({ err: messageOf(err) }, "could not create containerd namespace");
    }
  }
}
