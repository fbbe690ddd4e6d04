// Removing files and small directory trees on the call path. Node 20's fs.promises.rm runs
// its general rimraf for every call, a file too: an lstat to validate, another to decide, then
// the unlink, each a trip through libuv's four-thread pool that fsyncs and reads share. Under
// the lifecycle benchmark's load the two rm calls of RemoveContainer were the last of its
// steps to finish (up to 20 ms). What podshim removes here it made itself: a file, or a
// directory of a few files and directories; readdir's entry types say which is which without
// a stat.
import type { Dirent } from "node:fs";
import { readdir, rmdir, unlink } from "node:fs/promises";
import { join } from "node:path";

const codeOf = (err: unknown): string | undefined => (err as NodeJS.ErrnoException).code;

/** Removes a file (or a link, FIFO, socket); one that is not there is fine. */
export async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (codeOf(err) !== "ENOENT") throw err;
  }
}

/**
 * Removes a directory and all below it, or a file; a path that is not there is fine.
 * Symbolic links are removed, never followed. Like `rm -rf` it does not stop at mount points:
 * unmount first.
 */
export async function removeTree(path: string, passes = 3): Promise<void> {
  let entries: Dirent[];
  try {
    entries = await readdir(path, { withFileTypes: true });
  } catch (err) {
    const code = codeOf(err);
    if (code === "ENOENT") return;
    if (code === "ENOTDIR") return removeFile(path);
    throw err;
  }
  await Promise.all(entries.map((e) => (e.isDirectory() ? removeTree(join(path, e.name)) : removeFile(join(path, e.name)))));
  try {
    await rmdir(path);
  } catch (err) {
    const code = codeOf(err);
    if (code === "ENOENT") return;
    // Something was made in it meanwhile: another pass takes that too (a few at most).
    if ((code === "ENOTEMPTY" || code === "EEXIST") && passes > 1) return removeTree(path, passes - 1);
    throw err;
  }
}
