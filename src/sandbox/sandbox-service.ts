import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "../config/options.js";
import type { RuntimeHandlerConfig } from "../config/runtimes.js";
import type { Container } from "../containerd/containers.js";
import { TaskStatusCode } from "../containerd/tasks.js";
import { InternalError, InvalidArgumentError, NotFoundError, UnavailableError } from "../errors/errors.js";
import { NamespaceMode, type PodSandboxConfig } from "../gen/cri/runtime/v1/api.js";
import { Options as RuncOptions } from "../gen/containerd/types/runc/options/oci.js";
import type { Any } from "../gen/google/protobuf/any.js";
import type { TaskEvent } from "../containerd/events.js";
import type { Logger } from "../logger/logger.js";
import { netnsNameFor } from "../network/netns.js";
import { CleanupStack } from "../util/cleanup.js";
import { KeyedLock } from "../util/keyed-lock.js";
import { buildSandboxSpec } from "./sandbox-spec.js";
import { LifecycleEvent, type ContainerEventHub } from "../lifecycle-events/container-events.js";
import { runtimeDefaultSeccomp } from "../oci/seccomp.js";
import { checkSeccompLoadable } from "../oci/seccomp-check.js";
import { loadLocalhostSeccomp } from "../oci/seccomp-files.js";
import { defaultCapabilities } from "../oci/defaults.js";
import { RuntimeFeatureProbe, type HandlerFeatures } from "../oci/runtime-features.js";
import { renderHostname, renderHosts, renderResolvConf, type SandboxFilePaths } from "./sandbox-files.js";
import { nameKeyOf, SandboxState, SandboxStore, type SandboxRecord } from "./sandbox-store.js";
import type { SandboxAdapters } from "./sandbox-adapters.js";
import { decodeSandboxRecord, encodeSandboxRecord, SANDBOX_RECORD_EXTENSION } from "./sandbox-record.js";
import { crashPoint, type CrashStep } from "../util/crash-point.js";
import { retryTransient } from "../util/retry.js";
import { writeJsonAtomic } from "../util/atomic-file.js";
import { nowUnixNanos } from "../util/clock.js";
import { observeSteps } from "../metrics/metrics.js";
import { StepTimer } from "../util/step-timer.js";
import type { ImageEntry } from "../image/image-store.js";
import type { Spec } from "../oci/spec-types.js";
import { removeTree } from "../util/remove.js";
import { allSettledOrThrow } from "../util/settle.js";

// Labels and the extension podshim puts on a sandbox's containerd container: the kind (so
// recovery finds sandboxes), the pod identity for people using ctr, and the record itself.
export const SandboxLabel = {
  kind: "io.podshim.kind",
  podName: "io.kubernetes.pod.name",
  podNamespace: "io.kubernetes.pod.namespace",
  podUid: "io.kubernetes.pod.uid",
} as const;
const RUNC_OPTIONS_TYPE_URL = "containerd.runc.v1.Options";
const STOP_WAIT_MS = 10_000;
const SHM_SIZE = "65536k";
/** A pause image pull inside RunPodSandbox gives up after this long. */
const PAUSE_PULL_TIMEOUT_MS = 120_000;
/** Written into a new sandbox's dir before any side effect outside it, so a sweep after a
 * crash knows which network namespace the half-made sandbox had pinned. */
export const SANDBOX_INTENT_FILE = "intent.json";

export interface SandboxIntent {
  version: 1;
  id: string;
  netns: string;
}

export interface SandboxServiceOptions {
  config: Config;
  adapters: SandboxAdapters;
  logger: Logger;
  /** Where lifecycle transitions are announced (GetContainerEvents). */
  lifecycleEvents?: ContainerEventHub;
  /** Aborted when podshim is shutting down and in-flight work must be cut off and undone. */
  shutdown?: AbortSignal;
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
  private readonly containers: SandboxAdapters["records"];
  private readonly tasks: SandboxAdapters["tasks"];
  private readonly a: SandboxAdapters;
  private readonly log: Logger;
  private readonly features = new RuntimeFeatureProbe();
  /** RunPodSandbox calls under way, by pod identity: a retry waits for the first. */
  private readonly inflight = new Map<string, Promise<SandboxRecord>>();

  constructor(private readonly opts: SandboxServiceOptions) {
    this.a = opts.adapters;
    this.containers = opts.adapters.records;
    this.tasks = opts.adapters.tasks;
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

  /**
   * Rebuilds the index from containerd. A transient containerd error on one record is
   * retried; a record that cannot be read fails the whole load (recovery stays closed and
   * says why) rather than dropping a pod that may still be running with its IP and ports.
   */
  async load(): Promise<void> {
    const found = await retryTransient(() => this.containers.list([`labels."${SandboxLabel.kind}"==sandbox`]));
    const recs = await Promise.all(found.map((c) => retryTransient(() => this.recover(c))));
    for (const rec of recs) this.store.add(rec);
    this.log.info({ sandboxes: this.store.size }, "sandbox index loaded");
  }

  private async recover(c: Container): Promise<SandboxRecord> {
    const data = decodeSandboxRecord(c.id, c.extensions[SANDBOX_RECORD_EXTENSION]);
    const task = await this.tasks.get(c.id);
    // A sandbox whose RunPodSandbox never finished is reported NOTREADY: the kubelet stops and
    // removes it and makes the next attempt.
    const running = data.complete && task?.status === TaskStatusCode.RUNNING;
    return {
      id: c.id,
      nameKey: nameKeyOf(data.config),
      config: data.config,
      runtimeHandler: data.runtimeHandler,
      createdAt: data.createdAt,
      netnsPath: data.netnsPath,
      ips: data.ips,
      state: running ? SandboxState.Ready : SandboxState.NotReady,
      pid: running ? task!.pid : 0,
      dir: this.sandboxDir(c.id),
    };
  }

  /** Where the per-sandbox dirs live (the sweep looks for ones no record explains). */
  get sandboxesDir(): string {
    return join(this.opts.config.root, "sandboxes");
  }

  get stateSandboxesDir(): string {
    return join(this.opts.config.state, "sandboxes");
  }

  private sandboxDir(id: string): string {
    return join(this.sandboxesDir, id);
  }

  /** Per-sandbox runtime state (gone at reboot, like the sandbox itself). */
  private stateDir(id: string): string {
    return join(this.stateSandboxesDir, id);
  }

  shmPath(id: string): string {
    return join(this.stateDir(id), "shm");
  }

  /** Unmounts the pod's shm, then removes its runtime state dir. */
  async releaseStateDir(id: string): Promise<void> {
    await this.a.mounts.unmountAndRemove(this.shmPath(id));
    await removeTree(this.stateDir(id));
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
  handleEvent(event: TaskEvent): void {
    if (event.kind !== "exit") return;
    const rec = this.store.get(event.containerId);
    // Only the pause process itself ends a sandbox (exec'd processes have other ids).
    if (!rec || rec.id !== event.containerId || event.processId !== event.containerId) return;
    if (rec.creating) {
      rec.exitedWhileCreating = true;
      return;
    }
    if (rec.state === SandboxState.Ready) {
      rec.state = SandboxState.NotReady;
      rec.pid = 0;
      this.opts.lifecycleEvents?.publish(rec.id, rec.id, LifecycleEvent.Stopped);
      this.log.info({ sandbox: rec.id, exitStatus: event.exitStatus }, "pause container exited; sandbox not ready");
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
   * failure unwinds them all, so a failed run leaves nothing behind. A retry with the same
   * pod identity (the kubelet's, after its deadline cut the first call off) waits for the
   * call under way and gets its sandbox; once that sandbox is ready, the same identity keeps
   * getting it. The first call goes on when its client gives up: the kubelet comes back.
   */
  async run(config: PodSandboxConfig, runtimeHandler: string): Promise<SandboxRecord> {
    validateConfig(config);
    const nameKey = nameKeyOf(config);
    for (let pending = this.inflight.get(nameKey); pending; pending = this.inflight.get(nameKey)) {
      const first = await pending.catch(() => undefined);
      if (first && this.store.get(first.id) === first && first.state === SandboxState.Ready) return first;
    }
    const holder = this.store.holderOf(nameKey);
    if (holder && !holder.creating && holder.state === SandboxState.Ready) {
      this.log.info({ sandbox: holder.id }, "RunPodSandbox retried for a ready sandbox; answering with it");
      return holder;
    }
    const handler = this.handler(runtimeHandler);
    const id = randomBytes(32).toString("hex");
    this.store.reserve(nameKey, id);
    const work = this.lock.run(id, async () => {
      const log = this.log.child({ sandbox: id, pod: `${config.metadata!.namespace}/${config.metadata!.name}` });
      const cleanup = new CleanupStack(log);
      cleanup.push("release name", async () => this.store.release(nameKey, id));
      try {
        this.step("sandbox.reserved");
        const steps = new StepTimer();
        const rec = await this.create(id, nameKey, config, runtimeHandler, handler, cleanup, log, steps);
        observeSteps("run_pod_sandbox", steps.ms);
        cleanup.dismiss();
        this.opts.lifecycleEvents?.publish(id, id, LifecycleEvent.Created);
        this.opts.lifecycleEvents?.publish(id, id, LifecycleEvent.Started);
        return rec;
      } catch (err) {
        const left = await cleanup.unwind();
        if (left.length > 0) log.error({ left }, "RunPodSandbox failed and could not undo everything");
        throw err;
      }
    });
    this.inflight.set(nameKey, work);
    const forget = () => {
      if (this.inflight.get(nameKey) === work) this.inflight.delete(nameKey);
    };
    work.then(forget, forget);
    return work;
  }

  /** A named step of a create: where tests crash podshim, and where shutdown cuts in. */
  private step(step: CrashStep): void {
    crashPoint(step);
    if (this.opts.shutdown?.aborted) throw new UnavailableError("podshim is shutting down: RunPodSandbox was cut off and undone; retry it");
  }

  /**
   * The steps of RunPodSandbox, in three chains side by side once the spec is built (every
   * path it names is known up front): the sandbox dir with its intent, then the netns, CNI ADD
   * and /etc/hosts; the pod's shm; the pause container's snapshot and record, which then waits
   * for the netns, shm and files it mounts before its task is created and started. Each step
   * registers its undo on `cleanup` before it acts, and every chain settles before a failure
   * unwinds.
   */
  private async create(id: string, nameKey: string, config: PodSandboxConfig, runtimeHandler: string, handler: RuntimeHandlerConfig, cleanup: CleanupStack, log: Logger, steps: StepTimer): Promise<SandboxRecord> {
    const createdAt = nowUnixNanos();
    const pause = await this.pauseImage();
    steps.mark("image");
    const nsOpts = config.linux?.securityContext?.namespaceOptions;
    const hostNetwork = nsOpts?.network === NamespaceMode.NODE;
    const netnsName = hostNetwork ? "" : netnsNameFor(id);
    const netnsPath = hostNetwork ? "" : this.a.netns.pathOf(netnsName);
    const rec: SandboxRecord = { id, nameKey, config, runtimeHandler, createdAt, netnsPath, ips: [], state: SandboxState.NotReady, pid: 0, dir: this.sandboxDir(id), creating: true };
    const files = this.files(rec);
    const spec = await this.pauseSpec(id, config, runtimeHandler, handler, pause.config, netnsPath, files);
    steps.mark("spec");

    // The intent (which netns this pod will pin) is on disk before the netns exists.
    const dir = steps.span("dir", () => this.makeSandboxDir(id, netnsName, cleanup));
    const netns = dir.then(() => (hostNetwork ? undefined : this.pinNetns(netnsName, cleanup, steps)));
    const shm = files.shm ? steps.span("shm", () => this.mountPodShm(id, cleanup)) : Promise.resolve();
    const hostname = dir.then(() => steps.span("files", () => this.writePodFiles(files, config, hostNetwork)));
    const network = netns.then(() => (hostNetwork ? [] : this.setUpPodNetwork(rec, cleanup, steps)));
    // CRI has no host aliases for the sandbox (the kubelet writes those into its own hosts file).
    const hosts = Promise.all([network, hostname]).then(([ips, name]) => writeFile(files.hosts, renderHosts(ips, name, []), { mode: 0o644 }));
    const pid = this.startPauseContainer(rec, pause, spec, handler, cleanup, steps, Promise.all([netns, shm, hostname]));
    const [ips, pausePid] = (await allSettledOrThrow<unknown>([network, pid, dir, netns, shm, hostname, hosts])) as [string[], number];
    steps.mark("network_and_pause");
    await this.markReady(rec, ips, pausePid);
    steps.mark("ready");
    log.info({ ips: rec.ips, pid: rec.pid, netns: netnsPath || "host", ms: steps.ms }, "sandbox ready");
    return rec;
  }

  /** The pause image, pulled if missing: bounded by its own deadline and by shutdown. */
  private pauseImage(): Promise<ImageEntry> {
    const pullDeadline = AbortSignal.timeout(PAUSE_PULL_TIMEOUT_MS);
    return this.a.images.ensurePauseImage(this.opts.shutdown ? AbortSignal.any([pullDeadline, this.opts.shutdown]) : pullDeadline);
  }

  /** The sandbox's dir under --root, with the intent file the sweep reads after a crash. */
  private async makeSandboxDir(id: string, netnsName: string, cleanup: CleanupStack): Promise<string> {
    const dir = this.sandboxDir(id);
    await mkdir(dir, { recursive: true, mode: 0o711 });
    cleanup.push("remove sandbox dir", () => removeTree(dir));
    const intent: SandboxIntent = { version: 1, id, netns: netnsName };
    // Not fsynced: the netns it names lives under /run, so a reboot that could lose the file
    // takes the netns with it, and a crash of podshim alone leaves the page cache intact.
    await writeJsonAtomic(join(dir, SANDBOX_INTENT_FILE), intent, { durable: false });
    this.step("sandbox.dir-made");
    return dir;
  }

  private async pinNetns(netnsName: string, cleanup: CleanupStack, steps: StepTimer): Promise<string> {
    const netnsPath = await steps.span("netns", () => this.a.netns.create(netnsName));
    cleanup.push("delete netns", () => this.a.netns.delete(netnsPath));
    this.step("sandbox.netns-pinned");
    return netnsPath;
  }

  /** One /dev/shm for the whole pod: a tmpfs the pause container and every app container mount. */
  private async mountPodShm(id: string, cleanup: CleanupStack): Promise<string> {
    const shm = this.shmPath(id);
    cleanup.push("unmount shm", () => this.releaseStateDir(id));
    await this.a.mounts.tmpfs(shm, ["nosuid", "nodev", "noexec", "mode=1777", `size=${SHM_SIZE}`]);
    this.step("sandbox.shm-mounted");
    return shm;
  }

  /** hostname and resolv.conf; hosts waits for the pod's IPs. Resolves to the hostname. */
  private async writePodFiles(files: SandboxFilePaths, config: PodSandboxConfig, hostNetwork: boolean): Promise<string> {
    // A host-network pod without a hostname of its own has the node's, as uname shows it.
    const nodeHostname = hostNetwork ? (await readFile("/etc/hostname", "utf8").catch(() => "localhost")).trim() : "";
    const hostnameFile = renderHostname(hostNetwork ? config.hostname : config.hostname || config.metadata!.name, nodeHostname);
    await writeFile(files.hostname, hostnameFile, { mode: 0o644 });
    await writeFile(files.resolvConf, renderResolvConf(config.dnsConfig, await readFile("/etc/resolv.conf", "utf8").catch(() => "")), { mode: 0o644 });
    return hostnameFile.trimEnd();
  }

  /** The pause container's OCI spec; a seccomp profile runc could not load is refused now. */
  private async pauseSpec(id: string, config: PodSandboxConfig, runtimeHandler: string, handler: RuntimeHandlerConfig, image: ImageEntry["config"], netnsPath: string, files: SandboxFilePaths): Promise<Spec> {
    const spec = buildSandboxSpec({
      id, config, image, netnsPath: netnsPath || undefined, runtimeHandler,
      cgroupDriver: this.opts.config.cgroupDriver, restrictOomScoreAdj: this.opts.config.restrictOomScoreAdj,
      currentOomScoreAdj: Number((await readFile("/proc/self/oom_score_adj", "utf8")).trim()), files,
      defaultSeccomp: runtimeDefaultSeccomp(defaultCapabilities(), process.arch, this.opts.config.seccompDefaultProfile),
      localhostSeccomp: await loadLocalhostSeccomp(config.linux?.securityContext),
      ...(handler.podAnnotations ? { podAnnotations: handler.podAnnotations } : {}),
      unprivilegedPorts: this.opts.config.enableUnprivilegedPorts,
      unprivilegedIcmp: this.opts.config.enableUnprivilegedIcmp,
    });
    if (spec.linux.seccomp !== undefined) await checkSeccompLoadable(spec.linux.seccomp);
    return spec;
  }

  /** CNI ADD into the pinned netns; resolves to the pod's IPs. */
  private async setUpPodNetwork(rec: SandboxRecord, cleanup: CleanupStack, steps: StepTimer): Promise<string[]> {
    const { id, netnsPath, config } = rec;
    cleanup.push("CNI DEL", () => this.a.network.tearDownPod(id, netnsPath));
    const m = config.metadata!;
    const res = await steps.span("cni_add", () => this.a.network.setUpPod({ id, name: m.name, namespace: m.namespace, uid: m.uid, netns: netnsPath, portMappings: config.portMappings, annotations: config.annotations }));
    this.step("sandbox.cni-added");
    return res.ips;
  }

  /** Snapshot, containerd container and task of the pause container; resolves to its pid. The
   * task waits for `mounted`: the netns, shm and files the spec names. */
  private async startPauseContainer(rec: SandboxRecord, pause: ImageEntry, spec: Spec, handler: RuntimeHandlerConfig, cleanup: CleanupStack, steps: StepTimer, mounted: Promise<unknown>): Promise<number> {
    const { id, config } = rec;
    const snapshots = this.a.snapshots;
    // The lease keeps the fresh snapshot from the garbage collector until the container
    // record refers to it.
    const mounts = await steps.span("pause_record", () => this.a.withLease("sandbox", async (lease) => {
      cleanup.push("remove snapshot", () => snapshots.remove(id));
      const m = await snapshots.prepare(id, pause.chainId, {}, { lease });
      this.step("sandbox.snapshot-prepared");
      cleanup.push("delete container", () => this.containers.delete(id));
      await this.containers.create({
        id, image: [...pause.names][0] ?? pause.id, spec, snapshotter: snapshots.snapshotter, snapshotKey: id,
        labels: { [SandboxLabel.kind]: "sandbox", [SandboxLabel.podName]: config.metadata!.name, [SandboxLabel.podNamespace]: config.metadata!.namespace, [SandboxLabel.podUid]: config.metadata!.uid },
        runtime: { name: handler.runtimeType, ...(runcOptions(handler) ? { options: runcOptions(handler)! } : {}) },
        extensions: { [SANDBOX_RECORD_EXTENSION]: encodeSandboxRecord({ ...rec, complete: false }) },
      }, { lease });
      this.step("sandbox.container-recorded");
      return m;
    }));
    // In the index (unlisted) before the pause starts, so an exit during start is seen.
    this.store.add(rec);
    cleanup.push("unindex", async () => this.store.delete(id));
    await mounted;
    cleanup.push("delete task", () => this.tasks.undoCreate(id, STOP_WAIT_MS));
    await steps.span("pause_create", () => this.tasks.create(id, mounts));
    this.step("sandbox.task-created");
    const pid = await steps.span("pause_start", () => this.tasks.start(id));
    this.step("sandbox.task-started");
    return pid;
  }

  /** The record marked complete (its files are all written), and the sandbox Ready. */
  private async markReady(rec: SandboxRecord, ips: string[], pid: number): Promise<void> {
    await this.containers.setExtension(rec.id, SANDBOX_RECORD_EXTENSION, encodeSandboxRecord({ ...rec, ips, complete: true }));
    this.step("sandbox.ready");
    if (rec.exitedWhileCreating) throw new InternalError(`the pause container of pod sandbox ${rec.id} exited while the sandbox was being started`);
    rec.ips = ips;
    rec.pid = pid;
    rec.state = SandboxState.Ready;
    rec.creating = false;
  }

  /**
   * StopPodSandbox: kills the pause container, runs CNI DEL and releases the netns. Stopping
   * an unknown or stopped sandbox succeeds (the kubelet retries stops).
   */
  async stopSandbox(idOrPrefix: string): Promise<void> {
    const found = this.store.find(idOrPrefix);
    if (!found) return;
    await this.lock.run(found.id, async () => {
      const rec = this.store.get(found.id);
      if (!rec) return;
      // The pinned netns outlives the pause process, so CNI DEL need not wait for it to die;
      // the netns itself goes only after DEL (the bridge plugin finds its rules through it).
      const steps = await Promise.allSettled([
        this.tasks.killAndDelete(rec.id, STOP_WAIT_MS),
        this.releaseStateDir(rec.id),
        rec.netnsPath ? this.a.network.tearDownPod(rec.id, rec.netnsPath) : undefined,
      ]);
      // Every step ran to its end; the kubelet retries a failed stop.
      const failed = steps.find((r) => r.status === "rejected");
      if (failed) throw failed.reason;
      if (rec.state === SandboxState.Ready) this.opts.lifecycleEvents?.publish(rec.id, rec.id, LifecycleEvent.Stopped);
      rec.state = SandboxState.NotReady;
      rec.pid = 0;
      if (rec.netnsPath) {
        await this.a.netns.delete(rec.netnsPath);
        rec.netnsPath = "";
        await this.containers.setExtension(rec.id, SANDBOX_RECORD_EXTENSION, encodeSandboxRecord({ ...rec, complete: true }));
      }
    });
  }

  /** RemovePodSandbox: stops it if needed, then removes the pause container, files and name. */
  async remove(idOrPrefix: string): Promise<void> {
    const found = this.store.find(idOrPrefix);
    if (!found) return;
    await this.stopSandbox(found.id);
    await this.lock.run(found.id, async () => {
      // Nothing else refers to these: they go together.
      await Promise.all([
        this.containers.delete(found.id),
        this.a.snapshots.remove(found.id),
        removeTree(found.dir),
        this.releaseStateDir(found.id),
      ]);
      this.store.delete(found.id);
      this.opts.lifecycleEvents?.publish(found.id, found.id, LifecycleEvent.Deleted);
    });
  }

  /** The record for a status call; unknown is NOT_FOUND. */
  get(idOrPrefix: string): SandboxRecord {
    const rec = this.store.find(idOrPrefix);
    if (!rec) throw new NotFoundError(`pod sandbox "${idOrPrefix}" not found`);
    return rec;
  }

  list(): SandboxRecord[] {
    return this.store.visible();
  }
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
