import { lstat, mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { InternalError } from "../errors/errors.js";
import { defaultEnv, runProgram, type ProgramResult } from "./exec.js";
import { removeTree } from "./remove.js";

/** Mounts a tmpfs at `path` (created if missing). */
export async function mountTmpfs(path: string, options: string[]): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o755 });
  const res = await runProgram("mount", ["-t", "tmpfs", "-o", options.join(","), "tmpfs", path], {
    timeoutMs: 10_000, what: `mount tmpfs on ${path}`, env: defaultEnv(), builtin: { cmd: "@mount-tmpfs", args: [path, options.join(",")] },
  });
  if (res.code !== 0) throw new InternalError(`mount tmpfs on ${path} failed: ${res.stderr.trim() || `exit ${res.code}`}`);
}

/**
 * Whether something is mounted at `path`. A filesystem other than its parent's (the pod's shm
 * tmpfs, a pinned namespace) shows in the device numbers; only a path on its parent's
 * filesystem needs the mount table, which the kernel writes out afresh for every read and which
 * grows by several lines a pod (its shm, its netns pin, each container's rootfs): at 44 pods it
 * was the largest file podshim read while removing them.
 */
export async function isMountPoint(path: string): Promise<boolean> {
  let dev: number;
  try {
    dev = (await lstat(path)).dev;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
  if (dev !== (await lstat(dirname(path))).dev) return true;
  // The same device: a bind mount from that filesystem, or no mount at all.
  const mounts = await readFile("/proc/self/mounts", "utf8");
  return mounts.split("\n").some((line) => line.split(" ")[1] === path);
}

/** `umount -l path` (the spawner's built-in where it can): a busy mount cannot block it.
 * Resolves with how it ended; a path that is not mounted is a non-zero exit. */
export function unmountLazily(path: string): Promise<ProgramResult> {
  return runProgram("umount", ["-l", path], { timeoutMs: 10_000, what: `umount -l ${path}`, env: defaultEnv(), builtin: { cmd: "@umount-lazy", args: [path] } });
}

/** Unmounts `path` if it is a mount point (lazily, so a busy one cannot block), then removes it. */
export async function unmountAndRemove(path: string): Promise<void> {
  if (await isMountPoint(path)) {
    const res = await unmountLazily(path);
    if (res.code !== 0 && (await isMountPoint(path))) throw new InternalError(`umount ${path} failed: ${res.stderr.trim()}`);
  }
  await removeTree(path);
}
