import { access, mkdir } from "node:fs/promises";
import type { Socket } from "node:net";
import type { Logger } from "../logger/logger.js";
import { ContainerLog } from "../container-logs/container-log.js";
import { makeFifos, openFifoWriter } from "../container-logs/fifo.js";
import { withTimeout } from "../util/timeout.js";
import type { ContainerPaths } from "./container-paths.js";
import type { ContainerRecord } from "./container-store.js";

/** What a running container holds in this process: its output pump and stdin. */
export interface ContainerIo {
  log: ContainerLog;
  stdin?: Socket;
}

/** After an exit, how long the log may take to drain what the container wrote last. */
const LOG_DRAIN_MS = 2_000;

/** The output pumps and stdin ends of the running containers, one set per podshim. */
export class ContainerIoSet {
  private readonly io = new Map<string, ContainerIo>();

  constructor(
    private readonly paths: ContainerPaths,
    private readonly logger: Logger,
  ) {}

  get(id: string): ContainerIo | undefined {
    return this.io.get(id);
  }

  /** Opens the FIFOs (making them first for a new task) and starts pumping output to the log. */
  async attach(rec: ContainerRecord, fresh: boolean): Promise<void> {
    // A recovery tried again must not leave the first try's pump reading beside the new one.
    await this.close(rec.id, false);
    const paths = this.paths.fifos(rec);
    // CreateContainer made them; a reboot (the state dir is a tmpfs) takes them away.
    if (fresh && !(await access(paths.stdout).then(() => true, () => false))) {
      await mkdir(this.paths.ioDir(rec.id), { recursive: true, mode: 0o700 });
      await makeFifos([paths.stdin, paths.stdout, paths.stderr].filter((p) => p !== ""));
    }
    const log = await ContainerLog.open({
      stdoutFifo: paths.stdout,
      ...(paths.stderr ? { stderrFifo: paths.stderr } : {}),
      path: rec.logPath || undefined,
      tty: rec.config.tty,
      logger: this.logger.child({ container: rec.id }),
    });
    const io: ContainerIo = { log };
    // Holding a write end keeps the container's stdin open (no EOF) until it is meant to close.
    if (paths.stdin) io.stdin = await openFifoWriter(paths.stdin);
    this.io.set(rec.id, io);
  }

  /** Stops the output pump: after an exit, first let it drain what the container wrote last. */
  async close(id: string, drain: boolean): Promise<void> {
    const io = this.io.get(id);
    if (!io) return;
    this.io.delete(id);
    io.stdin?.destroy();
    if (drain) await withTimeout("draining the container's output", LOG_DRAIN_MS, io.log.done).catch(() => undefined);
    await io.log.close();
  }

  /**
   * Closes every pump once what it has read is written (podshim is stopping; the shims keep
   * the containers running, and what they write meanwhile waits in the FIFOs for the next
   * podshim).
   */
  async closeAll(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const [id, io] of this.io) {
      io.stdin?.destroy();
      closing.push(io.log.close({ flush: true }));
      this.io.delete(id);
    }
    await Promise.all(closing);
  }
}
