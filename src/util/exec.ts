import { spawn } from "node:child_process";
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
 */
export function runProgram(cmd: string, args: readonly string[], opts: ProgramOptions): Promise<ProgramResult> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(new CanceledError(`${opts.what} was cancelled before it started`, { cause: opts.signal.reason }));
      return;
    }
    const child = spawn(cmd, args, {
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      env: opts.env ?? defaultEnv(),
      detached: true,
    });
    let stdout = "";
    let stderr = "";
    let ending: Error | undefined;
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      if (stdout.length < MAX_OUTPUT) stdout += d;
    });
    child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      if (stderr.length < MAX_OUTPUT) stderr += d;
    });
    const killGroup = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        child.kill("SIGKILL");
      }
    };
    const timer = setTimeout(() => {
      ending = new DeadlineExceededError(`${opts.what} did not finish within ${opts.timeoutMs} ms and was killed`);
      killGroup();
    }, opts.timeoutMs);
    timer.unref();
    const onAbort = (): void => {
      ending = new CanceledError(`${opts.what} was cancelled and killed`, { cause: opts.signal?.reason });
      killGroup();
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const finish = (): void => {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
    };
    child.on("error", (err) => {
      finish();
      reject(new InternalError(`cannot run ${cmd}: ${err.message}`, { cause: err }));
    });
    child.on("close", (code, signal) => {
      finish();
      if (ending) reject(ending);
      else resolve({ code, signal, stdout, stderr });
    });
    if (opts.input !== undefined) {
      // A program that exits without reading its stdin makes the write fail with EPIPE;
      // its exit status says what happened, so the write error is not the story.
      child.stdin!.on("error", () => undefined);
      child.stdin!.end(opts.input);
    }
  });
}

let cachedEnv: { path: string | undefined; env: NodeJS.ProcessEnv } | undefined;
/** podshim's environment with the sbin directories on PATH, computed once per PATH. */
function defaultEnv(): NodeJS.ProcessEnv {
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
