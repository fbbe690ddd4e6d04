import { TasksService } from "../gen/containerd/services/tasks/v1/tasks.js";
import { Status as TaskStatusCode, type Process } from "../gen/containerd/types/task/task.js";
import type { Mount } from "../gen/containerd/types/mount.js";
import type { Any } from "../gen/google/protobuf/any.js";
import { isNotFound, messageOf } from "../errors/errors.js";
import { retry } from "../util/retry.js";
import type { CallOptions, ContainerdClient } from "./client.js";
import { killStrayShims } from "./shims.js";

export { TaskStatusCode };
export type { Process };

export interface TaskIo {
  stdin?: string;
  stdout?: string;
  stderr?: string;
  terminal?: boolean;
}

export interface TaskExitInfo {
  exitStatus: number;
  /** Nanoseconds since the epoch. */
  exitedAt: bigint;
}

function ns(ts: { seconds: bigint; nanos: number } | undefined): bigint {
  return ts ? ts.seconds * 1_000_000_000n + BigInt(ts.nanos) : 0n;
}

/** containerd tasks: the running processes of containers, managed by their shims. */
export class Tasks {
  constructor(private readonly client: ContainerdClient) {}

  async create(containerId: string, rootfs: Mount[], io: TaskIo = {}, options?: Any, opts: CallOptions = {}): Promise<number> {
    const res = await this.client.call(TasksService.create, {
      containerId, rootfs,
      stdin: io.stdin ?? "", stdout: io.stdout ?? "", stderr: io.stderr ?? "", terminal: io.terminal ?? false,
      checkpoint: undefined, options, runtimePath: "", taskApiAddress: "", taskApiVersion: 0,
    }, { timeoutMs: 60_000, ...opts });
    return res.pid;
  }

  async start(containerId: string, opts: CallOptions = {}): Promise<number> {
    return (await this.client.call(TasksService.start, { containerId, execId: "" }, { timeoutMs: 60_000, ...opts })).pid;
  }

  async get(containerId: string, opts: CallOptions = {}): Promise<Process | undefined> {
    try {
      return (await this.client.call(TasksService.get, { containerId, execId: "" }, opts)).process;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async list(opts: CallOptions = {}): Promise<Process[]> {
    return (await this.client.call(TasksService.list, { filter: "" }, opts)).tasks;
  }

  /** Signalling a task (or, with execId, one exec'd process) that is gone is not an error. */
  async kill(containerId: string, signal: number, all = false, opts: CallOptions = {}, execId = ""): Promise<void> {
    try {
      await this.client.call(TasksService.kill, { containerId, execId, signal, all }, opts);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** Applies new cgroup resources (an OCI LinuxResources in an Any) to a running task. */
  async update(containerId: string, resources: Any, opts: CallOptions = {}): Promise<void> {
    await this.client.call(TasksService.update, { containerId, resources, annotations: {} }, opts);
  }

  /** Resolves when the task (or an exec'd process) exits, or at once if it has. Pass a timeout or a signal. */
  async wait(containerId: string, opts: CallOptions = {}, execId = ""): Promise<TaskExitInfo> {
    const res = await this.client.call(TasksService.wait, { containerId, execId }, opts);
    return { exitStatus: res.exitStatus, exitedAt: ns(res.exitedAt) };
  }

  /** Adds a process to a running task; `process` is an OCI process spec. Start it with startProcess. */
  async exec(containerId: string, execId: string, process: Any, io: TaskIo, opts: CallOptions = {}): Promise<void> {
    await this.client.call(TasksService.exec, {
      containerId, execId, spec: process,
      stdin: io.stdin ?? "", stdout: io.stdout ?? "", stderr: io.stderr ?? "", terminal: io.terminal ?? false,
    }, { timeoutMs: 60_000, ...opts });
  }

  async startProcess(containerId: string, execId: string, opts: CallOptions = {}): Promise<number> {
    return (await this.client.call(TasksService.start, { containerId, execId }, { timeoutMs: 60_000, ...opts })).pid;
  }

  async resizePty(containerId: string, execId: string, width: number, height: number, opts: CallOptions = {}): Promise<void> {
    await this.client.call(TasksService.resizePty, { containerId, execId, width, height }, opts);
  }

  /** Closes a process's stdin (the shim keeps its FIFO open, so only this gives the process EOF). */
  async closeStdin(containerId: string, execId: string, opts: CallOptions = {}): Promise<void> {
    await this.client.call(TasksService.closeIo, { containerId, execId, stdin: true }, opts);
  }

  /** Forgets an exited exec'd process; a missing one is not an error. */
  async deleteProcess(containerId: string, execId: string, opts: CallOptions = {}): Promise<void> {
    try {
      await this.client.call(TasksService.deleteProcess, { containerId, execId }, opts);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** Deletes a stopped task; a missing one is not an error. */
  async delete(containerId: string, opts: CallOptions = {}): Promise<TaskExitInfo | undefined> {
    try {
      // The shim may go away while containerd asks it to delete (its ttrpc connection closes,
      // seen when a pod's last task goes): containerd cleans up after a dead shim itself, and
      // asking again finds the task deleted or gone.
      const res = await retry(() => this.client.call(TasksService.delete, { containerId }, { timeoutMs: 60_000, ...opts }), isShimConnectionLost, { attempts: SHIM_LOST_ATTEMPTS });
      return { exitStatus: res.exitStatus, exitedAt: ns(res.exitedAt) };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * SIGKILL to every process of a task that may still run, its exit waited for (up to
   * waitMs), then the task deleted. A task that is gone, or already stopped, is fine.
   */
  /**
   * The undo of a Tasks.Create that failed: killAndDelete, and when containerd does not know
   * the task, the shim a create cut off by a containerd restart can leave behind, which
   * nothing else would ever stop. Only for a task that was never started: its shim serves no
   * other task of the pod yet.
   */
  async undoCreate(containerId: string, waitMs: number): Promise<void> {
    if (await this.get(containerId)) await this.killAndDelete(containerId, waitMs);
    else await killStrayShims(this.client.namespace, this.client.socket, containerId);
  }

  async killAndDelete(containerId: string, waitMs: number): Promise<void> {
    const task = await this.get(containerId);
    if (!task) return;
    if (task.status !== TaskStatusCode.STOPPED) {
      await this.kill(containerId, SIGKILL, true).catch((err) => {
        if (!isNotFound(err)) throw err;
      });
      await this.wait(containerId, { timeoutMs: waitMs }).catch(() => undefined);
    }
    await this.delete(containerId);
  }
}

const SIGKILL = 9;
const SHIM_LOST_ATTEMPTS = 4;

/** containerd's answer when the shim's connection closed under a call it was making. */
function isShimConnectionLost(err: unknown): boolean {
  return messageOf(err).includes("ttrpc: closed");
}

/** What the services use of Tasks: an interface, so tests can hand in a fake. */
export type TaskApi = Pick<Tasks, "create" | "start" | "get" | "list" | "kill" | "update" | "wait" | "exec" | "startProcess" | "resizePty" | "closeStdin" | "deleteProcess" | "delete" | "killAndDelete" | "undoCreate">;

export function exitedAtNs(p: Process): bigint {
  return ns(p.exitedAt);
}
