// Process, mount and command helpers shared by the bed modules and the tests that check the bed
// leaves nothing behind. Everything here reads /proc directly: the bed must work on a bare
// Debian machine without procps.
import { spawn } from "node:child_process";
import { constants as fsConstants } from "node:fs";
import { access, readdir, readFile, rmdir } from "node:fs/promises";
import { delimiter, join } from "node:path";

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  timeoutMs?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs a program with an argument array (never a shell) and collects its output. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      env: opts.env ?? process.env,
    });
    let stdout = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            stderr += `\n[killed after ${opts.timeoutMs} ms]`;
            child.kill("SIGKILL");
          }, opts.timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    if (opts.input !== undefined && child.stdin) child.stdin.end(opts.input);
  });
}

/** Like run, but rejects unless the program exits 0. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const res = await run(cmd, args, opts);
  if (res.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} exited ${res.code ?? res.signal}\n` +
        `stdout: ${res.stdout.trim()}\nstderr: ${res.stderr.trim()}`,
    );
  }
  return res;
}

/** Finds an executable on PATH, plus the sbin directories a non-login root shell may lack. */
export async function which(name: string): Promise<string | undefined> {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/local/sbin", "/usr/sbin", "/sbin"];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      await access(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface ProcInfo {
  pid: number;
  ppid: number;
  /** argv, split on NUL. Empty for kernel threads and processes that vanished mid-scan. */
  argv: string[];
}

/** Snapshot of all processes; ones that exit while being read are skipped. */
export async function listProcesses(): Promise<ProcInfo[]> {
  const out: ProcInfo[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const [stat, cmdline] = await Promise.all([
        readFile(`/proc/${name}/stat`, "utf8"),
        readFile(`/proc/${name}/cmdline`),
      ]);
      // The command name in parentheses may itself hold spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const argv = cmdline.toString("utf8").split("\0");
      if (argv.at(-1) === "") argv.pop();
      out.push({ pid: Number(name), ppid: Number(fields[1]), argv });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** The pids of roots and all their descendants (by parent pid), roots first. */
export function descendants(procs: readonly ProcInfo[], roots: readonly number[]): number[] {
  const children = new Map<number, number[]>();
  for (const p of procs) {
    const list = children.get(p.ppid) ?? [];
    list.push(p.pid);
    children.set(p.ppid, list);
  }
  const seen = new Set<number>();
  const queue = [...roots];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return [...seen];
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A process stays in /proc as a zombie until reaped; for our purposes a zombie is gone. */
export async function isRunning(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

export async function waitGone(pids: readonly number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let left = [...pids];
  while (left.length > 0 && Date.now() < deadline) {
    const alive = await Promise.all(left.map(isRunning));
    left = left.filter((_, i) => alive[i]);
    if (left.length > 0) await sleep(50);
  }
  return left;
}

/** Shim processes (containerd-shim-runc-v2 and friends) whose command line names needle. */
export async function shimsReferencing(needle: string): Promise<ProcInfo[]> {
  const procs = await listProcesses();
  return procs.filter(
    (p) => p.argv.length > 0 && p.argv[0]!.includes("containerd-shim") && p.argv.some((a) => a.includes(needle)),
  );
}

/** Undoes the octal escapes (\040 for space, ...) that mountinfo uses in paths. */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mount points at or below dir in our mount namespace, deepest first. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  const info = await readFile("/proc/self/mountinfo", "utf8");
  const points = new Set<string>();
  for (const line of info.split("\n")) {
    const mountPoint = line.split(" ")[4];
    if (mountPoint === undefined) continue;
    const path = unescapeMountPath(mountPoint);
    if (path === dir || path.startsWith(prefix)) points.add(path);
  }
  return [...points].sort((a, b) => b.split("/").length - a.split("/").length || b.length - a.length);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Mount points of all cgroup hierarchies (v1 controllers and any cgroup2 mount). */
async function cgroupRoots(): Promise<string[]> {
  const info = await readFile("/proc/self/mountinfo", "utf8");
  const roots: string[] = [];
  for (const line of info.split("\n")) {
    const [left, right] = line.split(" - ");
    const fstype = right?.split(" ")[0];
    const mountPoint = left?.split(" ")[4];
    if (mountPoint && (fstype === "cgroup" || fstype === "cgroup2")) roots.push(unescapeMountPath(mountPoint));
  }
  return roots;
}

/** The directories of cgroup path (e.g. "/podshim-bed-x") and below, in every hierarchy,
 * deepest first. */
export async function cgroupDirs(path: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    found.push(dir);
    for (const e of entries) if (e.isDirectory()) await walk(join(dir, e.name));
  };
  for (const root of await cgroupRoots()) await walk(join(root, path));
  return found.sort((a, b) => b.split("/").length - a.split("/").length);
}

/** Removes cgroup path and its children everywhere. rmdir is the only way to delete a cgroup;
 * it fails with EBUSY while a process is still inside, which exiting processes briefly are. */
export async function removeCgroups(path: string, timeoutMs = 5_000): Promise<void> {
  if (path.replace(/\/+/g, "/") === "/") throw new Error("refusing to remove the root cgroup");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const dirs = await cgroupDirs(path);
    if (dirs.length === 0) return;
    const failures: string[] = [];
    for (const dir of dirs) {
      try {
        await rmdir(dir);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== "ENOENT") failures.push(`${dir}: ${code}`);
      }
    }
    if (failures.length === 0) return;
    if (Date.now() > deadline) throw new Error(`cannot remove cgroups: ${failures.join(", ")}`);
    await sleep(100);
  }
}
