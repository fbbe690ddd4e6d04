// Runs Debian's docker-registry (distribution 2.8) on a free loopback port with its storage in
// a dir of our own, optionally behind htpasswd basic auth.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, readFile, realpath, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import bcrypt from "bcryptjs";
import { run, sleep, which } from "./proc.js";

export interface RegistryOptions {
  dir: string;
  /** When set, the registry demands these credentials (basic auth) on every request. */
  htpasswd?: { user: string; password: string };
  /** When set, the registry demands bearer tokens from this token server (distribution's
   * token auth: JWTs signed by a key whose certificate chains to rootCertBundle). */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  startTimeoutMs?: number;
}

export interface RegistryHandle {
  /** host:port, the form image references use. */
  readonly host: string;
  /** http://host:port */
  readonly url: string;
  readonly dir: string;
  readonly logPath: string;
  stop(): Promise<void>;
  /** stop() and remove dir. */
  cleanup(): Promise<void>;
}

const STOP_GRACE_MS = 10_000;
const PORT_ATTEMPTS = 5;

/** Asks the kernel for a free port. Another process may take it before the registry binds it,
 * which startRegistry handles by trying again. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => {
      const addr = server.address();
      server.close(() => {
        if (addr && typeof addr === "object") resolve(addr.port);
        else reject(new Error("no port from listen(0)"));
      });
    });
  });
}

/** An htpasswd line with a bcrypt hash, the only kind docker-registry accepts. */
async function htpasswdLine(user: string, password: string): Promise<string> {
  const tool = await which("htpasswd");
  if (tool) {
    const res = await run(tool, ["-nbB", user, password], { timeoutMs: 10_000 });
    if (res.code === 0) return res.stdout.trim();
  }
  // bcryptjs writes $2b$, which the registry's Go bcrypt reads like apache's $2y$.
  return `${user}:${await bcrypt.hash(password, 10)}`;
}

function configYaml(storage: string, port: number, htpasswdPath?: string, token?: RegistryOptions["token"]): string {
  const lines = [
    "version: 0.1",
    "log:",
    "  level: info",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${JSON.stringify(storage)}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: 127.0.0.1:${port}`,
  ];
  if (htpasswdPath) {
    lines.push("auth:", "  htpasswd:", "    realm: podshim-test", `    path: ${JSON.stringify(htpasswdPath)}`);
  } else if (token) {
    lines.push(
      "auth:",
      "  token:",
      `    realm: ${JSON.stringify(token.realm)}`,
      `    service: ${JSON.stringify(token.service)}`,
      `    issuer: ${JSON.stringify(token.issuer)}`,
      `    rootcertbundle: ${JSON.stringify(token.rootCertBundle)}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

async function waitReady(
  url: string,
  proc: ChildProcess,
  exited: () => boolean,
  timeoutMs: number,
): Promise<"ready" | "exited"> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited()) return "exited";
    try {
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      // 401 is an answer too: the auth-protected registry is up.
      if (res.status === 200 || res.status === 401) return "ready";
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  proc.kill("SIGKILL");
  throw new Error(`registry at ${url} did not answer within ${timeoutMs} ms`);
}

export async function startRegistry(opts: RegistryOptions): Promise<RegistryHandle> {
  await mkdir(opts.dir, { recursive: true });
  const dir = await realpath(opts.dir);
  const storage = join(dir, "storage");
  const configPath = join(dir, "config.yml");
  const logPath = join(dir, "registry.log");
  await mkdir(storage, { recursive: true });
  let htpasswdPath: string | undefined;
  if (opts.htpasswd) {
    htpasswdPath = join(dir, "htpasswd");
    await writeFile(htpasswdPath, `${await htpasswdLine(opts.htpasswd.user, opts.htpasswd.password)}\n`, {
      mode: 0o600,
    });
  }

  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    await writeFile(configPath, configYaml(storage, port, htpasswdPath, opts.token));
    // Truncated per attempt so an old "address already in use" is not mistaken for a new one.
    const logFd = openSync(logPath, "w");
    let proc: ChildProcess;
    try {
      proc = spawn("docker-registry", ["serve", configPath], { stdio: ["ignore", logFd, logFd], env: process.env });
    } finally {
      closeSync(logFd);
    }
    let hasExited = false;
    let spawnError: Error | undefined;
    // If the test runner dies without teardown, the registry must not outlive it.
    const killOnExit = (): void => {
      proc.kill("SIGKILL");
    };
    process.once("exit", killOnExit);
    const exited = new Promise<void>((resolve) =>
      proc.once("exit", () => {
        hasExited = true;
        process.off("exit", killOnExit);
        resolve();
      }),
    );
    proc.once("error", (err) => {
      spawnError = err;
      hasExited = true;
      process.off("exit", killOnExit);
    });
    const url = `http://127.0.0.1:${port}`;
    const state = await waitReady(url, proc, () => hasExited, opts.startTimeoutMs ?? 20_000);
    if (state === "exited") {
      if (spawnError) throw new Error(`cannot start docker-registry: ${spawnError.message}`);
      const log = await readFile(logPath, "utf8").catch(() => "");
      if (/address already in use/.test(log) && attempt < PORT_ATTEMPTS) continue;
      const lastLines = log.trimEnd().split("\n").slice(-20).join("\n");
      throw new Error(`docker-registry exited during startup; log:\n${lastLines}`);
    }

    const stop = async (): Promise<void> => {
      if (hasExited) return;
      proc.kill("SIGTERM");
      const killer = setTimeout(() => proc.kill("SIGKILL"), STOP_GRACE_MS);
      await exited;
      clearTimeout(killer);
    };
    return {
      host: `127.0.0.1:${port}`,
      url,
      dir,
      logPath,
      stop,
      async cleanup() {
        await stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
}
