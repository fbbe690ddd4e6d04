import { fromJsonAny, type Container } from "../containerd/containers.js";
import { exitedAtNs, TaskStatusCode, type TaskApi } from "../containerd/tasks.js";
import { messageOf } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import { nowUnixNanos } from "../util/clock.js";
import type { Process, Spec } from "../oci/spec-types.js";
import type { StatusCheckpoints } from "./container-checkpoints.js";
import type { ContainerIoSet } from "./container-io.js";
import { CONTAINER_RECORD_EXTENSION, decodeContainerMetadata } from "./container-record.js";
import { finishContainer, freshStatus, moveContainer, UNKNOWN_EXIT_CODE } from "./container-state.js";
import { ContainerState, ExitReason, type ContainerRecord } from "./container-store.js";

/** What recovering one container touches in the container service. */
export interface RecoveryContext {
  tasks: TaskApi;
  io: ContainerIoSet;
  checkpoints: StatusCheckpoints;
  /** Filled with the spec parts podshim needs later (cgroup path, exec template). */
  specParts: Map<string, { cgroupsPath: string; process: Process }>;
  /** Filled with the ids whose task outlived their recorded exit. */
  tasksLeft: Set<string>;
  deleteExitedTask(id: string): Promise<void>;
  logger: Logger;
}

/**
 * One container's record rebuilt from its containerd record, its status checkpoint and its
 * task: a running one gets its log pump back, one that exited while podshim was down gets
 * its exit recorded, one whose task vanished is Unknown. Safe to call again after a failure.
 */
export async function recoverContainer(ctx: RecoveryContext, c: Container): Promise<ContainerRecord> {
  const meta = decodeContainerMetadata(c.id, c.extensions[CONTAINER_RECORD_EXTENSION]);
  const saved = await ctx.checkpoints.read(c.id);
  const rec: ContainerRecord = { ...meta, status: saved ?? freshStatus(meta.config.linux?.resources), removing: false };
  const spec = fromJsonAny<Spec>(c.spec);
  if (spec) ctx.specParts.set(c.id, { cgroupsPath: spec.linux.cgroupsPath, process: spec.process });
  const task = await ctx.tasks.get(c.id);
  if (rec.status.state === ContainerState.Created && task && task.status !== TaskStatusCode.CREATED) {
    // Started, but podshim went down before the start's checkpoint landed.
    moveContainer(rec, ContainerState.Running, { startedAt: nowUnixNanos() });
  }
  if (rec.status.state !== ContainerState.Running) {
    // A task that outlived its recorded exit (its deletion failed), or one a start cut short
    // by a crash created: RemoveContainer (or the next start) deletes it.
    if (task) ctx.tasksLeft.add(c.id);
    return rec;
  }

  if (task && (task.status === TaskStatusCode.RUNNING || task.status === TaskStatusCode.PAUSED)) {
    rec.status.pid = task.pid;
    try {
      await ctx.io.attach(rec, false);
    } catch (err) {
      ctx.logger.warn({ container: rec.id, err: messageOf(err) }, "cannot reattach to a running container's output; its log stops here");
    }
    return rec;
  }
  if (task && task.status === TaskStatusCode.STOPPED) {
    // It exited while podshim was away: the task still holds the exit status. What it wrote
    // after podshim went down is gone: the shim closes both ends of a FIFO when the process
    // exits, which drops what the pipe held (containerd's own CRI loses it the same way).
    finishContainer(rec, task.exitStatus, exitedAtNs(task), nowUnixNanos());
    await ctx.deleteExitedTask(c.id);
  } else {
    // The task is gone and with it the exit status (containerd restarted, or a reboot).
    moveContainer(rec, ContainerState.Unknown, { pid: 0, finishedAt: nowUnixNanos(), exitCode: UNKNOWN_EXIT_CODE, reason: ExitReason.Unknown, message: "the container's task disappeared while podshim was not running" });
  }
  await ctx.checkpoints.write(rec);
  return rec;
}
