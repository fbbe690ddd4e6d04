// Processes exec'd into running containers: containerd task exec with FIFOs of their own, read
// through epoll like the container's own output. ExecSync collects the output; the streaming
// server (Exec) gets the live streams.
import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import type { Socket } from "node:net";
import { join } from "node:path";
import { jsonAny } from "../containerd/containers.js";
import type { TaskApi } from "../containerd/tasks.js";
import { DeadlineExceededError, InvalidArgumentError, messageOf } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import type { FifoPool } from "../container-logs/fifo-pool.js";
import { openFifoReader, openFifoWriter } from "../container-logs/fifo.js";
import type { Process } from "../oci/spec-types.js";
import type { ProcessExit, ProcessStreams, TerminalSize } from "../streaming/backend.js";
import { CleanupStack } from "../util/cleanup.js";
import { deferred } from "../util/deferred.js";
import { withTimeout } from "../util/timeout.js";
import { removeFile } from "../util/remove.js";

const PROCESS_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process";
const SIGKILL = 9;
/** An exec may run as long as its client wants; containerd's wait needs some deadline. */
const WAIT_FOREVER_MS = 7 * 24 * 3600 * 1000;
/** After the process exits, how long its last output may take to arrive. */
const OUTPUT_DRAIN_MS = 2_000;
/** ExecSync keeps at most this much output, both streams together: the kubelet (and podshim's
 * own server) refuse gRPC messages over 16 MiB, so a reply must leave room for its framing. */
export const EXEC_SYNC_OUTPUT_LIMIT = 16 * 1024 * 1024 - 64 * 1024;

export interface ExecRequest {
  containerId: string;
  /** The container's own process spec: user, groups, capabilities, env, cwd, AppArmor,
   * seccomp and no_new_privs carry over to the exec'd process. */
  template: Process;
  cmd: string[];
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  /** Where this container's exec FIFOs go. */
  dir: string;
}

export interface ExecDeps {
  tasks: TaskApi;
  fifos: FifoPool;
  logger: Logger;
}

/** Starts a process in a running container and hands back its live streams. */
export async function startExec(deps: ExecDeps, req: ExecRequest): Promise<ProcessStreams> {
  const { tasks } = deps;
  const execId = `exec-${randomBytes(8).toString("hex")}`;
  const log = deps.logger.child({ container: req.containerId, exec: execId });
  const cleanup = new CleanupStack(log);
  const path = (s: string) => join(req.dir, `${execId}-${s}`);
  // Output FIFOs are made whether or not the client wants the stream: the shim treats an empty
  // path as a file name and fails the start. What nobody asked for is read and dropped.
  const paths = {
    stdin: req.stdin ? path("stdin") : "",
    stdout: path("stdout"),
    // A terminal merges both streams into one.
    stderr: req.tty ? "" : path("stderr"),
  };
  try {
    await mkdir(req.dir, { recursive: true, mode: 0o700 });
    const fifos = [paths.stdin, paths.stdout, paths.stderr].filter((p) => p !== "");
    await deps.fifos.place(fifos);
    cleanup.push("remove FIFOs", () => Promise.all(fifos.map(removeFile)));
    // Readers before the exec: the shim opens the write ends when it starts the process.
    const stdout = paths.stdout ? await openFifoReader(paths.stdout) : undefined;
    const stderr = paths.stderr ? await openFifoReader(paths.stderr) : undefined;
    const stdin = paths.stdin ? await openFifoWriter(paths.stdin) : undefined;
    cleanup.push("close streams", async () => {
      for (const s of [stdout, stderr, stdin]) s?.destroy();
    });

    const process: Process = { ...structuredClone(req.template), args: req.cmd, terminal: req.tty };
    if (req.tty && !process.env.some((e) => e.startsWith("TERM="))) process.env = [...process.env, "TERM=xterm"];
    await tasks.exec(req.containerId, execId, jsonAny(PROCESS_TYPE_URL, process), { stdin: paths.stdin, stdout: paths.stdout, stderr: paths.stderr, terminal: req.tty });
    cleanup.push("delete process", () => tasks.deleteProcess(req.containerId, execId));
    await tasks.startProcess(req.containerId, execId).catch((err: unknown) => {
      throw commandNotStartable(err, req.cmd[0] ?? "");
    });
    cleanup.dismiss();
    const wanted = (s: Socket | undefined, want: boolean): Socket | undefined => {
      if (s && !want) s.resume();
      return want ? s : undefined;
    };
    return new ExecProcess(deps, log, req.containerId, execId, { stdout: wanted(stdout, req.stdout), stderr: wanted(stderr, req.stderr), stdin }, fifos, [stdout, stderr]);
  } catch (err) {
    await cleanup.unwind();
    throw err;
  }
}

/** runc's refusal to start the exec'd program (missing, not executable, bad format) reaches us
 * only as text under containerd's Unknown code; it is the caller's command that is wrong. */
function commandNotStartable(err: unknown, command: string): unknown {
  const text = err instanceof Error ? err.message : String(err);
  if (/unable to start container process: exec: /.test(text) && /no such file or directory|permission denied|exec format error|executable file not found|not a directory/.test(text)) {
    return new InvalidArgumentError(`command ${JSON.stringify(command)} cannot be started in the container: ${text.replace(/^.*unable to start container process: /, "")}`, { cause: err });
  }
  return err;
}

class ExecProcess implements ProcessStreams {
  readonly stdin?: Socket;
  readonly stdout?: Socket;
  readonly stderr?: Socket;
  readonly exited: Promise<ProcessExit>;
  private done = false;

  constructor(
    private readonly deps: ExecDeps,
    private readonly log: Logger,
    private readonly containerId: string,
    private readonly execId: string,
    streams: { stdout?: Socket | undefined; stderr?: Socket | undefined; stdin?: Socket | undefined },
    private readonly fifos: string[],
    /** Every output FIFO, wanted or drained: the exit waits for all of them. */
    private readonly outputs: Array<Socket | undefined>,
  ) {
    if (streams.stdout) this.stdout = streams.stdout;
    if (streams.stderr) this.stderr = streams.stderr;
    if (streams.stdin) {
      this.stdin = streams.stdin;
      // Our end of the FIFO closing is not EOF for the process: the shim holds the FIFO open
      // itself. CloseIO makes it close the process's stdin.
      streams.stdin.once("finish", () => {
        deps.tasks.closeStdin(containerId, execId).catch((err) => log.debug({ err: messageOf(err) }, "closing the exec's stdin failed"));
      });
      streams.stdin.on("error", () => undefined);
    }
    for (const s of outputs) s?.on("error", () => undefined);
    this.exited = this.wait();
  }

  private async wait(): Promise<ProcessExit> {
    try {
      const exit = await this.deps.tasks.wait(this.containerId, { timeoutMs: WAIT_FOREVER_MS }, this.execId);
      // The output the process wrote last is still on its way through the FIFOs.
      await withTimeout("the exec's output", OUTPUT_DRAIN_MS, Promise.all(this.outputs.map(ended))).catch(() => {
        for (const s of this.outputs) s?.destroy();
      });
      return { exitCode: exit.exitStatus };
    } finally {
      this.done = true;
      this.stdin?.destroy();
      // The caller has its answer once the exit and the output are in: an exec probe should
      // not also wait for the shim to forget the process. What is left of it (the shim's
      // entry, the FIFOs in the container's state dir) goes with the container if this fails.
      void this.forget();
    }
  }

  private async forget(): Promise<void> {
    await this.deps.tasks.deleteProcess(this.containerId, this.execId).catch((err) => this.log.debug({ err: messageOf(err) }, "deleting the exec'd process failed"));
    await Promise.all(this.fifos.map((p) => removeFile(p).catch(() => undefined)));
  }

  async resize(size: TerminalSize): Promise<void> {
    if (this.done) return;
    await this.deps.tasks.resizePty(this.containerId, this.execId, size.width, size.height);
  }

  detach(): void {
    if (this.done) return;
    this.deps.tasks.kill(this.containerId, SIGKILL, false, {}, this.execId).catch((err) => this.log.debug({ err: messageOf(err) }, "killing the exec'd process failed"));
  }
}

/** Resolves when a readable has delivered everything (or was never there). */
function ended(s: Socket | undefined): Promise<void> {
  if (!s || s.readableEnded || s.destroyed) return Promise.resolve();
  const d = deferred<void>();
  s.once("end", () => d.resolve());
  s.once("close", () => d.resolve());
  return d.promise;
}

export interface ExecSyncResult {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
}

/**
 * ExecSync: runs `cmd` to its end and returns what it printed. Output past EXEC_SYNC_OUTPUT_LIMIT
 * (both streams together, first come first kept) is read and dropped, so the process never
 * blocks on a full pipe. A timeout kills the process and fails with DEADLINE_EXCEEDED, which the
 * kubelet reports as a probe timeout.
 */
export async function execSync(deps: ExecDeps, req: Omit<ExecRequest, "tty" | "stdin" | "stdout" | "stderr">, timeoutSeconds: number): Promise<ExecSyncResult> {
  const proc = await startExec(deps, { ...req, tty: false, stdin: false, stdout: true, stderr: true });
  const budget = { left: EXEC_SYNC_OUTPUT_LIMIT };
  const out = collect(proc.stdout, budget);
  const err = collect(proc.stderr, budget);
  const what = `command ${JSON.stringify(req.cmd.join(" "))}`;
  if (timeoutSeconds > 0) {
    try {
      const exit = await withTimeout(what, timeoutSeconds * 1000, proc.exited);
      return { stdout: out(), stderr: err(), exitCode: exit.exitCode };
    } catch (e) {
      if (!(e instanceof DeadlineExceededError)) throw e;
      proc.detach();
      await proc.exited.catch(() => undefined);
      throw new DeadlineExceededError(`${what} timed out after ${timeoutSeconds} s and was killed`);
    }
  }
  const exit = await proc.exited;
  return { stdout: out(), stderr: err(), exitCode: exit.exitCode };
}

function collect(s: NodeJS.ReadableStream | undefined, budget: { left: number }): () => Buffer {
  const chunks: Buffer[] = [];
  s?.on("data", (c: Buffer) => {
    if (budget.left <= 0) return;
    const piece = c.length > budget.left ? c.subarray(0, budget.left) : c;
    chunks.push(piece);
    budget.left -= piece.length;
  });
  return () => Buffer.concat(chunks);
}
