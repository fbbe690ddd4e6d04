import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "../config/options.js";
import type { RuntimeHandlerConfig } from "../config/runtimes.js";
import type { ContainerdClient } from "../containerd/client.js";
import { ContainerRecords, fromJsonAny, jsonAny, type Container } from "../containerd/containers.js";
import { withLease } from "../containerd/leases.js";
import type { Snapshots } from "../containerd/snapshots.js";
import { Tasks, TaskStatusCode } from "../containerd/tasks.js";
import { InvalidArgumentError, messageOf, NotFoundError } from "../errors/errors.js";
import { NamespaceMode, PodSandboxConfig } from "../gen/cri/runtime/v1/api.js";
import { TaskExit } from "../gen/containerd/events/task.js";
import { Options as RuncOptions } from "../gen/containerd/types/runc/options/oci.js";
import type { Any } from "../gen/google/protobuf/any.js";
import type { Envelope } from "../gen/containerd/types/event.js";
import type { ImageService } from "../image/image-service.js";
import type { Logger } from "../log/logger.js";
import { createNetns, deleteNetns, netnsNameFor } from "../network/netns.js";
import type { NetworkService } from "../network/network-service.js";
import { CleanupStack } from "../util/cleanup.js";
import { KeyedLock } from "../util/keyed-lock.js";
import { mountTmpfs, unmountAndRemove } from "../util/mount.js";
import { buildSandboxSpec } from "./sandbox-spec.js";
import { LifecycleEvent, type ContainerEventHub } from "../events/container-events.js";
import { runtimeDefaultSeccomp } from "../oci/seccomp.js";
import { loadLocalhostSeccomp } from "../oci/seccomp-files.js";
import { defaultCapabilities } from "../oci/defaults.js";
import { RuntimeFeatureProbe, type HandlerFeatures } from "../oci/runtime-features.js";
import { renderHosts, renderResolvConf, type SandboxFilePaths } from "./sandbox-files.js";
import { nameKeyOf, SandboxState, SandboxStore, type SandboxRecord } from "./sandbox-store.js";

// Labels and the extension podshim puts on a sandbox's containerd container: the kind (so
// recovery finds sandboxes), the pod identity for people using ctr, and the record itself.
export const SandboxLabel = {
  kind: "io.podshim.kind",
  podName: "io.kubernetes.pod.name",
  podNamespace: "io.kubernetes.pod.namespace",
  podUid: "io.kubernetes.pod.uid",
} as const;
const METADATA_EXTENSION = "io.podshim.sandbox/metadata";
const METADATA_TYPE_URL = "podshim.io/SandboxMetadata/v1";
const RUNC_OPTIONS_TYPE_URL = "containerd.runc.v1.Options";
const SIGKILL = 9;
const STOP_WAIT_MS = 10_000;
const SHM_SIZE = "65536k";

interface PersistedSandbox {
  id: string;
  config: unknown;
  runtimeHandler: string;
  createdAt: string;
  netnsPath: string;
  ips: string[];
}

export interface SandboxServiceOptions {
  config: Config;
  client: ContainerdClient;
  snapshots: Snapshots;
  images: ImageService;
  network: NetworkService;
  logger: Logger;
  /** Where lifecycle transitions are announced (GetContainerEvents). */
  events?: ContainerEventHub;
}

/**
 * Pod sandboxes: a pause container holding the pod's namespaces, its network namespace
 * pinned on disk and wired by CNI. The truth lives in containerd (container records with
 * the sandbox metadata as an extension, tasks) and under the state dir (the netns, CNI's
 * cached result); the store is an index rebuilt from them at start.
 */
export class SandboxService {
  readonly store = new SandboxStore();
  private readonly lock = new KeyedLock();
  private readonly containers: ContainerRecords;
  private readonly tasks: Tasks;
  private readonly log: Logger;
  private readonly features = new RuntimeFeatureProbe();

  constructor(private readonly opts: SandboxServiceOptions) {
    this.containers = new ContainerRecords(opts.client);
    this.tasks = new Tasks(opts.client);
    this.log = opts.logger;
  }

  runtimeHandlers(): string[] {
    return Object.keys(this.opts.config.runtimes);
  }

  /** Every configured handler with what its runtime can do (probed once per binary). */
  handlerFeatures(): Promise<{ name: string; features: HandlerFeatures }[]> {
    return Promise.all(Object.entries(this.opts.config.runtimes).map(async ([name, h]) => ({ name, features: await this.features.features(h) })));
  }

  private handler(name: string): RuntimeHandlerConfig {
    const h = this.opts.config.runtimes[name];
    if (!h) {
      const known = this.runtimeHandlers().map((n) => JSON.stringify(n)).join(", ");
      throw new InvalidArgumentError(`runtime handler "${name}" is not configured (configured: ${known}; add a [runtimes.${name}] table to podshim's config)`);
    }
    return h;
  }

  /** Rebuilds the index from containerd. */
  async load(): Promise<void> {
    const found = await this.containers.list([`labels."${SandboxLabel.kind}"==sandbox`]);
    for (const c of found) {
      try {
        this.store.add(await this.recover(c));
      } catch (err) {
        this.log.warn({ sandbox: c.id, err: messageOf(err) }, "skipping a sandbox whose metadata cannot be read");
      }
    }
    this.log.info({ sandboxes: this.store.all().length }, "sandbox index loaded");
  }

  private async recover(c: Container): Promise<SandboxRecord> {
    const meta = fromJsonAny<PersistedSandbox>(c.extensions[METADATA_EXTENSION]);
    if (!meta) throw new Error("no sandbox metadata extension");
    const config = PodSandboxConfig.fromJSON(meta.config);
    const task = await this.tasks.get(c.id);
    const running = task?.status === TaskStatusCode.RUNNING;
    return {
      id: c.id,
      nameKey: nameKeyOf(config),
      config,
      runtimeHandler: meta.runtimeHandler,
      createdAt: BigInt(meta.createdAt),
      netnsPath: meta.netnsPath,
      ips: meta.ips,
      state: running ? SandboxState.Ready : SandboxState.NotReady,
      pid: running ? task!.pid : 0,
      dir: this.sandboxDir(c.id),
    };
  }

  private sandboxDir(id: string): string {
    return join(this.opts.config.root, "sandboxes", id);
  }

  /** Per-sandbox runtime state (gone at reboot, like the sandbox itself). */
  private stateDir(id: string): string {
    return join(this.opts.config.state, "sandboxes", id);
  }

  shmPath(id: string): string {
    return join(this.stateDir(id), "shm");
  }

  /** Unmounts the pod's shm, then removes its runtime state dir. */
  private async releaseStateDir(id: string): Promise<void> {
    await unmountAndRemove(this.shmPath(id));
    await rm(this.stateDir(id), { recursive: true, force: true });
  }

  /** The files of a sandbox its app containers bind: hostname, hosts, resolv.conf, shm. */
  files(rec: SandboxRecord): SandboxFilePaths {
    const shm = this.sharedShm(rec);
    return { hostname: join(rec.dir, "hostname"), hosts: join(rec.dir, "hosts"), resolvConf: join(rec.dir, "resolv.conf"), ...(shm ? { shm } : {}) };
  }

  /** The pod's own /dev/shm tmpfs; undefined when the pod shares the node's IPC namespace. */
  sharedShm(rec: SandboxRecord): string | undefined {
    return rec.config.linux?.securityContext?.namespaceOptions?.ipc === NamespaceMode.NODE ? undefined : this.shmPath(rec.id);
  }

  /** The containerd runtime (shim and its options) of a sandbox: its containers use the same. */
  runtimeOf(rec: SandboxRecord): { name: string; options?: Any } {
    const handler = this.handler(rec.runtimeHandler);
    const options = runcOptions(handler);
    return { name: handler.runtimeType, ...(options ? { options } : {}) };
  }

  /** Task exits of pause containers; other events and ids are ignored. */
  handleEvent(env: Envelope): void {
    const any = env.event;
    if (!any || !any.typeUrl.endsWith("containerd.events.TaskExit")) return;
    const exit = TaskExit.decode(any.value);
    const rec = this.store.get(exit.containerId);
    // Only the pause process itself ends a sandbox (exec'd processes have other ids).
    if (rec && rec.id === exit.containerId && exit.id === exit.containerId && rec.state === SandboxState.Ready) {
      rec.state = SandboxState.NotReady;
      rec.pid = 0;
      this.opts.events?.publish(rec.id, rec.id, LifecycleEvent.Stopped);
      this.log.info({ sandbox: rec.id, exitStatus: exit.exitStatus }, "pause container exited; sandbox not ready");
    }
  }

  /** After a lost event stream: re-read every sandbox's task state. */
  async resync(): Promise<void> {
    for (const rec of this.store.all()) {
      const task = await this.tasks.get(rec.id);
      if (task?.status !== TaskStatusCode.RUNNING && rec.state === SandboxState.Ready) {
        rec.state = SandboxState.NotReady;
        rec.pid = 0;
      }
    }
  }

  /**
   * RunPodSandbox. Independent steps overlap: CNI wires the pinned netns while the pause
   * container is created and started. Every side effect registers its undo at once; any
   * failure unwinds them all, so a failed run leaves nothing behind.
   */
  async run(config: PodSandboxConfig, runtimeHandler: string): Promise<SandboxRecord> {
    validateConfig(config);
    const handler = this.handler(runtimeHandler);
    const id = randomBytes(32).toString("hex");
    const nameKey = nameKeyOf(config);
    this.store.reserve(nameKey, id);
    return this.lock.run(id, async () => {
      const log = this.log.child({ sandbox: id, pod: `${config.metadata!.namespace}/${config.metadata!.name}` });
      const cleanup = new CleanupStack(log);
      cleanup.push("release name", async () => this.store.release(nameKey, id));
      try {
        const rec = await this.create(id, nameKey, config, runtimeHandler, handler, cleanup, log);
        this.store.add(rec);
        cleanup.dismiss();
        this.opts.events?.publish(id, id, LifecycleEvent.Created);
        this.opts.events?.publish(id, id, LifecycleEvent.Started);
        return rec;
      } catch (err) {
        const left = await cleanup.unwind();
        if (left.length > 0) log.error({ left }, "RunPodSandbox failed and could not undo everything");
        throw err;
      }
    });
  }

  private async create(id: string, nameKey: string, config: PodSandboxConfig, runtimeHandler: string, handler: RuntimeHandlerConfig, cleanup: CleanupStack, log: Logger): Promise<SandboxRecord> {
    const { client, snapshots } = this.opts;
    const createdAt = BigInt(Date.now()) * 1_000_000n;
    const pause = await this.opts.images.ensurePauseImage();
    const dir = this.sandboxDir(id);
    await mkdir(dir, { recursive: true, mode: 0o711 });
    cleanup.push("remove sandbox dir", () => rm(dir, { recursive: true, force: true }));

    const nsOpts = config.linux?.securityContext?.namespaceOptions;
    const hostNetwork = nsOpts?.network === NamespaceMode.NODE;
    let netnsPath = "";
    if (!hostNetwork) {
      netnsPath = await createNetns(netnsNameFor(id));
      cleanup.push("delete netns", () => deleteNetns(netnsPath));
    }

    // One /dev/shm for the whole pod: a tmpfs the pause container and (later) every app
    // container mount, unless the pod uses the host's IPC namespace.
    let shm: string | undefined;
    if (nsOpts?.ipc !== NamespaceMode.NODE) {
      shm = this.shmPath(id);
      await mountTmpfs(shm, ["nosuid", "nodev", "noexec", "mode=1777", `size=${SHM_SIZE}`]);
      cleanup.push("unmount shm", () => this.releaseStateDir(id));
    }
    const files = { hostname: join(dir, "hostname"), hosts: join(dir, "hosts"), resolvConf: join(dir, "resolv.conf"), ...(shm ? { shm } : {}) };
    const hostname = config.hostname || (hostNetwork ? (await readFile("/etc/hostname", "utf8").catch(() => "localhost")).trim() : config.metadata!.name);
    await writeFile(files.hostname, `${hostname}\n`, { mode: 0o644 });
    await writeFile(files.resolvConf, renderResolvConf(config.dnsConfig, await readFile("/etc/resolv.conf", "utf8").catch(() => "")), { mode: 0o644 });

    const spec = buildSandboxSpec({
      id, config, image: pause.config, netnsPath: hostNetwork ? undefined : netnsPath, runtimeHandler,
      cgroupDriver: this.opts.config.cgroupDriver, restrictOomScoreAdj: this.opts.config.restrictOomScoreAdj,
      currentOomScoreAdj: Number((await readFile("/proc/self/oom_score_adj", "utf8")).trim()), files,
      defaultSeccomp: runtimeDefaultSeccomp(defaultCapabilities()),
      localhostSeccomp: await loadLocalhostSeccomp(config.linux?.securityContext),
    });

    const network = (async () => {
      if (hostNetwork) return { ips: [] as string[] };
      cleanup.push("CNI DEL", () => this.opts.network.tearDownPod(id, netnsPath));
      const m = config.metadata!;
      return this.opts.network.setUpPod({ id, name: m.name, namespace: m.namespace, uid: m.uid, netns: netnsPath, portMappings: config.portMappings, annotations: config.annotations });
    })();

    const pauseContainer = (async () => {
      // The lease keeps the fresh snapshot from the garbage collector until the container
      // record refers to it.
      const mounts = await withLease(client, log, "sandbox", 600_000, async (lease) => {
        const m = await snapshots.prepare(id, pause.chainId, {}, { lease });
        cleanup.push("remove snapshot", () => snapshots.remove(id));
        await this.containers.create({
          id, image: [...pause.names][0] ?? pause.id, spec, snapshotter: snapshots.snapshotter, snapshotKey: id,
          labels: { [SandboxLabel.kind]: "sandbox", [SandboxLabel.podName]: config.metadata!.name, [SandboxLabel.podNamespace]: config.metadata!.namespace, [SandboxLabel.podUid]: config.metadata!.uid },
          runtime: { name: handler.runtimeType, ...(runcOptions(handler) ? { options: runcOptions(handler)! } : {}) },
          extensions: { [METADATA_EXTENSION]: persisted({ id, config, runtimeHandler, createdAt, netnsPath, ips: [] }) },
        }, { lease });
        cleanup.push("delete container", () => this.containers.delete(id));
        return m;
      }, { syncGc: false });
      await this.tasks.create(id, mounts);
      cleanup.push("delete task", async () => {
        await this.tasks.kill(id, SIGKILL, true);
        await this.tasks.wait(id, { timeoutMs: STOP_WAIT_MS }).catch(() => undefined);
        await this.tasks.delete(id);
      });
      return this.tasks.start(id);
    })();

    // Both halves must settle before a failure unwinds: each registers its own undos.
    const [net, pid] = await Promise.allSettled([network, pauseContainer]);
    if (net.status === "rejected") throw net.reason;
    if (pid.status === "rejected") throw pid.reason;
    const ips = net.value.ips;

    // CRI has no host aliases for the sandbox (the kubelet writes those into its own hosts file).
    await writeFile(files.hosts, renderHosts(ips, hostname, []), { mode: 0o644 });
    await this.containers.setExtension(id, METADATA_EXTENSION, persisted({ id, config, runtimeHandler, createdAt, netnsPath, ips }));
    log.info({ ips, pid: pid.value, netns: netnsPath || "host" }, "sandbox ready");
    return { id, nameKey, config, runtimeHandler, createdAt, netnsPath, ips, state: SandboxState.Ready, pid: pid.value, dir };
  }

  /**
   * StopPodSandbox: kills the pause container, runs CNI DEL and releases the netns. Stopping
   * an unknown or stopped sandbox succeeds (the kubelet retries stops).
   */
  async stopSandbox(idOrPrefix: string): Promise<void> {
    const found = this.store.get(idOrPrefix);
    if (!found) return;
    await this.lock.run(found.id, async () => {
      const rec = this.store.get(found.id);
      if (!rec) return;
      // The pinned netns outlives the pause process, so CNI DEL need not wait for it to die;
      // the netns itself goes only after DEL (the bridge plugin finds its rules through it).
      const steps = await Promise.allSettled([
        this.stopPause(rec.id),
        this.releaseStateDir(rec.id),
        rec.netnsPath ? this.opts.network.tearDownPod(rec.id, rec.netnsPath) : undefined,
      ]);
      // Every step ran to its end; the kubelet retries a failed stop.
      const failed = steps.find((r) => r.status === "rejected");
      if (failed) throw failed.reason;
      if (rec.state === SandboxState.Ready) this.opts.events?.publish(rec.id, rec.id, LifecycleEvent.Stopped);
      rec.state = SandboxState.NotReady;
      rec.pid = 0;
      if (rec.netnsPath) {
        await deleteNetns(rec.netnsPath);
        rec.netnsPath = "";
        await this.containers.setExtension(rec.id, METADATA_EXTENSION, persisted(rec));
      }
    });
  }

  private async stopPause(id: string): Promise<void> {
    const task = await this.tasks.get(id);
    if (!task) return;
    if (task.status === TaskStatusCode.RUNNING || task.status === TaskStatusCode.PAUSED || task.status === TaskStatusCode.CREATED) {
      await this.tasks.kill(id, SIGKILL, true);
      await this.tasks.wait(id, { timeoutMs: STOP_WAIT_MS });
    }
    await this.tasks.delete(id);
  }

  /** RemovePodSandbox: stops it if needed, then removes the pause container, files and name. */
  async remove(idOrPrefix: string): Promise<void> {
    const found = this.store.get(idOrPrefix);
    if (!found) return;
    await this.stopSandbox(found.id);
    await this.lock.run(found.id, async () => {
      await this.containers.delete(found.id);
      await this.opts.snapshots.remove(found.id);
      await rm(found.dir, { recursive: true, force: true });
      await this.releaseStateDir(found.id);
      this.store.delete(found.id);
      this.opts.events?.publish(found.id, found.id, LifecycleEvent.Deleted);
    });
  }

  /** The record for a status call; unknown is NOT_FOUND. */
  get(idOrPrefix: string): SandboxRecord {
    const rec = this.store.get(idOrPrefix);
    if (!rec) throw new NotFoundError(`pod sandbox "${idOrPrefix}" not found`);
    return rec;
  }

  list(): SandboxRecord[] {
    return this.store.all();
  }
}

function persisted(r: { id: string; config: PodSandboxConfig; runtimeHandler: string; createdAt: bigint; netnsPath: string; ips: string[] }): Any {
  const value: PersistedSandbox = { id: r.id, config: PodSandboxConfig.toJSON(r.config), runtimeHandler: r.runtimeHandler, createdAt: r.createdAt.toString(), netnsPath: r.netnsPath, ips: r.ips };
  return jsonAny(METADATA_TYPE_URL, value);
}

function runcOptions(h: RuntimeHandlerConfig): Any | undefined {
  const o = h.options;
  if (!o.binaryName && !o.root && !o.systemdCgroup && !o.noPivotRoot) return undefined;
  const msg = RuncOptions.fromPartial({ binaryName: o.binaryName ?? "", root: o.root ?? "", systemdCgroup: o.systemdCgroup ?? false, noPivotRoot: o.noPivotRoot ?? false });
  return { typeUrl: RUNC_OPTIONS_TYPE_URL, value: Buffer.from(RuncOptions.encode(msg).finish()) };
}

function validateConfig(config: PodSandboxConfig): void {
  const m = config.metadata;
  if (!m) throw new InvalidArgumentError("RunPodSandbox: config.metadata is required");
  for (const field of ["name", "namespace", "uid"] as const) {
    if (!m[field]) throw new InvalidArgumentError(`RunPodSandbox: metadata.${field} is required`);
  }
  // A sandbox has no container to target or to share with yet.
  const pid = config.linux?.securityContext?.namespaceOptions?.pid;
  if (pid === NamespaceMode.TARGET) throw new InvalidArgumentError("RunPodSandbox: a pod sandbox's PID namespace cannot target a container");
}
