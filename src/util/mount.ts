import { mkdir, readFile } from "node:fs/promises";
import { InternalError } from "../errors/errors.js";
import { defaultEnv, runProgram } from "./exec.js";
import { removeTree } from "./remove.js";

/** Mounts a tmpfs at `path` (created if missing). */
export async function mountTmpfs(path: string, options: string[]): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o755 });
  const res = await runProgram("mount", ["-t", "tmpfs", "-o", options.join(","), "tmpfs", path], { timeoutMs: 10_000, what: `mount tmpfs on ${path}`, env: defaultEnv() });
  if (res.code !== 0) throw new InternalError(`mount tmpfs on ${path} failed: ${res.stderr.trim() || `exit ${res.code}`}`);
}

export async function isMountPoint(path: string): Promise<boolean> {
  const mounts = await readFile("/proc/self/mounts", "utf8");
  return mounts.split("\n").some((line) => line.split(" ")[1] === path);
}

/** Unmounts `path` if it is a mount point (lazily, so a busy one cannot block), then removes it. */
export async function unmountAndRemove(path: string): Promise<void> {
  if (await isMountPoint(path)) {
    const res = await runProgram("umount", ["-l", path], { timeoutMs: 10_000, what: `umount ${path}`, env: defaultEnv() });
    if (res.code !== 0 && (await isMountPoint(path))) throw new InternalError(`umount ${path} failed: ${res.stderr.trim()}`);
  }
  await removeTree(path);
}
