import { mkdir } from "node:fs/promises";
import type { Config } from "./config/options.js";
import type { Logger } from "./log/logger.js";
import { ContainerdClient } from "./containerd/client.js";
import { ContainerdHealth } from "./containerd/health.js";
import { NetworkService } from "./network/network-service.js";
import { imageServiceHandlers, runtimeServiceHandlers } from "./cri/services.js";
import type { CriDeps } from "./cri/deps.js";
import { ImageServiceService, RuntimeServiceService } from "./gen/cri/runtime/v1/api.js";
import { implementService } from "./server/boundary.js";
import { CriServer } from "./server/grpc-server.js";
import { RUNTIME_VERSION } from "./version.js";

const SHUTDOWN_GRACE_MS = 10_000;

/**
 * The composition root: builds every part, and owns the order in which they start and stop.
 * Start: state dirs, containerd connection (podshim starts even when containerd is down;
 * Status says so), network, then the socket last, so nothing is served half-built.
 * Stop: the socket first (drain in-flight calls), then the parts.
 */
export class App {
  private ready = false;
  private readonly containerd: ContainerdClient;
  private readonly health: ContainerdHealth;
  private readonly network: NetworkService;
  private readonly server: CriServer;

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
  ) {
    this.containerd = new ContainerdClient({ socket: config.containerd, namespace: config.namespace, logger: logger.child({ part: "containerd" }) });
    this.health = new ContainerdHealth(this.containerd, logger.child({ part: "containerd" }));
    this.network = new NetworkService({ cniConfDir: config.cniConfDir, cniBinDirs: config.cniBinDirs, stateDir: config.state, logger: logger.child({ part: "network" }) });
    this.server = new CriServer(config.listen, logger);

    const deps: CriDeps = { config, containerd: this.health, network: this.network };
    const boundary = { logger: logger.child({ part: "cri" }), isReady: () => this.ready };
    this.server.add({ definition: RuntimeServiceService, implementation: implementService(RuntimeServiceService, runtimeServiceHandlers(deps), { ...boundary, service: "RuntimeService" }) });
    this.server.add({ definition: ImageServiceService, implementation: implementService(ImageServiceService, imageServiceHandlers(deps), { ...boundary, service: "ImageService" }) });
  }

  async start(): Promise<void> {
    await mkdir(this.config.root, { recursive: true, mode: 0o711 });
    await mkdir(this.config.state, { recursive: true, mode: 0o711 });
    await this.network.start();
    await this.health.check();
    this.health.start();
    await this.network.network();
    await this.server.listen();
    this.ready = true;
    this.logger.info({ endpoint: `unix://${this.config.listen}`, version: RUNTIME_VERSION, containerd: this.config.containerd, namespace: this.config.namespace }, "podshim is serving CRI");
  }

  async stop(): Promise<void> {
    this.logger.info("shutting down: draining in-flight calls");
    await this.server.stop(SHUTDOWN_GRACE_MS);
    this.ready = false;
    this.health.stop();
    this.containerd.close();
    this.logger.info("stopped");
  }
}
