import type { Config } from "../config/options.js";
import type { ContainerdHealth } from "../containerd/health.js";
import type { NetworkService } from "../network/network-service.js";
import type { ImageService } from "../image/image-service.js";
import type { SandboxService } from "../sandbox/sandbox-service.js";
import type { ContainerService } from "../container/container-service.js";
import type { AttachParams, ExecParams } from "../streaming/backend.js";
import type { StatsApi } from "../stats/types.js";
import type { ContainerEventHub } from "../lifecycle-events/container-events.js";
import type { PodService } from "../pod/pod-service.js";

/** Where start-up recovery stands: until it is done, only Version and Status answer. */
export interface RecoveryState {
  ready: boolean;
  /** Why not ready yet (the last error of a failed load), for Status. */
  message: string;
}

/** The streaming server as the Exec, Attach and PortForward RPCs see it: it hands out URLs. */
export interface StreamingUrls {
  execUrl(params: ExecParams): string;
  attachUrl(params: AttachParams): string;
  portForwardUrl(params: { podSandboxId: string; ports: number[] }): string;
  /** How the server is reachable and its caps, for Status verbose. */
  exposure?(): object;
}

/** What Status verbose reports about podshim itself besides its services. */
export interface RuntimeFacts {
  /** The streaming server's bound base URL ("" before it listens). */
  streamingUrl(): string;
  /** The peer mirror: what it serves and which peers are set aside; undefined when off. */
  peering?(): Promise<object>;
}

/** The services CRI handlers call. Handlers get nothing else: no grpc-js, no containerd client. */
export interface CriDeps {
  config: Config;
  containerdHealth: ContainerdHealth;
  network: NetworkService;
  images: ImageService;
  sandboxes: SandboxService;
  containers: ContainerService;
  pods: PodService;
  recovery: () => RecoveryState;
  streaming: StreamingUrls;
  stats: StatsApi;
  lifecycleEvents: ContainerEventHub;
  runtime?: RuntimeFacts;
}
