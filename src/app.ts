import { mkdir } from "node:fs/promises";
import type { Config } from "./config/options.js";
import type { Logger } from "./log/logger.js";
import { ContainerdClient } from "./containerd/client.js";
import { ContainerdHealth } from "./containerd/health.js";
import { NetworkService } from "./network/network-service.js";
import { ContentStore } from "./containerd/content.js";
import { Snapshots } from "./containerd/snapshots.js";
import { ImageService } from "./image/image-service.js";
import { Puller } from "./image/pull.js";
import { builtinPauseImage, findPauseBinary } from "./image/builtin-pause.js";
import { hostPlatform } from "./image/types.js";
import { RegistryClient } from "./registry/client.js";
import { messageOf } from "./errors/errors.js";
import { SandboxService } from "./sandbox/sandbox-service.js";
import { ContainerService } from "./container/container-service.js";
import { EventMonitor } from "./containerd/events.js";
import type { Envelope } from "./gen/containerd/types/event.js";
import { StreamingServer } from "./streaming/server.js";
import { StatsService } from "./stats/stats-service.js";
import { statsSource } from "./container/stats-source.js";
import { ContainerEventHub } from "./events/container-events.js";
import { readFileSync } from "node:fs";
import { imageServiceHandlers, runtimeServiceHandlers } from "./cri/services.js";
import type { CriDeps } from "./cri/deps.js";
import { ImageServiceService, RuntimeServiceService } from "./gen/cri/runtime/v1/api.js";
import { implementService } from "./server/boundary.js";
import { acceptPreEncoded } from "./server/pre-encoded.js";
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
  private readonly images: ImageService;
  private readonly sandboxes: SandboxService;
  private readonly containers: ContainerService;
  private readonly streaming: StreamingServer;
  private readonly stats: StatsService;
  private readonly events: EventMonitor;
  private readonly lifecycle: ContainerEventHub;
  /** Events that arrive while state is being loaded wait here, then run in order. */
  private pendingEvents: Envelope[] | undefined = [];
  private readonly registry: RegistryClient;
  private readonly server: CriServer;

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
  ) {
    this.containerd = new ContainerdClient({ socket: config.containerd, namespace: config.namespace, logger: logger.child({ part: "containerd" }) });
    this.health = new ContainerdHealth(this.containerd, logger.child({ part: "containerd" }));
    this.network = new NetworkService({ cniConfDir: config.cniConfDir, cniBinDirs: config.cniBinDirs, stateDir: config.state, logger: logger.child({ part: "network" }) });
    this.server = new CriServer(config.listen, logger);

    const imageLog = logger.child({ part: "images" });
    const snapshots = new Snapshots(this.containerd);
    const registry = (this.registry = new RegistryClient({ configDir: config.registryConfigDir, logger: imageLog }));
    const content = new ContentStore(this.containerd);
    const puller = new Puller({ client: this.containerd, content, snapshots, registry, logger: imageLog });
    this.images = new ImageService({
      client: this.containerd, content, snapshots, puller, logger: imageLog, pauseImage: config.pauseImage,
      builtinPause: async () => {
        const binary = findPauseBinary();
        return binary ? builtinPauseImage(binary, hostPlatform()) : undefined;
      },
    });

    const events = (this.lifecycle = new ContainerEventHub());
    this.sandboxes = new SandboxService({ events, config, client: this.containerd, snapshots, images: this.images, network: this.network, logger: logger.child({ part: "sandboxes" }) });

    this.containers = new ContainerService({ events, config, client: this.containerd, snapshots, images: this.images, sandboxes: this.sandboxes, logger: logger.child({ part: "containers" }) });
    // One subscription for the whole daemon: task exits end sandboxes and containers, OOM
    // events name the reason.
    this.events = new EventMonitor(this.containerd, logger.child({ part: "events" }), ["/tasks/exit", "/tasks/oom"], (env) => this.dispatch(env), async () => {
      await Promise.all([this.sandboxes.resync(), this.containers.resync()]);
    });

    const tls = config.streamTlsCert && config.streamTlsKey ? { cert: readFileSync(config.streamTlsCert), key: readFileSync(config.streamTlsKey) } : undefined;
    this.streaming = new StreamingServer({ host: config.streamAddress.host, port: config.streamAddress.port, backend: this.containers, logger: logger.child({ part: "streaming" }), ...(tls ? { tls } : {}) });

    this.stats = new StatsService({
      source: statsSource(this.containers, this.sandboxes, config), snapshots, logger: logger.child({ part: "stats" }),
      fsMountpoint: () => this.images.snapshotterRoot(),
    });

    const deps: CriDeps = { config, containerd: this.health, network: this.network, images: this.images, sandboxes: this.sandboxes, containers: this.containers, streaming: this.streaming, stats: this.stats, events };
    const boundary = { logger: logger.child({ part: "cri" }), isReady: () => this.ready };
    // Handlers may answer pre-encoded bytes (the list calls reuse each item's encoding).
    const runtimeService = acceptPreEncoded(RuntimeServiceService);
    const imageService = acceptPreEncoded(ImageServiceService);
    this.server.add({ definition: runtimeService, implementation: implementService(runtimeService, runtimeServiceHandlers(deps), { ...boundary, service: "RuntimeService" }) });
    this.server.add({ definition: imageService, implementation: implementService(imageService, imageServiceHandlers(deps), { ...boundary, service: "ImageService" }) });
  }

  async start(): Promise<void> {
    // Refuse before touching anything when another instance serves the socket.
    await this.server.checkSocket();
    await mkdir(this.config.root, { recursive: true, mode: 0o711 });
    await mkdir(this.config.state, { recursive: true, mode: 0o711 });
    await this.network.start();
    this.network.watch();
    // State kept in containerd is read whenever containerd (re)appears: at start when it is
    // up, later when it comes up after podshim.
    this.health.onReady(() => this.whenContainerdReady());
    const containerd = await this.health.check();
    if (containerd.ready) await this.loaded;
    else this.logger.warn("containerd is not reachable: serving anyway; images load when it comes up");
    this.health.start();
    await this.network.network();
    await this.streaming.start();
    this.stats.start();
    await this.server.listen();
    this.ready = true;
    this.logger.info({ endpoint: `unix://${this.config.listen}`, streaming: this.streaming.baseUrl, version: RUNTIME_VERSION, containerd: this.config.containerd, namespace: this.config.namespace }, "podshim is serving CRI");
  }

  private dispatch(env: Envelope): void {
    if (this.pendingEvents) {
      this.pendingEvents.push(env);
      return;
    }
    this.sandboxes.handleEvent(env);
    this.containers.handleEvent(env);
  }

  /**
   * Loads state in containerd's order of things: subscribe first (events buffered), then
   * images, sandboxes and containers, then replay what arrived meanwhile, so no exit that
   * happened during recovery is lost.
   */
  private async loadState(): Promise<void> {
    this.pendingEvents ??= [];
    this.events.start();
    await this.images.load();
    await this.sandboxes.load();
    await this.containers.load();
    const pending = this.pendingEvents;
    this.pendingEvents = undefined;
    for (const env of pending) this.dispatch(env);
  }

  private loaded: Promise<void> | undefined;
  private whenContainerdReady(): void {
    this.loaded ??= this.loadState().then(
      () => {
        // The pause image is needed by the first pod; fetch it now, without holding up start-up.
        this.images.ensurePauseImage().then(
          (img) => this.logger.info({ pauseImage: this.config.pauseImage, id: img.id }, "pause image ready"),
          (err) => this.logger.warn({ pauseImage: this.config.pauseImage, err: messageOf(err) }, "pause image not available yet"),
        );
      },
      (err) => {
        this.loaded = undefined;
        // The next load reads all state afresh; what was buffered is stale.
        this.pendingEvents = [];
        this.logger.error({ err: messageOf(err) }, "could not load state from containerd; will retry when it reconnects");
      },
    );
  }

  async stop(): Promise<void> {
    this.logger.info("shutting down: draining in-flight calls");
    this.lifecycle.close();
    await this.server.stop(SHUTDOWN_GRACE_MS);
    this.ready = false;
    this.health.stop();
    await this.streaming.stop();
    this.stats.stop();
    this.events.stop();
    this.containers.stop();
    this.network.close();
    this.registry.close();
    this.containerd.close();
    this.logger.info("stopped");
  }
}
