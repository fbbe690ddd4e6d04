// Starts a private containerd for tests: its own root, state, sockets and plugin directories
// under one dir, so it can run beside a system containerd and be removed without a trace.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, openSync } from "node:fs";
import { mkdir, readFile, realpath, rm, unlink, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { descendants, listProcesses, mountsUnder, run, shimsReferencing, sleep, waitGone } from "./proc.js";

export interface ContainerdOptions {
  /** Everything of this containerd lives here; created if missing. */
  dir: string;
  /** containerd's log level; "info" unless given. */
  logLevel?: string;
  /** How long to wait for the socket to answer. */
  startTimeoutMs?: number;
  /**
   * Enables containerd's own CRI plugin with this TOML under [plugins] (benchmarks compare
   * podshim against it on the same daemon). Off unless given.
   */
  criPluginToml?: string;
}

export interface ContainerdHandle {
  readonly socket: string;
  readonly dir: string;
  /** Pid of the current containerd process; changes on restart, 0 while stopped. */
  readonly pid: number;
  readonly configPath: string;
  readonly logPath: string;
  stop(): Promise<void>;
  /** stop() then start again on the same root and state, as after a daemon upgrade. */
  restart(): Promise<void>;
  /** Kills our shims and their containers, stops containerd, unmounts and removes dir. */
  cleanup(): Promise<void>;
}

const STOP_GRACE_MS = 10_000;

// Plugins that need hardware or filesystems we never use only add noise and startup time.
const DISABLED_PLUGINS = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
];

function tomlString(s: string): string {
  return JSON.stringify(s);
}

export function configToml(dir: string, socket: string, logLevel: string, criPluginToml?: string): string {
  const disabled = criPluginToml === undefined ? DISABLED_PLUGINS : DISABLED_PLUGINS.filter((p) => p !== "io.containerd.grpc.v1.cri");
  // Written by hand rather than derived from `containerd config default`: the default config
  // carries the CRI plugin's large section, which we disable anyway.
  return [
    "version = 2",
    `root = ${tomlString(join(dir, "root"))}`,
    `state = ${tomlString(join(dir, "state"))}`,
    `temp = ${tomlString(join(dir, "tmp"))}`,
    `disabled_plugins = [${disabled.map(tomlString).join(", ")}]`,
    "oom_score = 0",
    "",
    "[grpc]",
    `  address = ${tomlString(socket)}`,
    "",
    "[ttrpc]",
    `  address = ${tomlString(`${socket}.ttrpc`)}`,
    "",
    // An empty address means no debug socket and no metrics listener at all.
    "[debug]",
    '  address = ""',
    `  level = ${tomlString(logLevel)}`,
    "",
    "[metrics]",
    '  address = ""',
    "",
    "[plugins]",
    // The opt plugin would otherwise share /opt/containerd with a system containerd.
    '  [plugins."io.containerd.internal.v1.opt"]',
    `    path = ${tomlString(join(dir, "opt"))}`,
    "",
    criPluginToml ?? "",
  ].join("\n");
}

/** Resolves once something accepts a connection on the unix socket. */
function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ path });
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}

async function tail(path: string, lines = 30): Promise<string> {
  try {
    return (await readFile(path, "utf8")).trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

// containerd 1.6 puts each shim's socket at /run/containerd/s/<sha256 of address/ns/id>, whatever
// its own state dir is; a SIGKILLed shim leaves that file behind.
export function shimSocketPath(address: string, namespace: string, id: string): string {
  const digest = createHash("sha256").update(join(address, namespace, id)).digest("hex");
  return `/run/containerd/s/${digest}`;
}

export function argAfter(argv: readonly string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
}

export async function startContainerd(opts: ContainerdOptions): Promise<ContainerdHandle> {
  await mkdir(opts.dir, { recursive: true, mode: 0o711 });
  // Mount points in mountinfo are real paths; a symlinked dir would hide our mounts from cleanup.
  const dir = await realpath(opts.dir);
  const socket = join(dir, "containerd.sock");
  const configPath = join(dir, "config.toml");
  const logPath = join(dir, "containerd.log");
  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;
  await mkdir(join(dir, "tmp"), { recursive: true });
  await writeFile(configPath, configToml(dir, socket, opts.logLevel ?? "info", opts.criPluginToml));

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  // If the test runner dies without teardown, at least the daemon must not outlive it.
  const killOnExit = (): void => {
    child?.kill("SIGKILL");
  };

  const start = async (): Promise<void> => {
    const logFd = openSync(logPath, "a");
    let proc: ChildProcess;
    try {
      proc = spawn("containerd", ["--config", configPath], {
        stdio: ["ignore", logFd, logFd],
        env: process.env,
      });
    } finally {
      closeSync(logFd);
    }
    child = proc;
    process.once("exit", killOnExit);
    let exitInfo: string | undefined;
    exited = new Promise((resolve) => {
      proc.once("exit", (code, signal) => {
        exitInfo = `code ${code ?? "-"} signal ${signal ?? "-"}`;
        process.off("exit", killOnExit);
        resolve();
      });
    });
    let spawnError: Error | undefined;
    proc.once("error", (err) => (spawnError = err));

    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      if (spawnError) throw new Error(`cannot start containerd: ${spawnError.message}`);
      if (exitInfo !== undefined) {
        throw new Error(`containerd exited during startup (${exitInfo}); log:\n${await tail(logPath)}`);
      }
      if (await canConnect(socket)) {
        const args = ["--address", socket, "--connect-timeout", "2s", "version"];
        const res = await run("ctr", args, { timeoutMs: 10_000 });
        if (res.code === 0) return;
      }
      if (Date.now() > deadline) {
        proc.kill("SIGKILL");
        await exited;
        throw new Error(
          `containerd did not answer on ${socket} within ${startTimeoutMs} ms; log:\n${await tail(logPath)}`,
        );
      }
      await sleep(50);
    }
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) {
      child = undefined;
      return;
    }
    proc.kill("SIGTERM");
    const killer = setTimeout(() => proc.kill("SIGKILL"), STOP_GRACE_MS);
    await exited;
    clearTimeout(killer);
    child = undefined;
  };

  // Kills shims started by this containerd and whatever runs under them. Container processes
  // are the shim's children (it is their subreaper), so the process tree finds them even in
  // their own PID namespaces.
  const killShims = async (): Promise<void> => {
    // The trailing slash keeps a sibling dir that merely shares our name as prefix out.
    const shims = await shimsReferencing(`${dir}/`);
    if (shims.length === 0) return;
    const procs = await listProcesses();
    const victims = descendants(
      procs,
      shims.map((s) => s.pid),
    );
    for (const pid of victims) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    const left = await waitGone(victims, 10_000);
    if (left.length > 0) throw new Error(`processes survived SIGKILL: ${left.join(", ")}`);
    for (const shim of shims) {
      const ns = argAfter(shim.argv, "-namespace");
      const id = argAfter(shim.argv, "-id");
      const address = argAfter(shim.argv, "-address");
      if (ns && id && address) await unlink(shimSocketPath(address, ns, id)).catch(() => undefined);
    }
  };

  const unmountAll = async (): Promise<void> => {
    // Lazy unmounts: a mount still busy (an exiting process holding its cwd there) must not
    // stop the cleanup. Deepest first so parents are not detached with children still on them.
    for (const point of await mountsUnder(dir)) {
      const res = await run("umount", ["-l", point], { timeoutMs: 10_000 });
      if (res.code !== 0 && (await mountsUnder(dir)).includes(point)) {
        throw new Error(`umount -l ${point}: ${res.stderr.trim()}`);
      }
    }
  };

  await start();

  const handle: ContainerdHandle = {
    socket,
    dir,
    get pid() {
      return child?.pid ?? 0;
    },
    configPath,
    logPath,
    stop,
    async restart() {
      await stop();
      await start();
    },
    async cleanup() {
      const errors: unknown[] = [];
      for (const step of [stop, killShims, unmountAll]) {
        try {
          await step();
        } catch (err) {
          errors.push(err);
        }
      }
      try {
        await rm(dir, { recursive: true, force: true, maxRetries: 3 });
      } catch (err) {
        errors.push(err);
      }
      if (errors.length > 0) throw new AggregateError(errors, `containerd cleanup of ${dir} failed`);
    },
  };
  return handle;
}
