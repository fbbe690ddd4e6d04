import { mkdir, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { InternalError, InvalidArgumentError } from "../errors/errors.js";
import { writeJsonAtomic } from "../util/atomic-file.js";
import type { CniNetwork } from "./cni-config.js";
import type { CniResult, CniRuntimeArgs } from "./cni.js";
import { removeFile } from "../util/remove.js";

/**
 * What DEL needs to undo a pod's ADD exactly, whatever happened to the conf dir since: the
 * network config as it was used, the runtime args (portmap and bandwidth only find their
 * rules again from the same runtimeConfig) and the final result (prevResult for DEL).
 * `result` is absent while the ADD is still running: an entry written before the first
 * plugin runs lets a podshim that crashed mid-ADD still undo it.
 */
export interface CniCacheEntry {
  version: 1;
  podId: string;
  network: Pick<CniNetwork, "name" | "cniVersion" | "file" | "plugins" | "raw">;
  runtime: CniRuntimeArgs;
  result?: CniResult;
  savedAt: string;
}

const POD_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;

/** One JSON file per pod under <dir>/cni, written atomically; podshim keeps it under --root,
 * which outlives a reboot as host-local's leases do. */
export class CniResultCache {
  readonly dir: string;

  constructor(parentDir: string) {
    this.dir = join(parentDir, "cni");
  }

  path(podId: string): string {
    if (!POD_ID.test(podId)) throw new InvalidArgumentError(`pod id "${podId}" cannot name a CNI cache file`);
    return join(this.dir, `${podId}.json`);
  }

  /** Moves the entries of a cache dir used before into this one (an upgrade). */
  async adopt(oldDir: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(oldDir);
    } catch {
      return;
    }
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    for (const name of names.filter((n) => n.endsWith(".json"))) await rename(join(oldDir, name), join(this.dir, name));
    await rm(oldDir, { recursive: true, force: true });
  }

  async save(entry: Omit<CniCacheEntry, "version" | "savedAt">): Promise<void> {
    const full: CniCacheEntry = { version: 1, ...entry, savedAt: new Date().toISOString() };
    await writeJsonAtomic(this.path(entry.podId), full);
  }

  /** The pod's entry; undefined when there is none. A file that does not parse is an
   * InternalError: the caller decides whether to tear down without it. */
  async load(podId: string): Promise<CniCacheEntry | undefined> {
    const file = this.path(podId);
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new InternalError(`CNI cache file ${file} is not valid JSON`, { cause: err });
    }
    const e = doc as Partial<CniCacheEntry> | null;
    if (!e || e.version !== 1 || typeof e.network !== "object" || typeof e.runtime !== "object") {
      throw new InternalError(`CNI cache file ${file} is not a podshim CNI cache entry`);
    }
    return e as CniCacheEntry;
  }

  async remove(podId: string): Promise<void> {
    await removeFile(this.path(podId));
  }
}
