import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename } from "node:fs/promises";
import { dirname } from "node:path";
import { removeFile } from "./remove.js";

export interface AtomicWriteOptions {
  /** fsync before the rename (default). Without it a crash of podshim still leaves the old or
   * the new content (the page cache survives a process), only a crash of the machine may not;
   * for state that a reboot makes moot anyway, that is the better trade. */
  durable?: boolean;
}

/**
 * Writes a file so that readers (and a podshim restarted after a crash) see either the
 * old content or the new one, never a torn write: temp file in the same directory,
 * fsync, rename over the target.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600, opts: AtomicWriteOptions = {}): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${randomBytes(4).toString("hex")}`;
  const fh = await open(tmp, "w", mode);
  try {
    await fh.writeFile(data);
    if (opts.durable !== false) await fh.sync();
  } catch (err) {
    await fh.close();
    await removeFile(tmp);
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await removeFile(tmp);
    throw err;
  }
}

export async function writeJsonAtomic(path: string, value: unknown, opts: AtomicWriteOptions = {}): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + "\n", 0o600, opts);
}

/** Reads a JSON file; undefined when it does not exist. */
export async function readJsonIfExists<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}
