// vitest globalSetup for the integration project: one containerd, one registry with the test
// images, and the compiled pause program, shared by all integration test files.
import { access, mkdir, mkdtemp, open, readdir, rm } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";
import { startContainerd } from "./containerd.js";
import type { ContainerdHandle } from "./containerd.js";
import { BUSYBOX_PATH, buildAndPushTestImages } from "./images.js";
import { removeCgroups, run, runOk, which } from "./proc.js";
import { startRegistry } from "./registry.js";
import { loadBed, multinodeDown } from "./multinode.js";
import type { RegistryHandle } from "./registry.js";
import type { BedInfo } from "./types.js";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const PAUSE_SOURCE = join(REPO_ROOT, "scripts/pause/pause.c");
const INSTALL_DEPS = join(REPO_ROOT, "scripts/install-deps.sh");

const REQUIRED_PROGRAMS = [
  "containerd",
  "ctr",
  "containerd-shim-runc-v2",
  "runc",
  "crun",
  "docker-registry",
  "gcc",
  "ip",
  "iptables",
  "socat",
  "umount",
  "nsenter",
  "sysctl",
  "pgrep",
];
const REQUIRED_FILES = ["/usr/lib/cni/bridge", "/usr/lib/cni/loopback", "/usr/lib/cni/host-local"];

/** True for an ELF executable without an interpreter. The test images get no libc, so a
 * dynamically linked busybox (Debian's `busybox` rather than `busybox-static`) cannot run there. */
async function isStaticElf(path: string): Promise<boolean> {
  const fh = await open(path, "r");
  try {
    const header = Buffer.alloc(64);
    await fh.read(header, 0, 64, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46) return false;
    const is64 = header[4] === 2;
    const le = header[5] === 1;
    const u16 = (b: Buffer, o: number): number => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (b: Buffer, o: number): number => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const phoff = is64 ? Number(le ? header.readBigUInt64LE(0x20) : header.readBigUInt64BE(0x20)) : u32(header, 0x1c);
    const phentsize = u16(header, is64 ? 0x36 : 0x2a);
    const phnum = u16(header, is64 ? 0x38 : 0x2c);
    const table = Buffer.alloc(phentsize * phnum);
    await fh.read(table, 0, table.length, phoff);
    const PT_INTERP = 3;
    for (let i = 0; i < phnum; i++) if (u32(table, i * phentsize) === PT_INTERP) return false;
    return true;
  } finally {
    await fh.close();
  }
}

async function missingDependencies(): Promise<string[]> {
  const missing: string[] = [];
  for (const prog of REQUIRED_PROGRAMS) if (!(await which(prog))) missing.push(prog);
  for (const file of REQUIRED_FILES) {
    try {
      await access(file);
    } catch {
      missing.push(file);
    }
  }
  try {
    if (!(await isStaticElf(BUSYBOX_PATH))) missing.push(`${BUSYBOX_PATH} (static)`);
  } catch {
    missing.push(BUSYBOX_PATH);
  }
  return missing;
}

async function ensureDependencies(): Promise<void> {
  const missing = await missingDependencies();
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(
      `integration bed: missing ${missing.join(", ")}; run scripts/install-deps.sh as root (the bed needs root anyway)`,
    );
  }
  const res = await run("bash", [INSTALL_DEPS], { timeoutMs: 15 * 60_000 });
  if (res.code !== 0) throw new Error(`scripts/install-deps.sh failed:\n${res.stdout}\n${res.stderr}`);
  const still = await missingDependencies();
  if (still.length > 0) throw new Error(`integration bed: still missing after install-deps.sh: ${still.join(", ")}`);
}

/** Compiles scripts/pause/pause.c into dir and returns the binary's path. */
export async function buildPause(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const out = join(dir, "pause");
  await runOk("gcc", ["-static", "-Os", "-s", "-Wall", "-o", out, PAUSE_SOURCE], { timeoutMs: 120_000 });
  return out;
}

async function downMultinodeBeds(tmpDir: string): Promise<void> {
  const entries = await readdir(tmpDir).catch(() => [] as string[]);
  for (const name of entries) {
    if (name.startsWith("mn-") && (await loadBed(join(tmpDir, name)))) await multinodeDown(join(tmpDir, name));
  }
}

/** Runs every cleanup even when earlier ones fail, then reports all failures together. */
async function runAll(steps: ReadonlyArray<() => Promise<void>>): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, "integration bed teardown failed");
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  if (process.getuid?.() !== 0) {
    throw new Error("integration bed: must run as root (containerd, mounts, namespaces)");
  }
  await ensureDependencies();

  // /tmp explicitly: containerd's socket paths must stay under the 108-byte sun_path limit.
  const tmpDir = await mkdtemp("/tmp/podshim-bed-");
  const cgroupParent = `/${basename(tmpDir)}`;
  let containerd: ContainerdHandle | undefined;
  let registry: RegistryHandle | undefined;
  const teardown = (): Promise<void> =>
    runAll([
      // Multi-node beds a test file could not take down itself (its processes are detached).
      () => downMultinodeBeds(tmpDir),
      async () => containerd?.cleanup(),
      // After containerd's cleanup: only once their processes are dead can cgroups go.
      () => removeCgroups(cgroupParent),
      async () => registry?.cleanup(),
      () => rm(tmpDir, { recursive: true, force: true, maxRetries: 3 }),
    ]);

  try {
    // allSettled, not all: whatever did start must be known to teardown when another part fails.
    const [pauseResult, cdResult, regResult] = await Promise.allSettled([
      buildPause(join(tmpDir, "pause")),
      startContainerd({ dir: join(tmpDir, "containerd") }),
      startRegistry({ dir: join(tmpDir, "registry") }),
    ]);
    if (cdResult.status === "fulfilled") containerd = cdResult.value;
    if (regResult.status === "fulfilled") registry = regResult.value;
    for (const r of [pauseResult, cdResult, regResult]) if (r.status === "rejected") throw r.reason;
    const pauseBinary = (pauseResult as PromiseFulfilledResult<string>).value;
    const cd = containerd!;
    const reg = registry!;
    const images = await buildAndPushTestImages({ registryHost: reg.host, pauseBinary });
    const bed: BedInfo = {
      containerdSocket: cd.socket,
      containerdDir: cd.dir,
      registryHost: reg.host,
      registryStorage: join(reg.dir, "storage"),
      images,
      pauseBinary,
      tmpDir,
      cgroupParent,
    };
    project.provide("bed", bed);
    process.stderr.write(`[bed] ready in ${Date.now() - started} ms: containerd ${cd.socket}, registry ${reg.host}\n`);
  } catch (err) {
    // A partly started bed must not outlive a failed setup.
    await teardown().catch((cleanupErr: unknown) => {
      process.stderr.write(`[bed] cleanup after failed setup also failed: ${String(cleanupErr)}\n`);
    });
    throw err;
  }
  return teardown;
}
