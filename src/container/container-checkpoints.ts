import { messageOf } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import { readJsonIfExists, writeJsonAtomic } from "../util/atomic-file.js";
import { decodeContainerStatus, encodeContainerStatus } from "./container-record.js";
import type { ContainerPaths } from "./container-paths.js";
import type { ContainerRecord, ContainerStatusFields } from "./container-store.js";

/**
 * Each container's status checkpoint under --root, written durably (fsync, then rename) at
 * every transition. Writes for one container are chained: each serialises the status as it
 * is when it begins, so the newest state always lands last.
 */
export class StatusCheckpoints {
  private readonly writes = new Map<string, Promise<void>>();

  constructor(
    private readonly paths: ContainerPaths,
    private readonly logger: Logger,
  ) {}

  write(rec: ContainerRecord): Promise<void> {
    const prev = this.writes.get(rec.id) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => writeJsonAtomic(this.paths.statusFile(rec.id), encodeContainerStatus(rec.status)));
    this.writes.set(rec.id, next);
    const forget = (): void => {
      if (this.writes.get(rec.id) === next) this.writes.delete(rec.id);
    };
    next.then(forget, forget);
    return next;
  }

  /** Resolves when no write for the container is under way (one landing after its files are
   * removed would bring the directory back). */
  async settled(id: string): Promise<void> {
    await this.writes.get(id)?.catch(() => undefined);
  }

  /**
   * The saved status; undefined when there is none, or when the file is torn or unreadable
   * (containerd's task state then says what the status is). A schema this podshim does not
   * know is an error: it is never read as "no checkpoint".
   */
  async read(id: string): Promise<ContainerStatusFields | undefined> {
    const file = this.paths.statusFile(id);
    const saved = await readJsonIfExists<unknown>(file).catch((err) => {
      this.logger.warn({ container: id, err: messageOf(err) }, "unreadable status checkpoint; rebuilding the status from containerd");
      return undefined;
    });
    return saved === undefined ? undefined : decodeContainerStatus(file, saved);
  }
}
