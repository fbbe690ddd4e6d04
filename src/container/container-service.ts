import { randomBytes } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "../config/options.js";
import { fromJsonAny, jsonAny } from "../containerd/containers.js";
import type { TaskEvent } from "../containerd/events.js";
import { TaskStatusCode, exitedAtNs } from "../containerd/tasks.js";
import { FailedPreconditionError, InvalidArgumentError, messageOf, NotFoundError, UnavailableError } from "../errors/errors.js";
import { type ContainerConfig, LinuxContainerResources } from "../gen/cri/runtime/v1/api.js";
import { repoTagsAndDigests, type ImageEntry } from "../image/image-store.js";
import type { Logger } from "../logger/logger.js";
import { FifoPool } from "../container-logs/fifo-pool.js";
import { cgroupDir, detectCgroupLayout, resolveCgroupPath, type CgroupLayout } from "../stats/cgroup.js";
import { SandboxState, type SandboxRecord } from "../sandbox/sandbox-store.js";
import { CleanupStack } from "../util/cleanup.js";
import { KeyedLock } from "../util/keyed-lock.js";
import { StepTimer } from "../util/step-timer.js";
import { LifecycleEvent, type ContainerEventHub } from "../lifecycle-events/container-events.js";
import { finishContainer, freshStatus, moveContainer, UNKNOWN_EXIT_CODE } from "./container-state.js";
import { ContainerPaths } from "./container-paths.js";
import type { ContainerAdapters } from "./container-adapters.js";
import { ContainerIoSet } from "./container-io.js";
import { StatusCheckpoints } from "./container-checkpoints.js";
import { recoverContainer } from "./container-recovery.js";
import { ContainerStreamingBackend } from "./container-streaming.js";
import { prepareContainerSpec, specWithResources, type PreparedSpec } from "./container-spec-inputs.js";
import type { Process, Spec } from "../oci/spec-types.js";
import type { ProcessExit } from "../streaming/backend.js";
import { deferred, type Deferred } from "../util/deferred.js";
import { crashPoint, type CrashStep } from "../util/crash-point.js";
import { retryTransient } from "../util/retry.js";
import { nowUnixNanos } from "../util/clock.js";
import { CONTAINER_RECORD_EXTENSION, encodeContainerMetadata } from "./container-record.js";
import { observeSteps } from "../metrics/metrics.js";
import { removeTree } from "../util/remove.js";
import { allSettledOrThrow } from "../util/settle.js";
import {
  containerNameKey,
  ContainerState,
  ContainerStore,
  ExitReason,
  type ContainerMetadata,
  type ContainerRecord,
} from "./container-store.js";

/** Labels on a container's containerd record: the kind (so recovery finds containers), its pod. */
export const ContainerLabel = {
  kind: "io.podshim.kind",
  sandboxId: "io.podshim.sandbox-id",
  containerName: "io.kubernetes.container.name",
} as const;
const RESOURCES_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";
const SIGKILL = 9;
/** How long a killed container may take to be reaped before StopContainer gives up. */
const KILL_WAIT_MS = 30_000;
/** containerd's exit code for a container whose start failed. */
const START_ERROR_EXIT_CODE = 128;

export interface ContainerServiceOptions {
  config: Config;
  adapters: ContainerAdapters;
  logger: Logger;
  /** Where lifecycle transitions are announced (GetContainerEvents). */
  lifecycleEvents?: ContainerEventHub;
  /** Aborted when podshim is shutting down and in-flight work must be cut off and undone. */
  shutdown?: AbortSignal;
}

/**
 * The lifecycle of app containers inside pod sandboxes: create, start, exits, stop, remove.
 * The truth lives in containerd (the container record with its metadata as an extension, the
 * task) and in a status checkpoint per container under the root dir, written durably at
 * every transition; the store is an index of both. Output pumps (container-io), recovery
 * (container-recovery) and exec/attach/port-forward (container-streaming) are rooms of their own.
 */
export class ContainerService {
  readonly store = new ContainerStore();
  private readonly lock = new KeyedLock();
  private readonly containers: ContainerAdapters["records"];
  private readonly tasks: ContainerAdapters["tasks"];
  private readonly a: ContainerAdapters;
  private readonly paths: ContainerPaths;
  private readonly io: ContainerIoSet;
  private readonly checkpoints: StatusCheckpoints;
  private readonly log: Logger;
  private readonly fifos: FifoPool;
  /** ExecSync and the streaming server's Exec, Attach and PortForward. */
  readonly streaming: ContainerStreamingBackend;
  /** CreateContainer calls under way, by container identity: a retry waits for the first. */
  private readonly inflight = new Map<string, Promise<ContainerRecord>>();

  constructor(private readonly opts: ContainerServiceOptions) {
    this.a = opts.adapters;
    this.containers = opts.adapters.records;
    this.tasks = opts.adapters.tasks;
    this.log = opts.logger;
    this.fifos = new FifoPool(join(opts.config.state, "fifo-pool"), opts.logger);
    this.paths = new ContainerPaths(opts.config.root, opts.config.state);
    this.io = new ContainerIoSet(this.paths, opts.logger);
    this.checkpoints = new StatusCheckpoints(this.paths, opts.logger);
    this.streaming = new ContainerStreamingBackend({
      host: { get: (id) => this.get(id), processTemplate: (id) => this.specParts.get(id)?.process, exitOf: (id) => this.exitOf(id), readySandbox: (id) => this.readySandbox(id) },
      tasks: this.tasks, fifos: this.fifos, io: this.io, paths: this.paths, logger: opts.logger,
    });
  }

  /** Where the per-container dirs live (the sweep looks for ones no record explains). */
  get containersDir(): string {
    return this.paths.containersDir;
  }

  get stateContainersDir(): string {
    return this.paths.stateContainersDir;
  }

  /** A named step of a create or start: where tests crash podshim, where shutdown cuts in. */
  private step(step: CrashStep, call: string): void {
    crashPoint(step);
    if (this.opts.shutdown?.aborted) throw new UnavailableError(`podshim is shutting down: ${call} was cut off and undone; retry it`);
  }

  // ---------------------------------------------------------------- recovery

  /**
   * Rebuilds the index from containerd and the status files; reattaches the log pumps of
   * running containers, records exits that happened while podshim was down.
   */
  async load(): Promise<void> {
    await this.fifos.start();
    const found = await retryTransient(() => this.containers.list([`labels."${ContainerLabel.kind}"==container`]));
    // A record that cannot be read fails the load (recovery stays closed and says why); a
    // transient error on one is retried, never a reason to drop it.
    const ctx = { tasks: this.tasks, io: this.io, checkpoints: this.checkpoints, specParts: this.specParts, tasksLeft: this.tasksLeft, deleteExitedTask: (id: string) => this.deleteExitedTask(id), logger: this.log };
    const recs = await Promise.all(found.map((c) => retryTransient(() => recoverContainer(ctx, c))));
    for (const rec of recs) this.store.add(rec);
    this.log.info({ containers: this.store.size }, "container index loaded");
  }

  /**
   * Closes every output pump once what it has read is written (podshim is stopping; the
   * shims keep the containers running, and what they write meanwhile waits in the FIFOs
   * for the next podshim).
   */
  async stop(): Promise<void> {
    await this.io.closeAll();
    await this.fifos.close();
  }

  // ---------------------------------------------------------------- events

  /** Task exits and OOM kills of app containers; other events and ids are ignored. */
  handleEvent(event: TaskEvent): void {
    const rec = this.store.get(event.containerId);
    if (!rec || rec.id !== event.containerId) return;
    if (event.kind === "exit") {
      // Exec'd processes end with other ids; only the container's own process ends it.
      if (event.processId !== event.containerId) return;
      const exitedAt = event.exitedAt > 0n ? event.exitedAt : nowUnixNanos();
      this.onExit(rec.id, event.exitStatus, exitedAt).catch((err) => this.log.error({ container: rec.id, err: messageOf(err) }, "recording a container exit failed"));
    } else {
      void this.lock.run(rec.id, async () => {
        rec.status.oomKilled = true;
        // The OOM event may trail the exit: correct the reason already recorded.
        if (rec.status.state === ContainerState.Exited && rec.status.reason !== ExitReason.OOMKilled) {
          rec.status.reason = ExitReason.OOMKilled;
          await this.persistStatus(rec);
        }
      }).catch((err) => this.log.warn({ container: rec.id, err: messageOf(err) }, "recording an OOM kill failed"));
    }
  }

  /** After a lost event stream: exits sent meanwhile are gone, so ask containerd. */
  async resync(): Promise<void> {
    await Promise.all(this.store.all().filter((r) => r.status.state === ContainerState.Running).map(async (rec) => {
      const task = await this.tasks.get(rec.id);
      if (!task) await this.onExit(rec.id, UNKNOWN_EXIT_CODE, nowUnixNanos());
      else if (task.status === TaskStatusCode.STOPPED) await this.onExit(rec.id, task.exitStatus, exitedAtNs(task));
    }));
  }

  /**
   * Records an exit once: drains the last output into the log, deletes the task (which reaps
   * the shim's bookkeeping) and checkpoints the status. Safe to call twice.
   */
  private onExit(id: string, exitStatus: number, exitedAt: bigint): Promise<void> {
    return this.lock.run(id, async () => {
      const rec = this.store.get(id);
      if (!rec || rec.id !== id || rec.status.state !== ContainerState.Running) return;
      await this.io.close(id, true);
      if (exitStatus === 137 && !rec.status.oomKilled) rec.status.oomKilled = await this.oomKillRecorded(rec);
      finishContainer(rec, exitStatus, exitedAt, nowUnixNanos());
      await this.persistStatus(rec);
      this.opts.lifecycleEvents?.publish(id, rec.sandboxId, LifecycleEvent.Stopped);
      this.exitWaiters.get(id)?.resolve({ exitCode: rec.status.exitCode });
      this.exitWaiters.delete(id);
      await this.deleteExitedTask(id);
      this.log.info({ container: id, exitCode: rec.status.exitCode, reason: rec.status.reason }, "container exited");
    });
  }

  /** Attached clients waiting for a container's end. */
  private readonly exitWaiters = new Map<string, Deferred<ProcessExit>>();

  private exitOf(id: string): Promise<ProcessExit> {
    let d = this.exitWaiters.get(id);
    if (!d) {
      d = deferred<ProcessExit>();
      this.exitWaiters.set(id, d);
    }
    return d.promise;
  }

  /** Ids whose exited task could not be deleted: RemoveContainer tries again. */
  private readonly tasksLeft = new Set<string>();

  private async deleteExitedTask(id: string): Promise<void> {
    try {
      await this.tasks.delete(id);
    } catch (err) {
      this.tasksLeft.add(id);
      this.log.warn({ container: id, err: messageOf(err) }, "cannot delete the task of an exited container; RemoveContainer will retry");
    }
  }

  /**
   * The OOM event can be lost or late; the memory cgroup also counts OOM kills ("oom_kill N"
   * in memory.oom_control on v1 since Linux 4.13, in memory.events on v2), found through the
   * same resolver stats use. Read before the task is deleted, while the cgroup still exists.
   */
  private async oomKillRecorded(rec: ContainerRecord): Promise<boolean> {
    const path = resolveCgroupPath(this.specParts.get(rec.id)?.cgroupsPath ?? "");
    this.cgroupLayout ??= detectCgroupLayout();
    const layout = await this.cgroupLayout;
    if (!path || !layout) return false;
    const file = layout.version === 1
      ? layout.controllers.memory && join(cgroupDir(layout.controllers.memory, path), "memory.oom_control")
      : join(cgroupDir(layout.unified, path), "memory.events");
    if (file) {
      const text = await readFile(file, "utf8").catch(() => "");
      const m = /^oom_kill (\d+)$/m.exec(text);
      if (m) return Number(m[1]) > 0;
    }
    return false;
  }

  private cgroupLayout: Promise<CgroupLayout | undefined> | undefined;

  /** The parts of each container's OCI spec podshim needs after creating it: the cgroup
   * path (OOM fallback) and the process (the template of exec'd processes). */
  private readonly specParts = new Map<string, { cgroupsPath: string; process: Process }>();

  // ---------------------------------------------------------------- create

  /**
   * CreateContainer: a snapshot of the image for the rootfs, an OCI spec joining the pod's
   * namespaces, and a containerd container record. No process yet: StartContainer makes the
   * task. The name (container name + pod identity + attempt) is reserved first, so the same
   * attempt twice is ALREADY_EXISTS; every side effect is undone on failure.
   */
  async create(sandboxIdOrPrefix: string, config: ContainerConfig): Promise<ContainerRecord> {
    const steps = new StepTimer();
    validateConfig(config);
    const sandbox = this.readySandbox(sandboxIdOrPrefix);
    const m = sandbox.config.metadata!;
    const nameKey = containerNameKey(config, m);
    // A retry of a create still under way (the kubelet's deadline cut it off) gets its
    // container; so does a retry after it finished, while the container is still created.
    for (let pending = this.inflight.get(nameKey); pending; pending = this.inflight.get(nameKey)) {
      const first = await pending.catch(() => undefined);
      if (first && this.store.get(first.id) === first) return first;
    }
    const holder = this.store.holderOf(nameKey);
    if (holder && holder.status.state === ContainerState.Created && !holder.removing) {
      this.log.info({ container: holder.id }, "CreateContainer retried for a created container; answering with it");
      return holder;
    }
    const image = this.a.images.status(config.image!.image);
    if (!image) throw new NotFoundError(`image "${config.image!.image}" not found: pull it before creating a container from it`);
    await this.checkHandlerFeatures(sandbox, config);
    const id = randomBytes(32).toString("hex");
    this.store.reserve(nameKey, id);
    const work = this.lock.run(id, async () => {
      const log = this.log.child({ container: id, sandbox: sandbox.id, name: config.metadata!.name });
      const cleanup = new CleanupStack(log);
      cleanup.push("release name", async () => this.store.release(nameKey, id));
      steps.mark("checks");
      try {
        this.step("container.reserved", "CreateContainer");
        const rec = await this.createRecord(id, nameKey, sandbox, image, config, cleanup, log, steps);
        this.step("container.created", "CreateContainer");
        this.store.add(rec);
        cleanup.dismiss();
        this.opts.lifecycleEvents?.publish(id, sandbox.id, LifecycleEvent.Created);
        log.info({ ms: steps.ms }, "container created");
        observeSteps("create_container", steps.ms);
        return rec;
      } catch (err) {
        const left = await cleanup.unwind();
        if (left.length > 0) log.error({ left }, "CreateContainer failed and could not undo everything");
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

  /** A mount asking for what the pod's runtime handler cannot do is refused before any work. */
  private async checkHandlerFeatures(sandbox: SandboxRecord, config: ContainerConfig): Promise<void> {
    const rro = config.mounts.find((mnt) => mnt.recursiveReadOnly);
    if (!rro) return;
    const handler = (await this.a.sandboxes.handlerFeatures()).find((h) => h.name === sandbox.runtimeHandler);
    if (!handler?.features.recursiveReadOnlyMounts) {
      throw new InvalidArgumentError(`mount ${rro.containerPath}: runtime handler "${sandbox.runtimeHandler}" does not support recursive read-only mounts (its runtime lacks the rro mount option or the kernel lacks mount_setattr)`);
    }
  }

  readySandbox(idOrPrefix: string): SandboxRecord {
    const sandbox = this.a.sandboxes.get(idOrPrefix);
    if (sandbox.state !== SandboxState.Ready || sandbox.pid === 0) {
      throw new FailedPreconditionError(`pod sandbox ${sandbox.id} is not ready: its containers cannot be created or started`);
    }
    return sandbox;
  }

  private async createRecord(id: string, nameKey: string, sandbox: SandboxRecord, image: ImageEntry, config: ContainerConfig, cleanup: CleanupStack, log: Logger, steps: StepTimer): Promise<ContainerRecord> {
    const snapshots = this.a.snapshots;
    const createdAt = nowUnixNanos();
    const dir = this.paths.rootDir(id);
    cleanup.push("remove container dir", () => removeTree(dir));

    const { repoTags, repoDigests } = repoTagsAndDigests(image);
    const imageName = repoTags[0] ?? config.image!.image;
    const logPath = sandbox.config.logDirectory && config.logPath ? join(sandbox.config.logDirectory, config.logPath) : "";

    // The FIFOs are made now, beside the snapshot, so StartContainer only has to open them.
    const io = this.paths.fifos({ id, config });
    const fifos = (async () => {
      cleanup.push("remove FIFOs", () => removeTree(this.paths.stateDir(id)));
      await mkdir(this.paths.ioDir(id), { recursive: true, mode: 0o700 });
      await this.fifos.place([io.stdin, io.stdout, io.stderr].filter((p) => p !== ""));
      this.step("container.fifos-made", "CreateContainer");
    })();

    let prepared!: PreparedSpec;
    const record = this.a.withLease("container", async (lease) => {
      steps.mark("lease");
      cleanup.push("remove snapshot", () => snapshots.remove(id));
      // The spec is built while the snapshot is prepared: it needs the rootfs only for an
      // image's passwd and group files the first time (see userFiles).
      const mounts = steps.span("snapshot", () => snapshots.prepare(id, image.chainId, {}, { lease }));
      const spec = steps.span("spec", () => prepareContainerSpec({
        id, config, sandbox, image, imageName, rootfs: mounts,
        files: this.a.sandboxes.files(sandbox),
        targetPid: (targetId) => this.targetPid(targetId, sandbox.id),
        podshim: this.opts.config,
      }));
      await allSettledOrThrow<unknown>([mounts, spec]);
      prepared = await spec;
      this.step("container.snapshot-prepared", "CreateContainer");
      steps.mark("snapshot_and_spec");
      const meta: ContainerMetadata = {
        id, sandboxId: sandbox.id, nameKey, config, imageRef: config.image!.image, imageId: image.id, imageName,
        imageRepoDigest: repoDigests[0] ?? "", createdAt, logPath, user: prepared.user, stopSignal: prepared.stopSignal,
        runtimeHandler: sandbox.runtimeHandler,
      };
      await this.containers.create({
        id, image: imageName, spec: prepared.spec, snapshotter: snapshots.snapshotter, snapshotKey: id,
        labels: { [ContainerLabel.kind]: "container", [ContainerLabel.sandboxId]: sandbox.id, [ContainerLabel.containerName]: config.metadata!.name },
        runtime: this.a.sandboxes.runtimeOf(sandbox),
        extensions: { [CONTAINER_RECORD_EXTENSION]: encodeContainerMetadata(meta) },
      }, { lease });
      cleanup.push("delete container", () => this.containers.delete(id));
      steps.mark("record");
      this.step("container.container-recorded", "CreateContainer");
    });
    // Both must settle before a failure unwinds: each registers its own undos.
    const [made, recorded] = await Promise.allSettled([fifos, record]);
    steps.mark("fifos");
    if (made.status === "rejected") throw made.reason;
    if (recorded.status === "rejected") throw recorded.reason;

    const rec: ContainerRecord = {
      id, sandboxId: sandbox.id, nameKey, config, imageRef: config.image!.image, imageId: image.id, imageName,
      imageRepoDigest: repoDigests[0] ?? "", createdAt, logPath, user: prepared.user, stopSignal: prepared.stopSignal,
      runtimeHandler: sandbox.runtimeHandler, status: freshStatus(config.linux?.resources), removing: false,
    };
    // No status file yet: a container without one is freshly created (see recover).
    this.specParts.set(id, { cgroupsPath: prepared.spec.linux.cgroupsPath, process: prepared.spec.process });
    return rec;
  }

  /** The pid whose PID namespace a container with NamespaceMode TARGET joins. */
  private targetPid(targetId: string, sandboxId: string): number {
    const target = this.store.get(targetId);
    if (!target || target.sandboxId !== sandboxId) throw new NotFoundError(`target container "${targetId}" of the PID namespace is not in pod sandbox ${sandboxId}`);
    if (target.status.state !== ContainerState.Running) throw new FailedPreconditionError(`target container ${target.id} of the PID namespace is not running`);
    return target.status.pid;
  }

  // ---------------------------------------------------------------- start

  /**
   * StartContainer: FIFOs and the log pump first (the shim opens the write ends when the task
   * is created), then the task. A start that fails leaves the container EXITED with reason
   * StartError and exit code 128, as containerd reports it.
   */
  async start(idOrPrefix: string): Promise<void> {
    const found = this.get(idOrPrefix);
    await this.lock.run(found.id, async () => {
      const rec = this.get(found.id);
      if (rec.status.state !== ContainerState.Created) {
        throw new FailedPreconditionError(`container ${rec.id} is ${rec.status.state}: only a created container can be started`);
      }
      this.readySandbox(rec.sandboxId);
      const log = this.log.child({ container: rec.id });
      const cleanup = new CleanupStack(log);
      const steps = new StepTimer();
      try {
        cleanup.push("close output", () => this.io.close(rec.id, false));
        await this.io.attach(rec, true);
        steps.mark("io");
        this.step("start.io-attached", "StartContainer");
        if (this.tasksLeft.has(rec.id)) {
          // A start cut short by a podshim crash left its task behind.
          await this.tasks.killAndDelete(rec.id, KILL_WAIT_MS);
          this.tasksLeft.delete(rec.id);
        }
        const rootfs = await this.a.snapshots.mounts(rec.id);
        steps.mark("mounts");
        const io = this.paths.fifos(rec);
        cleanup.push("delete task", async () => {
          this.tasksLeft.add(rec.id);
          await this.tasks.undoCreate(rec.id, KILL_WAIT_MS);
          this.tasksLeft.delete(rec.id);
        });
        await this.tasks.create(rec.id, rootfs, { stdin: io.stdin, stdout: io.stdout, stderr: io.stderr, terminal: rec.config.tty });
        steps.mark("task");
        this.step("start.task-created", "StartContainer");
        const pid = await this.tasks.start(rec.id);
        steps.mark("start");
        this.step("start.task-started", "StartContainer");
        moveContainer(rec, ContainerState.Running, { pid, startedAt: nowUnixNanos() });
        cleanup.dismiss();
        // Not awaited: recovery treats a created container with a live task as started.
        this.persistStatus(rec).then(() => crashPoint("start.running"), (err) => log.warn({ err: messageOf(err) }, "cannot checkpoint the container's start"));
        this.opts.lifecycleEvents?.publish(rec.id, rec.sandboxId, LifecycleEvent.Started);
        log.info({ pid, ms: steps.ms }, "container started");
        observeSteps("start_container", steps.ms);
      } catch (err) {
        await cleanup.unwind();
        const now = nowUnixNanos();
        moveContainer(rec, ContainerState.Exited, { pid: 0, startedAt: now, finishedAt: now, exitCode: START_ERROR_EXIT_CODE, reason: ExitReason.StartError, message: messageOf(err) });
        await this.persistStatus(rec).catch(() => undefined);
        this.opts.lifecycleEvents?.publish(rec.id, rec.sandboxId, LifecycleEvent.Stopped);
        throw err;
      }
    });
  }

  // ---------------------------------------------------------------- stop and remove

  /**
   * StopContainer: the stop signal (config, image STOPSIGNAL, else SIGTERM), up to `timeout`
   * seconds, then SIGKILL. Stopping an unknown or already stopped container succeeds.
   */
  async stopContainer(idOrPrefix: string, timeoutSeconds: number): Promise<void> {
    const rec = this.store.get(idOrPrefix);
    if (!rec || rec.status.state !== ContainerState.Running) return;
    if (timeoutSeconds > 0) {
      await this.tasks.kill(rec.id, rec.stopSignal);
      if (await this.awaitExit(rec, timeoutSeconds * 1000)) return;
      this.log.info({ container: rec.id, timeoutSeconds }, "container ignored its stop signal; killing it");
    }
    await this.tasks.kill(rec.id, SIGKILL, true);
    if (!(await this.awaitExit(rec, KILL_WAIT_MS))) {
      throw new FailedPreconditionError(`container ${rec.id} did not exit within ${KILL_WAIT_MS / 1000} s of SIGKILL`);
    }
  }

  /** Waits for the task's exit and records it (the event may also do so; either wins). */
  private async awaitExit(rec: ContainerRecord, ms: number): Promise<boolean> {
    try {
      const exit = await this.tasks.wait(rec.id, { timeoutMs: ms });
      await this.onExit(rec.id, exit.exitStatus, exit.exitedAt);
      return true;
    } catch (err) {
      if (rec.status.state !== ContainerState.Running) return true;
      if (!(await this.tasks.get(rec.id))) {
        await this.onExit(rec.id, UNKNOWN_EXIT_CODE, nowUnixNanos());
        return true;
      }
      this.log.debug({ container: rec.id, err: messageOf(err) }, "waiting for the container's exit ended");
      return false;
    }
  }

  /**
   * RemoveContainer: a running container is killed first. Removes the task, the containerd
   * record, the snapshot and podshim's files; the log file stays (the kubelet owns it).
   * Removing an unknown container succeeds.
   */
  async remove(idOrPrefix: string): Promise<void> {
    const found = this.store.get(idOrPrefix);
    if (!found) return;
    found.removing = true;
    const steps = new StepTimer();
    try {
      await this.stopContainer(found.id, 0);
      steps.mark("stop");
      await this.lock.run(found.id, async () => {
        if (!this.store.get(found.id)) return;
        steps.mark("lock");
        await this.io.close(found.id, false);
        await this.checkpoints.settled(found.id);
        steps.mark("io");
        // An exit already deleted the task, unless that failed; a created container has none.
        if (this.tasksLeft.has(found.id) || found.status.state === ContainerState.Running) {
          await this.tasks.delete(found.id);
          this.tasksLeft.delete(found.id);
          steps.mark("task");
        }
        // Nothing else refers to these: they go together.
        await Promise.all([
          steps.span("record", () => this.containers.delete(found.id)),
          steps.span("snapshot", () => this.a.snapshots.remove(found.id)),
          steps.span("dirs", () => Promise.all([removeTree(this.paths.rootDir(found.id)), removeTree(this.paths.stateDir(found.id))])),
        ]);
        steps.mark("delete");
        this.specParts.delete(found.id);
        this.store.delete(found.id);
        this.opts.lifecycleEvents?.publish(found.id, found.sandboxId, LifecycleEvent.Deleted);
        this.log.info({ container: found.id, ms: steps.ms }, "container removed");
      });
    } finally {
      found.removing = false;
    }
  }

  /** StopPodSandbox: every container of the pod is killed (the kubelet already stopped them
   * gracefully when it could). */
  async stopAllIn(sandboxId: string): Promise<void> {
    await Promise.all(this.store.inSandbox(sandboxId).map((c) => this.stopContainer(c.id, 0)));
  }

  /** RemovePodSandbox: every container of the pod goes with it. */
  async removeAllIn(sandboxId: string): Promise<void> {
    await Promise.all(this.store.inSandbox(sandboxId).map((c) => this.remove(c.id)));
  }

  // ---------------------------------------------------------------- updates and reads

  /** UpdateContainerResources: applied to the running task and kept for status and restarts. */
  async updateResources(idOrPrefix: string, resources: LinuxContainerResources): Promise<void> {
    const found = this.get(idOrPrefix);
    await this.lock.run(found.id, async () => {
      const rec = this.get(found.id);
      if (rec.status.state === ContainerState.Exited || rec.status.state === ContainerState.Unknown) {
        throw new FailedPreconditionError(`container ${rec.id} has exited: its resources cannot be updated`);
      }
      const c = await this.containers.get(rec.id);
      if (!c?.spec) throw new NotFoundError(`container ${rec.id} has no record in containerd`);
      const next = await specWithResources(fromJsonAny<Spec>(c.spec)!, resources);
      if (rec.status.state === ContainerState.Running) {
        await this.tasks.update(rec.id, jsonAny(RESOURCES_TYPE_URL, next.linux.resources));
      }
      await this.containers.setSpec(rec.id, next);
      rec.status.resources = LinuxContainerResources.fromPartial(resources);
      await this.persistStatus(rec);
    });
  }

  /** ReopenContainerLog: after the kubelet renamed the log file, write to a new one. */
  async reopenLog(idOrPrefix: string): Promise<void> {
    const rec = this.get(idOrPrefix);
    if (rec.status.state !== ContainerState.Running) throw new FailedPreconditionError(`container ${rec.id} is not running: there is no log to reopen`);
    const io = this.io.get(rec.id);
    if (!io) throw new FailedPreconditionError(`container ${rec.id} has no attached output (podshim could not reattach after a restart)`);
    await io.log.reopen();
  }

  /** The cgroupsPath of a container's spec ("" when unknown), for stats. */
  cgroupsPathOf(id: string): string {
    return this.specParts.get(id)?.cgroupsPath ?? "";
  }

  /** The record for a status call; unknown is NOT_FOUND. */
  get(idOrPrefix: string): ContainerRecord {
    const rec = this.store.get(idOrPrefix);
    if (!rec) throw new NotFoundError(`container "${idOrPrefix}" not found`);
    return rec;
  }

  list(): ContainerRecord[] {
    return this.store.all();
  }

  private persistStatus(rec: ContainerRecord): Promise<void> {
    return this.checkpoints.write(rec);
  }
}

function validateConfig(config: ContainerConfig): void {
  if (!config.metadata?.name) throw new InvalidArgumentError("CreateContainer: config.metadata.name is required");
  if (!config.image?.image) throw new InvalidArgumentError("CreateContainer: config.image.image is required");
}
