import { randomBytes } from "node:crypto";
import { access, mkdir, readFile, rm } from "node:fs/promises";
import type { Socket } from "node:net";
import { join } from "node:path";
import type { Config } from "../config/options.js";
import type { ContainerdClient } from "../containerd/client.js";
import { ContainerRecords, fromJsonAny, jsonAny, type Container } from "../containerd/containers.js";
import type { TaskEvent } from "../containerd/events.js";
import { withLease } from "../containerd/leases.js";
import type { Snapshots } from "../containerd/snapshots.js";
import { Tasks, TaskStatusCode, exitedAtNs } from "../containerd/tasks.js";
import { FailedPreconditionError, InvalidArgumentError, isNotFound, messageOf, NotFoundError, UnavailableError } from "../errors/errors.js";
import { ContainerConfig, LinuxContainerResources } from "../gen/cri/runtime/v1/api.js";
import type { Any } from "../gen/google/protobuf/any.js";
import type { ImageService } from "../image/image-service.js";
import { repoTagsAndDigests, type ImageEntry } from "../image/image-store.js";
import type { Logger } from "../log/logger.js";
import { ContainerLog } from "../logs/container-log.js";
import { makeFifos, openFifoWriter } from "../logs/fifo.js";
import { FifoPool } from "../logs/fifo-pool.js";
import type { SandboxService } from "../sandbox/sandbox-service.js";
import { SandboxState, type SandboxRecord } from "../sandbox/sandbox-store.js";
import { readJsonIfExists, writeJsonAtomic } from "../util/atomic-file.js";
import { CleanupStack } from "../util/cleanup.js";
import { KeyedLock } from "../util/keyed-lock.js";
import { withTimeout } from "../util/timeout.js";
import { StepTimer } from "../util/step-timer.js";
import { LifecycleEvent, type ContainerEventHub } from "../events/container-events.js";
import { moveContainer } from "./container-state.js";
import { prepareContainerSpec, specWithResources, type PreparedSpec } from "./container-spec-inputs.js";
import type { Process, Spec } from "../oci/spec-types.js";
import { execSync, startExec, type ExecSyncResult } from "./exec.js";
import type { AttachParams, ExecParams, ProcessExit, ProcessStreams, StreamingBackend } from "../streaming/backend.js";
import { attachTo } from "./attach.js";
import { connectInNetns } from "../network/port-forward.js";
import type { Duplex } from "node:stream";
import { deferred, type Deferred } from "../util/deferred.js";
import { crashPoint, type CrashStep } from "../util/crash-point.js";
import { retryTransient } from "../util/retry.js";
import { nowUnixNanos } from "../logs/cri-log-format.js";
import { CONTAINER_RECORD_EXTENSION, decodeContainerMetadata, decodeContainerStatus, encodeContainerMetadata, encodeContainerStatus } from "./container-record.js";
import {
  containerNameKey,
  ContainerState,
  ContainerStore,
  ExitReason,
  type ContainerMetadata,
  type ContainerRecord,
  type ContainerStatusFields,
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
/** After an exit, how long the log may take to drain what the container wrote last. */
const LOG_DRAIN_MS = 2_000;
/** containerd's exit code for a container whose start failed. */
const START_ERROR_EXIT_CODE = 128;
/** containerd's exit code for a container whose fate was lost. */
const UNKNOWN_EXIT_CODE = 255;

/** What a running container holds in this process: its output pump and stdin. */
interface ContainerIo {
  log: ContainerLog;
  stdin?: Socket;
}

export interface ContainerServiceOptions {
  config: Config;
  client: ContainerdClient;
  snapshots: Snapshots;
  images: ImageService;
  sandboxes: SandboxService;
  logger: Logger;
  /** Where lifecycle transitions are announced (GetContainerEvents). */
  events?: ContainerEventHub;
  /** Aborted when podshim is shutting down and in-flight work must be cut off and undone. */
  shutdown?: AbortSignal;
}

/**
 * App containers inside pod sandboxes. The truth lives in containerd (the container record
 * with its metadata as an extension, the task) and in a status file per container under the
 * root dir, written atomically at every transition; the store is an index of both.
 */
export class ContainerService implements StreamingBackend {
  readonly store = new ContainerStore();
  private readonly lock = new KeyedLock();
  private readonly containers: ContainerRecords;
  private readonly tasks: Tasks;
  private readonly io = new Map<string, ContainerIo>();
  private readonly log: Logger;
  private readonly fifos: FifoPool;
  /** CreateContainer calls under way, by container identity: a retry waits for the first. */
  private readonly inflight = new Map<string, Promise<ContainerRecord>>();

  constructor(private readonly opts: ContainerServiceOptions) {
    this.containers = new ContainerRecords(opts.client);
    this.tasks = new Tasks(opts.client);
    this.log = opts.logger;
    this.fifos = new FifoPool(join(opts.config.state, "fifo-pool"), opts.logger);
  }

  private rootDir(id: string): string {
    return join(this.opts.config.root, "containers", id);
  }

  /** FIFOs live with runtime state: they are gone at reboot, like the tasks using them. */
  private ioDir(id: string): string {
    return join(this.opts.config.state, "containers", id, "io");
  }

  private statusFile(id: string): string {
    return join(this.rootDir(id), "status.json");
  }

  /** Where the per-container dirs live (the sweep looks for ones no record explains). */
  get containersDir(): string {
    return join(this.opts.config.root, "containers");
  }

  get stateContainersDir(): string {
    return join(this.opts.config.state, "containers");
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
    const recs = await Promise.all(found.map((c) => retryTransient(() => this.recover(c))));
    for (const rec of recs) this.store.add(rec);
    this.log.info({ containers: this.store.size }, "container index loaded");
  }

  private async recover(c: Container): Promise<ContainerRecord> {
    const meta = decodeContainerMetadata(c.id, c.extensions[CONTAINER_RECORD_EXTENSION]);
    const file = this.statusFile(c.id);
    const saved = await readJsonIfExists<unknown>(file).catch((err) => {
      // Torn or unreadable: containerd's task state below says what the status is.
      this.log.warn({ container: c.id, err: messageOf(err) }, "unreadable status checkpoint; rebuilding the status from containerd");
      return undefined;
    });
    const rec: ContainerRecord = {
      ...meta,
      status: saved !== undefined ? decodeContainerStatus(file, saved) : freshStatus(meta.config.linux?.resources),
      removing: false,
    };
    const spec = fromJsonAny<Spec>(c.spec);
    if (spec) this.specParts.set(c.id, { cgroupsPath: spec.linux.cgroupsPath, process: spec.process });
    const task = await this.tasks.get(c.id);
    if (rec.status.state === ContainerState.Created && task && task.status !== TaskStatusCode.CREATED) {
      // Started, but podshim went down before the start's checkpoint landed.
      moveContainer(rec, ContainerState.Running, { startedAt: nowUnixNanos() });
    }
    if (rec.status.state !== ContainerState.Running) {
      // A task that outlived its recorded exit (its deletion failed): RemoveContainer deletes it.
      if (task) this.tasksLeft.add(c.id);
      return rec;
    }

    if (task && (task.status === TaskStatusCode.RUNNING || task.status === TaskStatusCode.PAUSED)) {
      rec.status.pid = task.pid;
      try {
        await this.attachIo(rec, false);
      } catch (err) {
        this.log.warn({ container: rec.id, err: messageOf(err) }, "cannot reattach to a running container's output; its log stops here");
      }
      return rec;
    }
    if (task && task.status === TaskStatusCode.STOPPED) {
      // It exited while podshim was away: the task still holds the exit status. What it wrote
      // after podshim went down is gone: the shim closes both ends of a FIFO when the process
      // exits, which drops what the pipe held (containerd's own CRI loses it the same way).
      this.finish(rec, task.exitStatus, exitedAtNs(task));
      await this.deleteExitedTask(c.id);
    } else {
      // The task is gone and with it the exit status (containerd restarted, or a reboot).
      moveContainer(rec, ContainerState.Unknown, { pid: 0, finishedAt: nowUnixNanos(), exitCode: UNKNOWN_EXIT_CODE, reason: ExitReason.Unknown, message: "the container's task disappeared while podshim was not running" });
    }
    await this.persistStatus(rec);
    return rec;
  }

  /**
   * Closes every output pump once what it has read is written (podshim is stopping; the
   * shims keep the containers running, and what they write meanwhile waits in the FIFOs
   * for the next podshim).
   */
  async stop(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const [id, io] of this.io) {
      io.stdin?.destroy();
      closing.push(io.log.close({ flush: true }));
      this.io.delete(id);
    }
    await Promise.all(closing);
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
      await this.closeIo(id, true);
      if (exitStatus === 137 && !rec.status.oomKilled) rec.status.oomKilled = await this.oomKillRecorded(rec);
      this.finish(rec, exitStatus, exitedAt);
      await this.persistStatus(rec);
      this.opts.events?.publish(id, rec.sandboxId, LifecycleEvent.Stopped);
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

  private finish(rec: ContainerRecord, exitStatus: number, exitedAt: bigint): void {
    const reason = rec.status.oomKilled ? ExitReason.OOMKilled : exitStatus === 0 ? ExitReason.Completed : ExitReason.Error;
    // The shim's clock stamps the exit, podshim's the start: a process that exits at once can
    // look as if it ended before it began.
    let finishedAt = exitedAt > 0n ? exitedAt : nowUnixNanos();
    if (finishedAt < rec.status.startedAt) finishedAt = rec.status.startedAt;
    moveContainer(rec, ContainerState.Exited, { pid: 0, finishedAt, exitCode: exitStatus, reason });
  }

  /**
   * The OOM event can be lost or late; on cgroup v1 the memory cgroup also counts OOM kills
   * (memory.oom_control, "oom_kill N" since Linux 4.13). Read before the task is deleted,
   * while the cgroup still exists.
   */
  private async oomKillRecorded(rec: ContainerRecord): Promise<boolean> {
    const path = this.specParts.get(rec.id)?.cgroupsPath;
    if (!path) return false;
    for (const file of [`/sys/fs/cgroup/memory${path}/memory.oom_control`, `/sys/fs/cgroup${path}/memory.events`]) {
      const text = await readFile(file, "utf8").catch(() => "");
      const m = /^oom_kill (\d+)$/m.exec(text);
      if (m) return Number(m[1]) > 0;
    }
    return false;
  }

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
    const image = this.opts.images.status(config.image!.image);
    if (!image) throw new NotFoundError(`image "${config.image!.image}" not found: pull it before creating a container from it`);
    await this.checkHandlerFeatures(sandbox, config);
    const id = randomBytes(32).toString("hex");
    this.store.reserve(nameKey, id);
    const work = this.lock.run(id, async () => {
      const log = this.log.child({ container: id, sandbox: sandbox.id, name: config.metadata!.name });
      const cleanup = new CleanupStack(log);
      cleanup.push("release name", async () => this.store.release(nameKey, id));
      const steps = new StepTimer();
      try {
        this.step("container.reserved", "CreateContainer");
        const rec = await this.createRecord(id, nameKey, sandbox, image, config, cleanup, log, steps);
        this.step("container.created", "CreateContainer");
        this.store.add(rec);
        cleanup.dismiss();
        this.opts.events?.publish(id, sandbox.id, LifecycleEvent.Created);
        log.info({ ms: steps.ms }, "container created");
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
    const handler = (await this.opts.sandboxes.handlerFeatures()).find((h) => h.name === sandbox.runtimeHandler);
    if (!handler?.features.recursiveReadOnlyMounts) {
      throw new InvalidArgumentError(`mount ${rro.containerPath}: runtime handler "${sandbox.runtimeHandler}" does not support recursive read-only mounts (its runtime lacks the rro mount option or the kernel lacks mount_setattr)`);
    }
  }

  private readySandbox(idOrPrefix: string): SandboxRecord {
    const sandbox = this.opts.sandboxes.get(idOrPrefix);
    if (sandbox.state !== SandboxState.Ready || sandbox.pid === 0) {
      throw new FailedPreconditionError(`pod sandbox ${sandbox.id} is not ready: its containers cannot be created or started`);
    }
    return sandbox;
  }

  private async createRecord(id: string, nameKey: string, sandbox: SandboxRecord, image: ImageEntry, config: ContainerConfig, cleanup: CleanupStack, log: Logger, steps: StepTimer): Promise<ContainerRecord> {
    const { client, snapshots } = this.opts;
    const createdAt = nowUnixNanos();
    const dir = this.rootDir(id);
    cleanup.push("remove container dir", () => rm(dir, { recursive: true, force: true }));

    const { repoTags, repoDigests } = repoTagsAndDigests(image);
    const imageName = repoTags[0] ?? config.image!.image;
    const logPath = sandbox.config.logDirectory && config.logPath ? join(sandbox.config.logDirectory, config.logPath) : "";

    // The FIFOs are made now, beside the snapshot, so StartContainer only has to open them.
    const io = this.fifoPaths({ id, config });
    const fifos = (async () => {
      cleanup.push("remove FIFOs", () => rm(join(this.opts.config.state, "containers", id), { recursive: true, force: true }));
      await mkdir(this.ioDir(id), { recursive: true, mode: 0o700 });
      await this.fifos.place([io.stdin, io.stdout, io.stderr].filter((p) => p !== ""));
      this.step("container.fifos-made", "CreateContainer");
    })();

    let prepared!: PreparedSpec;
    const record = withLease(client, log, "container", 600_000, async (lease) => {
      cleanup.push("remove snapshot", () => snapshots.remove(id));
      const mounts = await snapshots.prepare(id, image.chainId, {}, { lease });
      steps.mark("snapshot");
      this.step("container.snapshot-prepared", "CreateContainer");
      prepared = await prepareContainerSpec({
        id, config, sandbox, image, imageName, rootfs: mounts,
        files: this.opts.sandboxes.files(sandbox),
        targetPid: (targetId) => this.targetPid(targetId, sandbox.id),
        podshim: this.opts.config,
      });
      steps.mark("spec");
      const meta: ContainerMetadata = {
        id, sandboxId: sandbox.id, nameKey, config, imageRef: config.image!.image, imageId: image.id, imageName,
        imageRepoDigest: repoDigests[0] ?? "", createdAt, logPath, user: prepared.user, stopSignal: prepared.stopSignal,
        runtimeHandler: sandbox.runtimeHandler,
      };
      await this.containers.create({
        id, image: imageName, spec: prepared.spec, snapshotter: snapshots.snapshotter, snapshotKey: id,
        labels: { [ContainerLabel.kind]: "container", [ContainerLabel.sandboxId]: sandbox.id, [ContainerLabel.containerName]: config.metadata!.name },
        runtime: this.opts.sandboxes.runtimeOf(sandbox),
        extensions: { [CONTAINER_RECORD_EXTENSION]: encodeContainerMetadata(meta) },
      }, { lease });
      cleanup.push("delete container", () => this.containers.delete(id));
      steps.mark("record");
      this.step("container.container-recorded", "CreateContainer");
    }, { syncGc: false, background: true });
    // Both must settle before a failure unwinds: each registers its own undos.
    const [made, recorded] = await Promise.allSettled([fifos, record]);
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
        cleanup.push("close output", () => this.closeIo(rec.id, false));
        await this.attachIo(rec, true);
        steps.mark("io");
        this.step("start.io-attached", "StartContainer");
        if (this.tasksLeft.has(rec.id)) {
          // A start cut short by a podshim crash left its task behind.
          await this.tasks.kill(rec.id, SIGKILL, true);
          await this.tasks.delete(rec.id);
          this.tasksLeft.delete(rec.id);
        }
        const rootfs = await this.opts.snapshots.mounts(rec.id);
        steps.mark("mounts");
        const io = this.fifoPaths(rec);
        cleanup.push("delete task", async () => {
          this.tasksLeft.add(rec.id);
          await this.tasks.kill(rec.id, SIGKILL, true);
          await this.tasks.wait(rec.id, { timeoutMs: KILL_WAIT_MS }).catch(() => undefined);
          await this.tasks.delete(rec.id).catch((err) => {
            if (!isNotFound(err)) throw err;
          });
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
        this.opts.events?.publish(rec.id, rec.sandboxId, LifecycleEvent.Started);
        log.info({ pid, ms: steps.ms }, "container started");
      } catch (err) {
        await cleanup.unwind();
        const now = nowUnixNanos();
        moveContainer(rec, ContainerState.Exited, { pid: 0, startedAt: now, finishedAt: now, exitCode: START_ERROR_EXIT_CODE, reason: ExitReason.StartError, message: messageOf(err) });
        await this.persistStatus(rec).catch(() => undefined);
        this.opts.events?.publish(rec.id, rec.sandboxId, LifecycleEvent.Stopped);
        throw err;
      }
    });
  }

  private fifoPaths(rec: Pick<ContainerRecord, "id" | "config">): { stdin: string; stdout: string; stderr: string } {
    const dir = this.ioDir(rec.id);
    return {
      stdin: rec.config.stdin ? join(dir, "stdin") : "",
      stdout: join(dir, "stdout"),
      // A terminal merges both streams into one.
      stderr: rec.config.tty ? "" : join(dir, "stderr"),
    };
  }

  /** Opens the FIFOs (making them first for a new task) and starts pumping output to the log. */
  private async attachIo(rec: ContainerRecord, fresh: boolean): Promise<void> {
    // A recovery tried again must not leave the first try's pump reading beside the new one.
    await this.closeIo(rec.id, false);
    const paths = this.fifoPaths(rec);
    // CreateContainer made them; a reboot (the state dir is a tmpfs) takes them away.
    if (fresh && !(await access(paths.stdout).then(() => true, () => false))) {
      await mkdir(this.ioDir(rec.id), { recursive: true, mode: 0o700 });
      await makeFifos([paths.stdin, paths.stdout, paths.stderr].filter((p) => p !== ""));
    }
    const log = await ContainerLog.open({
      stdoutFifo: paths.stdout,
      ...(paths.stderr ? { stderrFifo: paths.stderr } : {}),
      path: rec.logPath || undefined,
      tty: rec.config.tty,
      logger: this.log.child({ container: rec.id }),
    });
    const io: ContainerIo = { log };
    // Holding a write end keeps the container's stdin open (no EOF) until it is meant to close.
    if (paths.stdin) io.stdin = await openFifoWriter(paths.stdin);
    this.io.set(rec.id, io);
  }

  /** Stops the output pump: after an exit, first let it drain what the container wrote last. */
  private async closeIo(id: string, drain: boolean): Promise<void> {
    const io = this.io.get(id);
    if (!io) return;
    this.io.delete(id);
    io.stdin?.destroy();
    if (drain) await withTimeout("draining the container's output", LOG_DRAIN_MS, io.log.done).catch(() => undefined);
    await io.log.close();
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
        await this.closeIo(found.id, false);
        // A checkpoint landing after the files are gone would bring the directory back.
        await this.statusWrites.get(found.id)?.catch(() => undefined);
        // An exit already deleted the task, unless that failed; a created container has none.
        if (this.tasksLeft.has(found.id) || found.status.state === ContainerState.Running) {
          await this.tasks.delete(found.id);
          this.tasksLeft.delete(found.id);
          steps.mark("task");
        }
        // Nothing else refers to these: they go together.
        await Promise.all([
          this.containers.delete(found.id),
          this.opts.snapshots.remove(found.id),
          rm(this.rootDir(found.id), { recursive: true, force: true }),
          rm(join(this.opts.config.state, "containers", found.id), { recursive: true, force: true }),
        ]);
        steps.mark("delete");
        this.specParts.delete(found.id);
        this.store.delete(found.id);
        this.opts.events?.publish(found.id, found.sandboxId, LifecycleEvent.Deleted);
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

  /** A running container and its exec template, or the reason there is none. */
  private runningForExec(idOrPrefix: string): { rec: ContainerRecord; template: Process } {
    const rec = this.get(idOrPrefix);
    if (rec.status.state !== ContainerState.Running) throw new FailedPreconditionError(`container ${rec.id} is ${rec.status.state}, not running: nothing can be exec'd in it`);
    const template = this.specParts.get(rec.id)?.process;
    if (!template) throw new FailedPreconditionError(`container ${rec.id} has no process spec to exec with`);
    return { rec, template };
  }

  private execDir(id: string): string {
    return join(this.opts.config.state, "containers", id, "exec");
  }

  private get execDeps() {
    return { tasks: this.tasks, fifos: this.fifos, logger: this.log };
  }

  /** ExecSync: runs a command to its end; a non-zero exit is a result, not an error. */
  async execSync(idOrPrefix: string, cmd: string[], timeoutSeconds: number): Promise<ExecSyncResult> {
    const { rec, template } = this.runningForExec(idOrPrefix);
    return execSync(this.execDeps, { containerId: rec.id, template, cmd, dir: this.execDir(rec.id) }, timeoutSeconds);
  }

  /** A process for the streaming server's Exec. */
  async exec(params: ExecParams): Promise<ProcessStreams> {
    const { rec, template } = this.runningForExec(params.containerId);
    return startExec(this.execDeps, { ...params, containerId: rec.id, template, dir: this.execDir(rec.id) });
  }

  /** The streaming server's Attach: the container's own stdio. */
  async attach(params: AttachParams): Promise<ProcessStreams> {
    const rec = this.get(params.containerId);
    if (rec.status.state !== ContainerState.Running) throw new FailedPreconditionError(`container ${rec.id} is ${rec.status.state}, not running: there is nothing to attach to`);
    const io = this.io.get(rec.id);
    if (!io) throw new FailedPreconditionError(`container ${rec.id} has no attached output (podshim could not reattach after a restart)`);
    return attachTo({
      log: io.log,
      ...(io.stdin ? { stdin: io.stdin } : {}),
      tty: rec.config.tty,
      stdinOnce: rec.config.stdinOnce,
      closeStdin: async () => {
        io.stdin?.end();
        await this.tasks.closeStdin(rec.id, "");
      },
      resize: (size) => this.tasks.resizePty(rec.id, "", size.width, size.height),
      exited: this.exitOf(rec.id),
    }, params);
  }

  /** The streaming server's PortForward: a connection to a port inside a ready pod. */
  async portForward(podSandboxId: string, port: number): Promise<Duplex> {
    const sandbox = this.readySandbox(podSandboxId);
    return connectInNetns(sandbox.netnsPath, port);
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

  /** Status checkpoints in flight, one chain per container: writes never overtake each other. */
  private readonly statusWrites = new Map<string, Promise<void>>();

  /**
   * Checkpoints a container's status durably (fsync, then rename). Each write serialises the
   * status as it is when the write begins, so the newest state always lands last.
   */
  private persistStatus(rec: ContainerRecord): Promise<void> {
    const prev = this.statusWrites.get(rec.id) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => writeJsonAtomic(this.statusFile(rec.id), encodeContainerStatus(rec.status)));
    this.statusWrites.set(rec.id, next);
    const forget = (): void => {
      if (this.statusWrites.get(rec.id) === next) this.statusWrites.delete(rec.id);
    };
    next.then(forget, forget);
    return next;
  }
}

function freshStatus(resources: LinuxContainerResources | undefined): ContainerStatusFields {
  return { state: ContainerState.Created, pid: 0, startedAt: 0n, finishedAt: 0n, exitCode: 0, reason: "", message: "", oomKilled: false, resources };
}

function validateConfig(config: ContainerConfig): void {
  if (!config.metadata?.name) throw new InvalidArgumentError("CreateContainer: config.metadata.name is required");
  if (!config.image?.image) throw new InvalidArgumentError("CreateContainer: config.image.image is required");
}
