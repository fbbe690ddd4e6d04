// Runs the real podshim binary (dist/main.js) as a child process with its own socket and
// dirs under a temp dir, the way a node runs it.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { criClient, type CriClient } from "./cri-client.js";
import { nodeFlagsOf } from "../bed/node-flags.js";

export const PODSHIM_MAIN = fileURLToPath(new URL("../../dist/main.js", import.meta.url));

export interface PodshimOptions {
  containerdSocket: string;
  /** Parent of the per-instance temp dir. */
  baseDir: string;
  cniConfDir?: string;
  extraArgs?: string[];
  /** Reuse this instance dir (a restart of the same node) instead of a new one. */
  dir?: string;
  /** A TOML config file; none by default (never the machine's /etc/podshim/config.toml). */
  configFile?: string;
  /** Extra environment for the podshim process (e.g. PODSHIM_CRASH_AT). */
  env?: Record<string, string>;
  /** What start-up waits for: "serving" (recovery done, the default) or "listening" (the
   * socket is up; only Version and Status answer until recovery is done). */
  waitFor?: "serving" | "listening";
  /** Another build's main.js (benchmarks compare a baseline build); dist/main.js by default. */
  main?: string;
}

/** How the podshim process ended. */
export interface PodshimExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface PodshimHandle {
  socket: string;
  dir: string;
  /** The containerd namespace this instance keeps its objects in. */
  namespace: string;
  process: ChildProcess;
  /** Settles when the process has ended, with its code or signal. */
  exit: Promise<PodshimExit>;
  /** Everything podshim printed (JSON log lines). */
  output(): string;
  cri: CriClient;
  /** SIGTERM and wait for exit; resolves to the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  cleanup(): Promise<void>;
}

export function podshimArgs(dir: string, opts: PodshimOptions): string[] {
  return [
    "--listen", join(dir, "podshim.sock"),
    "--containerd", opts.containerdSocket,
    "--namespace", namespaceFor(dir),
    "--root", join(dir, "root"),
    "--state", join(dir, "state"),
    "--cni-conf-dir", opts.cniConfDir ?? join(dir, "net.d"),
    "--registry-config-dir", join(dir, "certs.d"),
    "--restrict-oom-score-adj",
    "--log-level", "debug",
    "--config", opts.configFile ?? "/dev/null",
    ...(opts.extraArgs ?? []),
  ];
}

export function namespaceFor(dir: string): string {
  return `t-${dir.slice(-6).replace(/[^A-Za-z0-9]/g, "x")}`;
}

/** Runs `podshim args...` to completion (for flag and start-up failures). */
export function runPodshim(args: string[], timeoutMs = 15_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PODSHIM_MAIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`podshim ${args.join(" ")} did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export async function startPodshim(opts: PodshimOptions): Promise<PodshimHandle> {
  const dir = opts.dir ?? mkdtempSync(join(opts.baseDir, "podshim-"));
  const socket = join(dir, "podshim.sock");
  // PODSHIM_NODE_ARGS passes flags to node itself, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  // to profile podshim under a benchmark (node refuses those in NODE_OPTIONS).
  const nodeArgs = (process.env.PODSHIM_NODE_ARGS ?? "").split(" ").filter((a) => a !== "");
  const main = opts.main ?? PODSHIM_MAIN;
  const child = spawn(process.execPath, [...nodeFlagsOf(main), ...nodeArgs, main, ...podshimArgs(dir, opts)], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...opts.env } });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exit = new Promise<PodshimExit>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const exited = exit.then((e) => e.code);

  const deadline = Date.now() + 15_000;
  const startedLine = opts.waitFor === "listening" ? "podshim is listening" : "podshim is serving CRI";
  while (!out.includes(startedLine)) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`podshim exited with ${child.exitCode ?? child.signalCode} during start-up:\n${out}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`podshim did not start within 15 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const cri = criClient(socket);
  const handle: PodshimHandle = {
    socket,
    dir,
    namespace: namespaceFor(dir),
    process: child,
    exit,
    output: () => out,
    cri,
    async stop(signal = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
    async cleanup() {
      // PODSHIM_OUTPUT_DIR keeps what podshim printed (with PODSHIM_NODE_ARGS=--trace-gc: its
      // collections under a benchmark's load).
      if (process.env.PODSHIM_OUTPUT_DIR) writeFileSync(join(process.env.PODSHIM_OUTPUT_DIR, `podshim-${child.pid}.out`), out);
      cri.close();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
      // A podshim that died mid-test may leave a pod's shm mounted under its dir: unmount
      // whatever is below it first, or the removal fails with EBUSY and hides the real failure.
      const below = readFileSync("/proc/self/mounts", "utf8").split("\n").map((l) => l.split(" ")[1] ?? "").filter((m) => m.startsWith(`${dir}/`));
      for (const m of below.reverse()) spawnSync("umount", ["-l", m]);
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    },
  };
  return handle;
}

/** Where a podshim started with --metrics-address serves (from its "serving metrics" line). */
export function metricsUrl(podshim: PodshimHandle): string {
  const line = podshim.output().split("\n").find((l) => l.includes('"serving metrics"'));
  if (!line) throw new Error(`no "serving metrics" line in:\n${podshim.output()}`);
  return (JSON.parse(line) as { url: string }).url;
}
