import { randomBytes } from "node:crypto";
import { lstat, statfs, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { AlreadyExistsError, InternalError, InvalidArgumentError } from "../errors/errors.js";
import { haveBuiltins, runProgram, type ProgramOptions, type ProgramResult } from "../util/exec.js";
import { unmountLazily } from "../util/mount.js";

/** Where `ip netns` pins namespaces: a bind mount of the namespace file per name. */
export const NETNS_RUN_DIR = "/run/netns";

// The magic number statfs reports for namespace files (linux/magic.h NSFS_MAGIC).
const NSFS_MAGIC = 0x6e736673;
const IP_TIMEOUT_MS = 10_000;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;

/**
 * A fresh name for a pod's namespace: recognisable in `ip netns list` as podshim's and as
 * the pod's, with a random tail so a pod re-created with the same id while its old
 * namespace is still being torn down never collides with it.
 */
export function netnsNameFor(podId: string): string {
  return `podshim-${podId.slice(0, 12)}-${randomBytes(2).toString("hex")}`;
}

/** Where the namespace pinned under a name lives (createNetns makes it there). */
export function netnsPathOf(name: string): string {
  return join(NETNS_RUN_DIR, name);
}

/**
 * Creates and pins a network namespace with `ip netns add`: it lives as a bind mount under
 * /run/netns, with no process holding it, until deleteNetns. Returns its path.
 */
export async function createNetns(name: string): Promise<string> {
  if (!NAME.test(name)) throw new InvalidArgumentError(`network namespace name "${name}" must be letters, digits, "_", "." or "-"`);
  const path = netnsPathOf(name);
  const res = await ip(["netns", "add", name], { cmd: "@netns-add", args: [path] });
  if (res.code !== 0) {
    const why = res.stderr.trim() || `exit status ${res.code ?? res.signal}`;
    if (/exists/i.test(why)) throw new AlreadyExistsError(`network namespace ${path} already exists`);
    throw new InternalError(`cannot create network namespace ${name}: ${why}`);
  }
  return path;
}

/**
 * Removes a pinned namespace, given its path or its name under /run/netns. Idempotent: a
 * namespace that is already gone is not an error. `ip netns delete` unmounts and unlinks;
 * when a stale file is still there afterwards (a path outside /run/netns, a half-deleted
 * one, a mount held busy) a lazy unmount detaches it so unlink can succeed. Processes
 * still inside keep the namespace itself alive; only the pin goes.
 */
export async function deleteNetns(pathOrName: string): Promise<void> {
  const path = pathOrName.includes("/") ? pathOrName : join(NETNS_RUN_DIR, pathOrName);
  if (!pathOrName.includes("/") && !NAME.test(pathOrName)) {
    throw new InvalidArgumentError(`network namespace name "${pathOrName}" must be letters, digits, "_", "." or "-"`);
  }
  if (!(await exists(path))) return;
  let ipError = "";
  if (dirname(path) === NETNS_RUN_DIR) {
    const res = await ip(["netns", "delete", basename(path)], { cmd: "@netns-delete", args: [path] });
    if (res.code !== 0) ipError = res.stderr.trim();
  }
  if (!(await exists(path))) return;
  // Not mounted (any more) is fine: umount's failure only matters if unlink fails too.
  const umount = await unmountLazily(path);
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    const details = [ipError && `ip netns delete: ${ipError}`, umount.code !== 0 && `umount: ${umount.stderr.trim()}`]
      .filter(Boolean)
      .join("; ");
    throw new InternalError(`cannot remove network namespace ${path}: ${(err as Error).message}${details ? ` (${details})` : ""}`, { cause: err });
  }
}

/**
 * Sets the loopback device of the namespace at `path` up with the native spawner's built-in
 * program. Resolves to false, having done nothing, where there is no native spawner: the caller
 * then runs the CNI loopback plugin, which does the same with an exec of a Go binary.
 */
export async function bringUpLoopback(path: string): Promise<boolean> {
  if (!haveBuiltins()) return false;
  const res = await runProgram("@netns-lo-up", [path], { timeoutMs: IP_TIMEOUT_MS, what: `loopback up in ${path}` });
  if (res.code !== 0) throw new InternalError(`cannot set the loopback device of ${path} up: ${res.stderr.trim() || `exit status ${res.code ?? res.signal}`}`);
  return true;
}

/** True when path is a live namespace file (a pin or /proc/<pid>/ns/net), not merely a
 * file left behind by an interrupted delete. */
export async function netnsExists(path: string): Promise<boolean> {
  if (path === "") return false;
  try {
    return (await statfs(path)).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Runs a program inside a namespace with `nsenter --net=<path>`: only the network
 * namespace changes, the mount namespace (and so the programs and files seen) stays the
 * host's. Resolves with the exit status whatever it is.
 */
export async function runInNetns(
  path: string,
  cmd: string,
  args: readonly string[],
  opts: { timeoutMs?: number; input?: string; signal?: AbortSignal } = {},
): Promise<ProgramResult> {
  return runProgram("nsenter", [`--net=${path}`, "--", cmd, ...args], {
    timeoutMs: opts.timeoutMs ?? 30_000,
    what: `${cmd} in network namespace ${path}`,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
}

/** `ip` with these arguments, or the native spawner's built-in program that does the same. */
function ip(args: string[], builtin: NonNullable<ProgramOptions["builtin"]>): Promise<ProgramResult> {
  return runProgram("ip", args, { timeoutMs: IP_TIMEOUT_MS, what: `ip ${args.join(" ")}`, builtin });
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}
