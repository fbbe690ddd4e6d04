import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { messageOf } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import { makeFifos } from "./fifo.js";

/** How many FIFOs one mkfifo run makes. */
const BATCH = 64;
/** Below this many spare FIFOs, another batch is made in the background. */
const LOW_WATER = 16;

/**
 * Spare FIFOs, made in batches ahead of need. Node cannot make a FIFO itself; spawning mkfifo
 * per container costs several milliseconds of the event loop (fork of a large process), while
 * renaming a spare into place costs a fraction of one. The spares live in one directory on the
 * same filesystem as the containers' FIFOs, so a rename is all a take needs.
 */
export class FifoPool {
  private spare: string[] = [];
  private refilling: Promise<void> | undefined;
  private seq = 0;
  private closed = false;

  constructor(
    private readonly dir: string,
    private readonly logger: Logger,
  ) {}

  /** Starts afresh: spares of an earlier run are of unknown state and go. */
  async start(): Promise<void> {
    this.closed = false;
    await rm(this.dir, { recursive: true, force: true });
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    this.refill();
  }

  /** Puts a FIFO at each path (mode 0600), from the spares when there are enough. */
  async place(paths: readonly string[]): Promise<void> {
    if (this.spare.length < paths.length) {
      this.refill();
      await makeFifos(paths);
      return;
    }
    const taken = this.spare.splice(0, paths.length);
    if (this.spare.length < LOW_WATER) this.refill();
    try {
      await Promise.all(paths.map((p, i) => rename(taken[i]!, p)));
    } catch (err) {
      // A spare gone missing (someone cleaned the dir): make these the slow way.
      this.logger.debug({ err: messageOf(err) }, "spare FIFOs unusable; making them directly");
      await makeFifos(paths);
    }
  }

  private refill(): void {
    if (this.closed) return;
    this.refilling ??= (async () => {
      const batch = Array.from({ length: BATCH }, () => join(this.dir, `f${this.seq++}`));
      try {
        await makeFifos(batch);
        this.spare.push(...batch);
      } catch (err) {
        this.logger.warn({ err: messageOf(err) }, "cannot make spare FIFOs; containers get theirs one by one");
      } finally {
        this.refilling = undefined;
      }
    })();
  }

  /** Stops refilling and waits for a batch under way, so nothing writes into the dir after. */
  async close(): Promise<void> {
    this.closed = true;
    await this.refilling;
  }

  /** How many spares there are (tests, metrics). */
  get size(): number {
    return this.spare.length;
  }
}
