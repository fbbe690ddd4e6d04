import type { Duplex } from "node:stream";
import type { TaskApi } from "../containerd/tasks.js";
import { FailedPreconditionError } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import type { FifoPool } from "../container-logs/fifo-pool.js";
import { connectInNetns } from "../network/port-forward.js";
import type { Process } from "../oci/spec-types.js";
import type { SandboxRecord } from "../sandbox/sandbox-store.js";
import type { AttachParams, ExecParams, ProcessExit, ProcessStreams, StreamingBackend } from "../streaming/backend.js";
import { attachTo } from "./attach.js";
import type { ContainerIoSet } from "./container-io.js";
import type { ContainerPaths } from "./container-paths.js";
import { ContainerState, type ContainerRecord } from "./container-store.js";
import { execSync, startExec, type ExecSyncResult } from "./exec.js";

/** What the streaming backend needs of the container service. */
export interface StreamingHost {
  get(idOrPrefix: string): ContainerRecord;
  /** The process of a container's OCI spec: the template of the processes exec'd in it. */
  processTemplate(id: string): Process | undefined;
  exitOf(id: string): Promise<ProcessExit>;
  readySandbox(idOrPrefix: string): SandboxRecord;
}

export interface ContainerStreamingDeps {
  host: StreamingHost;
  tasks: TaskApi;
  fifos: FifoPool;
  io: ContainerIoSet;
  paths: ContainerPaths;
  logger: Logger;
}

/** ExecSync, and the streaming server's Exec, Attach and PortForward, on podshim's containers. */
export class ContainerStreamingBackend implements StreamingBackend {
  constructor(private readonly d: ContainerStreamingDeps) {}

  /** A running container and its exec template, or the reason there is none. */
  private runningForExec(idOrPrefix: string): { rec: ContainerRecord; template: Process } {
    const rec = this.d.host.get(idOrPrefix);
    if (rec.status.state !== ContainerState.Running) throw new FailedPreconditionError(`container ${rec.id} is ${rec.status.state}, not running: nothing can be exec'd in it`);
    const template = this.d.host.processTemplate(rec.id);
    if (!template) throw new FailedPreconditionError(`container ${rec.id} has no process spec to exec with`);
    return { rec, template };
  }

  private get execDeps() {
    return { tasks: this.d.tasks, fifos: this.d.fifos, logger: this.d.logger };
  }

  /** ExecSync: runs a command to its end; a non-zero exit is a result, not an error. */
  async execSync(idOrPrefix: string, cmd: string[], timeoutSeconds: number): Promise<ExecSyncResult> {
    const { rec, template } = this.runningForExec(idOrPrefix);
    return execSync(this.execDeps, { containerId: rec.id, template, cmd, dir: this.d.paths.execDir(rec.id) }, timeoutSeconds);
  }

  /** A process for the streaming server's Exec. */
  async exec(params: ExecParams): Promise<ProcessStreams> {
    const { rec, template } = this.runningForExec(params.containerId);
    return startExec(this.execDeps, { ...params, containerId: rec.id, template, dir: this.d.paths.execDir(rec.id) });
  }

  /** The streaming server's Attach: the container's own stdio. */
  async attach(params: AttachParams): Promise<ProcessStreams> {
    const rec = this.d.host.get(params.containerId);
    if (rec.status.state !== ContainerState.Running) throw new FailedPreconditionError(`container ${rec.id} is ${rec.status.state}, not running: there is nothing to attach to`);
    const io = this.d.io.get(rec.id);
    if (!io) throw new FailedPreconditionError(`container ${rec.id} has no attached output (podshim could not reattach after a restart)`);
    const tasks = this.d.tasks;
    return attachTo({
      log: io.log,
      ...(io.stdin ? { stdin: io.stdin } : {}),
      tty: rec.config.tty,
      stdinOnce: rec.config.stdinOnce,
      closeStdin: async () => {
        io.stdin?.end();
        await tasks.closeStdin(rec.id, "");
      },
      resize: (size) => tasks.resizePty(rec.id, "", size.width, size.height),
      exited: this.d.host.exitOf(rec.id),
    }, params);
  }

  /** The streaming server's PortForward: a connection to a port inside a ready pod. */
  async portForward(podSandboxId: string, port: number): Promise<Duplex> {
    const sandbox = this.d.host.readySandbox(podSandboxId);
    return connectInNetns(sandbox.netnsPath, port, { ipv6: sandbox.ips.some((ip) => ip.includes(":")) });
  }
}
