import { mkdir } from "node:fs/promises";
import type { Config } from "./config/options.js";
import type { Logger } from "./logger/logger.js";
import { ContainerdClient } from "./containerd/client.js";
import { ContainerdHealth } from "./containerd/health.js";
import { NetworkService } from "./network/network-service.js";
import { ContentStore } from "./containerd/content.js";
import { Snapshots } from "./containerd/snapshots.js";
import { imageAdapters } from "./image/image-adapters.js";
import { ImageService } from "./image/image-service.js";
import { Puller } from "./image/pull.js";
import { builtinPauseImage, findPauseBinary } from "./image/builtin-pause.js";
import { hostPlatform } from "./distribution/descriptor.js";
import { RegistryClient } from "./registry/client.js";
import { messageOf } from "./errors/errors.js";
import { SandboxService } from "./sandbox/sandbox-service.js";
import { sandboxAdapters } from "./sandbox/sandbox-adapters.js";
import { ContainerService } from "./container/container-service.js";
import { containerAdapters } from "./container/container-adapters.js";
import { EventMonitor, type TaskEvent } from "./containerd/events.js";
import { ContainerRecords } from "./containerd/containers.js";
import { StreamingServer } from "./streaming/server.js";
import { StatsService } from "./stats/stats-service.js";
import { statsSource } from "./container/stats-source.js";
import { ContainerEventHub } from "./lifecycle-events/container-events.js";
import { readFileSync } from "node:fs";
import { imageServiceHandlers, runtimeServiceHandlers } from "./cri/services.js";
import type { CriDeps } from "./cri/deps.js";
import { ImageServiceService, RuntimeServiceService } from "./gen/cri/runtime/v1/api.js";
import { implementService, InFlightCalls } from "./server/boundary.js";
import { PodService } from "./pod/pod-service.js";
import { sweepOrphans } from "./recovery/sweep.js";
import type { RecoveryState } from "./cri/deps.js";
import { backoffDelays } from "./util/retry.js";
import { sleep, withTimeout } from "./util/timeout.js";
import { UnavailableError } from "./errors/errors.js";
import { acceptPreEncoded } from "./server/pre-encoded.js";
import { CriServer } from "./server/grpc-server.js";
import { RUNTIME_COMMIT, RUNTIME_VERSION } from "./version.js";
import { HealthServer } from "./server/health.js";
import { MetricsServer } from "./metrics/server.js";
import { Peering } from "./peer/peering.js";
import { countSweptOrphan, enableProcessMetrics, observeRecovery, observeRpc, setStateSource } from "./metrics/metrics.js";
import { containerdMetricsInterceptor, observeContainerdUnaryCall } from "./metrics/containerd-interceptor.js";

/** Events that may wait for recovery to finish; past this they are dropped and every record
 * is re-read from containerd instead. */
const MAX_PENDING_EVENTS = 10_000;
/** After the grace period, how long cut-off calls may take to run their undo steps. */
const UNDO_AFTER_CUTOFF_MS = 30_000;

/**
 * The composition root: builds every part, and owns the order in which they start and stop.
 * Start: state dirs, network, the socket (only Version and Status answer until recovery is
 * done), then recovery, retried with backoff until it succeeds: subscribe to containerd's
 * events (buffered), load images, sandboxes and containers, sweep what no record explains,
 * apply the buffered events, and only then serve everything.
 * Stop: refuse new calls, let in-flight ones finish, cut off and undo the rest, flush the
 * container logs, then the parts.
 */
export class App {
  private ready = false;
  private stopping = false;
  private recovery: RecoveryState = { ready: false, message: "podshim is starting: recovering state from containerd" };
  private recovering: Promise<void> | undefined;
  private readonly stopRecovery = new AbortController();
  /** Aborted when the grace period is over: in-flight creates stop at their next step and undo. */
  private readonly shutdown = new AbortController();
  private readonly inFlight = new InFlightCalls();
  private readonly pods: PodService;
  private readonly records: ContainerRecords;
  private readonly snapshots: Snapshots;
  private readonly containerd: ContainerdClient;
  private readonly health: ContainerdHealth;
  private readonly network: NetworkService;
  private readonly images: ImageService;
  private readonly sandboxes: SandboxService;
  private readonly containers: ContainerService;
  private readonly streaming: StreamingServer;
  private readonly stats: StatsService;
  private readonly taskEvents: EventMonitor;
  private readonly lifecycle: ContainerEventHub;
  /** Events that arrive while state is being loaded wait here, then run in order. */
  private pendingEvents: TaskEvent[] | undefined = [];
  private pendingOverflowed = false;
  private readonly registry: RegistryClient;
  private readonly server: CriServer;
  private readonly healthService: HealthServer;
  private readonly metrics: MetricsServer | undefined;
  private readonly peering: Peering | undefined;

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
  ) {
    this.containerd = new ContainerdClient({ socket: config.containerd, namespace: config.namespace, logger: logger.child({ part: "containerd" }), interceptors: [containerdMetricsInterceptor], observe: observeContainerdUnaryCall });
    this.health = new ContainerdHealth(this.containerd, logger.child({ part: "containerd" }));
    this.network = new NetworkService({ cniConfDir: config.cniConfDir, cniBinDirs: config.cniBinDirs, stateDir: config.state, rootDir: config.root, logger: logger.child({ part: "network" }) });
    this.server = new CriServer(config.listen, logger);

    const imageLog = logger.child({ part: "images" });
    const snapshots = (this.snapshots = new Snapshots(this.containerd));
    this.records = new ContainerRecords(this.containerd);
    const registry = (this.registry = new RegistryClient({ configDir: config.registryConfigDir, logger: imageLog }));
    const content = new ContentStore(this.containerd);
    // Tags are looked up lazily: the image index is filled by recovery.
    const tagTarget = (name: string) => {
      const entry = this.images.status(name);
      return entry?.names.has(name) ? entry.target : undefined;
    };
    const peering = (this.peering = Peering.wanted(config) ? new Peering(config, content, tagTarget, logger.child({ part: "peers" })) : undefined);
    const puller = new Puller({ client: this.containerd, content, snapshots, registry, logger: imageLog, ...(peering ? { sources: peering.sources } : {}) });
    this.images = new ImageService({
      adapters: imageAdapters({ client: this.containerd, content, snapshots, puller }), logger: imageLog, pauseImage: config.pauseImage,
      builtinPause: async () => {
        const binary = findPauseBinary();
        return binary ? builtinPauseImage(binary, hostPlatform()) : undefined;
      },
    });

    const lifecycleEvents = (this.lifecycle = new ContainerEventHub());
    const shutdown = this.shutdown.signal;
    const sandboxLog = logger.child({ part: "sandboxes" });
    this.sandboxes = new SandboxService({
      lifecycleEvents, config, logger: sandboxLog, shutdown,
      adapters: sandboxAdapters({ client: this.containerd, snapshots, network: this.network, images: this.images, logger: sandboxLog }),
    });

    const containerLog = logger.child({ part: "containers" });
    this.containers = new ContainerService({
      lifecycleEvents, config, logger: containerLog, shutdown,
      adapters: containerAdapters({ client: this.containerd, snapshots, images: this.images, sandboxes: this.sandboxes, logger: containerLog }),
    });
    this.pods = new PodService(this.sandboxes, this.containers);
    // One subscription for the whole daemon: task exits end sandboxes and containers, OOM
    // events name the reason.
    this.taskEvents = new EventMonitor(this.containerd, logger.child({ part: "events" }), (ev) => this.dispatch(ev), () => this.resync());

    const tls = config.streamTlsCert && config.streamTlsKey ? { cert: readFileSync(config.streamTlsCert), key: readFileSync(config.streamTlsKey) } : undefined;
    this.streaming = new StreamingServer({ host: config.streamAddress.host, port: config.streamAddress.port, backend: this.containers.streaming, logger: logger.child({ part: "streaming" }), ...(tls ? { tls } : {}),
      limits: { portForwardPerPod: config.portForwardMaxPerPod, portForwardTotal: config.portForwardMaxTotal, streamsPerSession: config.streamMaxStreamsPerSession } });

    this.stats = new StatsService({
      source: statsSource(this.containers, this.sandboxes, config), snapshots, logger: logger.child({ part: "stats" }),
      fsMountpoint: () => this.images.snapshotterRoot(),
    });

    const deps: CriDeps = {
      config, containerdHealth: this.health, network: this.network, images: this.images, sandboxes: this.sandboxes, containers: this.containers,
      pods: this.pods, recovery: () => this.recovery, streaming: this.streaming, stats: this.stats, lifecycleEvents,
      runtime: { streamingUrl: () => this.streaming.baseUrl, ...(peering ? { peering: () => peering.describe() } : {}) },
    };
    const boundary = {
      logger: logger.child({ part: "cri" }), isReady: () => this.ready, alwaysServed: new Set(["Version", "Status"]), inFlight: this.inFlight,
      observe: (rpc: string, code: string, seconds: number) => observeRpc(rpc.slice(0, rpc.indexOf("/")), rpc.slice(rpc.indexOf("/") + 1), code, seconds),
    };
    // Handlers may answer pre-encoded bytes (the list calls reuse each item's encoding).
    const runtimeService = acceptPreEncoded(RuntimeServiceService);
    const imageService = acceptPreEncoded(ImageServiceService);
    this.server.add({ definition: runtimeService, implementation: implementService(runtimeService, runtimeServiceHandlers(deps), { ...boundary, service: "RuntimeService" }) });
    this.server.add({ definition: imageService, implementation: implementService(imageService, imageServiceHandlers(deps), { ...boundary, service: "ImageService" }) });
    this.healthService = new HealthServer(() => this.serving());
    this.server.add(this.healthService.binding());
    setStateSource({
      sandboxStates: () => this.sandboxes.list().map((s) => s.state),
      containerStates: () => this.containers.list().map((c) => c.status.state),
      eventSubscribers: () => lifecycleEvents.subscriberCount,
    });
    if (config.metricsAddress) {
      enableProcessMetrics({ version: RUNTIME_VERSION, commit: RUNTIME_COMMIT });
      this.metrics = new MetricsServer({ ...config.metricsAddress, logger: logger.child({ part: "metrics" }), ready: () => this.serving() });
    }
  }

  /** SERVING for gRPC health and /readyz: state recovered, and containerd answers now. */
  async serving(): Promise<boolean> {
    return this.ready && (await this.health.check()).ready;
  }

  async start(): Promise<void> {
    // Refuse before touching anything when another instance serves the socket.
    await this.server.checkSocket();
    await this.metrics?.start();
    await this.peering?.start();
    await mkdir(this.config.root, { recursive: true, mode: 0o711 });
    await mkdir(this.config.state, { recursive: true, mode: 0o711 });
    await this.network.start();
    this.network.watch();
    this.health.start();
    await this.network.loadNetworkConfig();
    await this.streaming.start();
    this.stats.start();
    await this.server.listen();
    this.logger.info({ endpoint: `unix://${this.config.listen}` }, "podshim is listening; recovering state");
    this.recovering = this.recover();
  }

  /** Resolves once recovery is done (or podshim stops first). */
  async recovered(): Promise<void> {
    await this.recovering;
  }

  /** Tries recovery until it succeeds; until then every call but Version and Status is refused. */
  private async recover(): Promise<void> {
    const delays = backoffDelays(500, 30_000);
    for (let attempt = 1; !this.stopping; attempt++) {
      const started = performance.now();
      try {
        await this.loadState();
        const ms = Math.round(performance.now() - started);
        observeRecovery(ms / 1000);
        this.recovery = { ready: true, message: "" };
        this.ready = true;
        this.logger.info({ endpoint: `unix://${this.config.listen}`, streaming: this.streaming.baseUrl, version: RUNTIME_VERSION, commit: RUNTIME_COMMIT, containerd: this.config.containerd, namespace: this.config.namespace, recoveryMs: ms, attempts: attempt }, "podshim is serving CRI");
        // The pause image is needed by the first pod; fetch it now, without holding up start-up.
        this.images.ensurePauseImage().then(
          (img) => this.logger.info({ pauseImage: this.config.pauseImage, id: img.id }, "pause image ready"),
          (err) => this.logger.warn({ pauseImage: this.config.pauseImage, err: messageOf(err) }, "pause image not available yet"),
        );
        return;
      } catch (err) {
        const delay = delays.next().value;
        this.recovery = { ready: false, message: `podshim is recovering state from containerd (attempt ${attempt} failed: ${messageOf(err)}; next try in ${delay / 1000} s)` };
        this.logger.error({ err: messageOf(err), attempt, retryInMs: delay }, "could not recover state from containerd; serving only Version and Status until it can");
        await sleep(delay, this.stopRecovery.signal);
      }
    }
  }

  private dispatch(ev: TaskEvent): void {
    if (this.pendingEvents) {
      if (this.pendingEvents.length < MAX_PENDING_EVENTS) this.pendingEvents.push(ev);
      else this.pendingOverflowed = true;
      return;
    }
    this.sandboxes.handleEvent(ev);
    this.containers.handleEvent(ev);
  }

  /** After a lost event stream (or more buffered events than kept): re-read task states. */
  private async resync(): Promise<void> {
    if (this.pendingEvents) return;
    await Promise.all([this.sandboxes.resync(), this.containers.resync()]);
  }

  /**
   * Loads state in containerd's order of things: subscribe first (events buffered until the
   * subscription is confirmed live), then images, sandboxes and containers, sweep orphans,
   * then apply what arrived meanwhile, so no exit that happened during recovery is lost.
   */
  private async loadState(): Promise<void> {
    const containerd = await this.health.check();
    if (!containerd.ready) throw new UnavailableError(`containerd is not reachable: ${containerd.message}`);
    this.pendingEvents = [];
    this.pendingOverflowed = false;
    this.taskEvents.start();
    await this.taskEvents.subscribed();
    await this.images.load();
    await this.sandboxes.load();
    await this.containers.load();
    const swept = await sweepOrphans({
      client: this.containerd, records: this.records, snapshots: this.snapshots, sandboxes: this.sandboxes,
      containers: this.containers, network: this.network, logger: this.logger.child({ part: "sweep" }),
      dirs: [this.config.root, this.config.state],
    });
    if (Object.keys(swept).length > 0) this.logger.info({ reclaimed: swept }, "swept what no record explains");
    for (const [kind, n] of Object.entries(swept)) countSweptOrphan(kind, n);
    const pending = this.pendingEvents;
    this.pendingEvents = undefined;
    for (const ev of pending) this.dispatch(ev);
    if (this.pendingOverflowed) await Promise.all([this.sandboxes.resync(), this.containers.resync()]);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.stopRecovery.abort();
    const graceMs = this.config.shutdownGraceSeconds * 1000;
    this.logger.info({ inFlight: this.inFlight.size, graceMs }, "shutting down: refusing new calls, letting in-flight ones finish");
    this.lifecycle.close();
    this.healthService.close();
    const clean = await this.server.stop(graceMs);
    if (!clean || this.inFlight.size > 0) {
      // Calls still running are cut off at their next step and run their undo steps.
      this.shutdown.abort();
      await withTimeout("undoing the calls cut off by shutdown", UNDO_AFTER_CUTOFF_MS, this.inFlight.settled()).catch((err) => this.logger.error({ err: messageOf(err) }, "shutdown could not wait for every cut-off call"));
    }
    this.ready = false;
    await this.recovering;
    this.health.stop();
    await this.streaming.stop();
    this.stats.stop();
    this.taskEvents.stop();
    await this.containers.stop();
    this.network.close();
    await this.peering?.stop();
    this.registry.close();
    this.containerd.close();
    await this.metrics?.stop();
    this.logger.info("stopped");
  }
}
