import { spawn, type ChildProcess } from "node:child_process";
import { CanceledError, DeadlineExceededError, InternalError } from "../errors/errors.js";

export interface ProgramResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ProgramOptions {
  /** Written to stdin, which is then closed. Without it stdin is /dev/null. */
  input?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Names the program in timeout and cancel errors ("CNI plugin bridge (ADD)"). */
  what: string;
}

// Plugins print a result of a few KiB; this only guards memory against a runaway program.
const MAX_OUTPUT = 4 * 1024 * 1024;

/**
 * Runs a program with an argument array (never a shell). It gets a process group of its
 * own, so a timeout or cancel kills what it spawned too (a CNI plugin runs its IPAM plugin
 * as a child), and a Ctrl-C aimed at podshim's group does not cut a plugin off half-way.
 * Resolves with the exit status whatever it is; rejects only when the program could not be
 * started, ran out of time, or was cancelled.
 *
 * The program is started by the spawner (below), a helper process, never by podshim itself.
 */
export function runProgram(cmd: string, args: readonly string[], opts: ProgramOptions): Promise<ProgramResult> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(new CanceledError(`${opts.what} was cancelled before it started`, { cause: opts.signal.reason }));
      return;
    }
    let ending: Error | undefined;
    const run = spawner().start({ cmd, args: [...args], input: opts.input, env: opts.env ?? defaultEnv(), maxOutput: MAX_OUTPUT });
    const timer = setTimeout(() => {
      ending = new DeadlineExceededError(`${opts.what} did not finish within ${opts.timeoutMs} ms and was killed`);
      run.kill();
    }, opts.timeoutMs);
    timer.unref();
    const onAbort = (): void => {
      ending = new CanceledError(`${opts.what} was cancelled and killed`, { cause: opts.signal?.reason });
      run.kill();
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    run.done.then(
      (res) => {
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        if ("error" in res) reject(new InternalError(`cannot run ${cmd}: ${res.error}`));
        else if (ending) reject(ending);
        else resolve(res);
      },
      (err: unknown) => {
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        reject(ending ?? new InternalError(`cannot run ${cmd}: ${(err as Error).message}`, { cause: err }));
      },
    );
  });
}

interface SpawnRequest {
  cmd: string;
  args: string[];
  input: string | undefined;
  env: NodeJS.ProcessEnv;
  maxOutput: number;
}
/** What the spawner answers for one program: how it ended, or why it could not start. */
type SpawnAnswer = ProgramResult | { error: string };

/*
 * The spawner: a small helper process that starts programs and collects their output.
 * Starting a process from podshim itself is expensive in two ways. libuv forks and blocks the
 * calling thread until the child has exec'd (it reads a close-on-exec pipe to learn whether
 * exec failed): 7-10 ms a program here. And the fork marks every page of podshim's heap
 * copy-on-write, so until the child execs every page podshim writes faults, whichever thread
 * forked (a worker thread measured half the main thread's throughput while it spawned). A pod
 * takes a dozen programs (ip netns, mount, CNI plugins and their IPAM, umount). The helper's
 * heap is a few MB, so its forks are cheap, and podshim's event loop never waits on one. It
 * leaves when podshim does (its IPC channel closes); programs it started run on in their own
 * process groups, as they did when podshim started them itself.
 */
const SPAWNER_SOURCE = String.raw`
const { spawn } = require("node:child_process");
const children = new Map();
process.on("disconnect", () => process.exit(0));
process.on("message", (m) => {
  if (m.op === "kill") {
    const child = children.get(m.id);
    if (!child) return;
    try {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    } catch {
      child.kill("SIGKILL");
    }
    return;
  }
  let child;
  try {
    child = spawn(m.cmd, m.args, { stdio: [m.input === undefined ? "ignore" : "pipe", "pipe", "pipe"], env: m.env, detached: true });
  } catch (err) {
    process.send({ id: m.id, answer: { error: err.message } });
    return;
  }
  children.set(m.id, child);
  let stdout = "";
  let stderr = "";
  let answered = false;
  const answer = (a) => {
    if (answered) return;
    answered = true;
    children.delete(m.id);
    process.send({ id: m.id, answer: a });
  };
  child.stdout.setEncoding("utf8").on("data", (d) => { if (stdout.length < m.maxOutput) stdout += d; });
  child.stderr.setEncoding("utf8").on("data", (d) => { if (stderr.length < m.maxOutput) stderr += d; });
  // Without a pid the program never started (ENOENT, EACCES); otherwise close says how it ended.
  child.on("error", (err) => { if (child.pid === undefined) answer({ error: err.message }); });
  child.on("close", (code, signal) => answer({ code, signal, stdout, stderr }));
  if (m.input !== undefined) {
    // A program that exits without reading its stdin makes the write fail with EPIPE;
    // its exit status says what happened, so the write error is not the story.
    child.stdin.on("error", () => undefined);
    child.stdin.end(m.input);
  }
});
`;

/** A small heap: the helper holds a few programs' output at a time. */
const SPAWNER_NODE_FLAGS = ["--max-old-space-size=32", "--max-semi-space-size=1"];

class Spawner {
  private readonly helper: ChildProcess;
  private readonly pending = new Map<number, { resolve(a: SpawnAnswer): void; reject(err: Error): void }>();
  private nextId = 0;
  dead = false;

  constructor() {
    // Its stderr is podshim's, so a crash of the helper is in podshim's log; env is empty (the
    // programs get theirs with each request), so no NODE_OPTIONS meant for podshim reach it.
    this.helper = spawn(process.execPath, [...SPAWNER_NODE_FLAGS, "-e", SPAWNER_SOURCE], { stdio: ["ignore", "ignore", "inherit", "ipc"], env: {} });
    this.idle();
    this.helper.on("message", (m: { id: number; answer: SpawnAnswer }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) this.idle();
      p.resolve(m.answer);
    });
    const fail = (err: Error): void => {
      this.dead = true;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    this.helper.on("error", fail);
    this.helper.on("exit", (code, signal) => fail(new Error(`the spawner process exited (${signal ?? code})`)));
  }

  /** Idle, the helper keeps nothing alive; while a program runs, it does. */
  private idle(): void {
    this.helper.unref();
    this.helper.channel?.unref();
  }

  start(req: SpawnRequest): { done: Promise<SpawnAnswer>; kill(): void } {
    const id = this.nextId++;
    const done = new Promise<SpawnAnswer>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    if (this.pending.size === 1) {
      this.helper.ref();
      this.helper.channel?.ref();
    }
    this.helper.send({ op: "run", id, ...req });
    return { done, kill: () => this.helper.connected && this.helper.send({ op: "kill", id }) };
  }
}

let current: Spawner | undefined;
/** The spawner process, started at first use (and again if it ever died). */
function spawner(): Spawner {
  if (current === undefined || current.dead) current = new Spawner();
  return current;
}

let cachedEnv: { path: string | undefined; env: NodeJS.ProcessEnv } | undefined;
/** podshim's environment with the sbin directories on PATH, computed once per PATH. */
export function defaultEnv(): NodeJS.ProcessEnv {
  if (cachedEnv === undefined || cachedEnv.path !== process.env.PATH) cachedEnv = { path: process.env.PATH, env: withSbinPath(process.env) };
  return cachedEnv.env;
}

/** The environment with the sbin directories on PATH: a daemon started by hand or from a
 * minimal init may lack them, and ip, iptables and tc live there on Debian. */
export function withSbinPath(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const have = (env.PATH ?? "").split(":").filter((d) => d !== "");
  const want = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
  return { ...env, PATH: [...have, ...want.filter((d) => !have.includes(d))].join(":") };
}
