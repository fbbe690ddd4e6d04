// One container's output: its stdout/stderr FIFOs read on the event loop, framed into CRI
// log records, and written to the log file kubelet named, through a single writer.

import { withTimeout } from "../util/timeout.js";
import { constants } from "node:fs";
import { mkdir, open } from "node:fs/promises";
import type { Socket } from "node:net";
import { dirname } from "node:path";
import { FailedPreconditionError, InternalError, messageOf } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import { deferred } from "../util/deferred.js";
import { CriLineSplitter, CriStream } from "./cri-log-format.js";
import { openFifoReader } from "./fifo.js";

/** Where records go: a log file, or a stand-in in tests. */
export interface LogSink {
  /** Writes all of `data` (short writes are the sink's business) or rejects. */
  write(data: Buffer): Promise<void>;
  close(): Promise<void>;
}

export type OpenLogSink = (path: string) => Promise<LogSink>;

export type OutputListener = (stream: CriStream, chunk: Buffer) => void;

export interface ContainerLogOptions {
  stdoutFifo: string;
  /** Absent, or ignored, with a TTY: a terminal has one output stream. */
  stderrFifo?: string;
  /** Absolute log file path; undefined when kubelet gave no log directory or path: the
   * output is then discarded, but the FIFOs are still drained so the container never blocks. */
  path: string | undefined;
  tty: boolean;
  /** See CriLineSplitter; containerd's default when absent. */
  maxLineSize?: number;
  logger: Logger;
  /** Records held in memory (queued plus being written) before the FIFOs are paused. */
  maxBufferedBytes?: number;
  /** How the log file is opened; the default creates parent dirs 0755 and appends to a 0640 file. */
  openSink?: OpenLogSink;
}

export const DEFAULT_MAX_BUFFERED_BYTES = 1024 * 1024;

/** The log file as containerd opens it: O_CREAT|O_APPEND|O_WRONLY, mode 0640, parent dirs
 * 0755 (kubelet's log rotator and `kubectl logs` read it as root; others need not). O_NOFOLLOW:
 * a symlink planted at the path must not make podshim append to a file elsewhere. */
export const openLogFile: OpenLogSink = async (path) => {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const fh = await open(path, constants.O_CREAT | constants.O_APPEND | constants.O_WRONLY | constants.O_NOFOLLOW, 0o640);
  return {
    async write(data) {
      let off = 0;
      while (off < data.length) {
        const { bytesWritten } = await fh.write(data, off, data.length - off);
        if (bytesWritten <= 0) throw new InternalError(`write to ${path} made no progress`);
        off += bytesWritten;
      }
    },
    close: () => fh.close(),
  };
};

/**
 * The serialising writer both streams share. Whole records go in, so records never
 * interleave mid-line; at most one write is in flight and whatever queued meanwhile goes out
 * as the next single write. Memory is bounded: past maxBuffered it asks its owner to stop
 * reading (the pipe then fills and the container blocks, as with a slow disk under
 * containerd), and to read again once half of that is written.
 */
class SerialLogWriter {
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  private inFlightBytes = 0;
  // The whole pump loop, and the one write of it under way.
  private writing: Promise<void> | undefined;
  private inFlight: Promise<unknown> | undefined;
  private broken = false;
  private paused = false;
  private idleWaiters: Array<() => void> = [];
  private closed = false;

  constructor(
    private sink: LogSink,
    private readonly path: string,
    private readonly maxBuffered: number,
    private readonly logger: Logger,
    private readonly setPaused: (paused: boolean) => void,
  ) {}

  get bufferedBytes(): number {
    return this.queuedBytes + this.inFlightBytes;
  }

  add(records: readonly Buffer[]): void {
    if (this.closed || this.broken || records.length === 0) return;
    for (const r of records) {
      this.queue.push(r);
      this.queuedBytes += r.length;
    }
    if (!this.paused && this.bufferedBytes > this.maxBuffered) {
      this.paused = true;
      this.setPaused(true);
    }
    this.writing ??= this.pump();
  }

  /** Resolves once nothing is queued or being written. */
  idle(): Promise<void> {
    if (!this.writing) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Switches to a new sink. A write already under way finishes into the old one before that
   * is closed; everything queued after goes to the new one, so once this resolves the old
   * file gets nothing more. Writing resumes if an error had stopped it.
   */
  async replaceSink(next: LogSink): Promise<void> {
    const old = this.sink;
    this.sink = next;
    this.broken = false;
    // Only the write under way can still target the old sink; the pump takes this.sink anew
    // for each batch. (Waiting for the pump to go idle could take forever under steady output.)
    await this.inFlight;
    await old.close().catch((err: unknown) => this.logger.warn({ path: this.path, err: messageOf(err) }, "closing the previous container log file failed"));
  }

  /** Drops what is queued, lets a write under way finish, closes the sink. */
  async close(): Promise<void> {
    this.closed = true;
    this.dropQueue();
    await this.writing;
    await this.sink.close().catch(() => undefined);
  }

  private dropQueue(): void {
    this.queue = [];
    this.queuedBytes = 0;
  }

  private async pump(): Promise<void> {
    while (this.queue.length > 0 && !this.closed) {
      const batch = this.queue.length === 1 ? this.queue[0]! : Buffer.concat(this.queue, this.queuedBytes);
      this.inFlightBytes = this.queuedBytes;
      this.dropQueue();
      const sink = this.sink;
      // Through an async function so that a sink throwing synchronously counts as a failed write.
      const write = (async () => sink.write(batch))();
      this.inFlight = write.catch(() => undefined);
      try {
        await write;
      } catch (err) {
        // A sink already replaced by reopen() failing is old news; the new one is fine.
        if (sink === this.sink && !this.broken) {
          this.broken = true;
          this.dropQueue();
          this.logger.error(
            { path: this.path, err: messageOf(err) },
            "container log write failed; discarding the container's output until the log is reopened",
          );
        }
      }
      this.inFlightBytes = 0;
      this.inFlight = undefined;
      if (this.broken) this.dropQueue();
      if (this.paused && this.bufferedBytes <= this.maxBuffered / 2) {
        this.paused = false;
        this.setPaused(false);
      }
    }
    this.writing = undefined;
    // Dropped on close: the owner must not stay paused.
    if (this.paused) {
      this.paused = false;
      this.setPaused(false);
    }
    for (const w of this.idleWaiters.splice(0)) w();
  }
}

interface StreamReader {
  socket: Socket;
  /** Hands what is already read (buffered in the socket, and an unfinished line as a P
   * record) to the writer and ends the stream; what is still in the FIFO stays there. */
  flush(): void;
  /** Resolves when the stream ended and its last records were handed to the writer. */
  ended: Promise<void>;
}

/**
 * Owns one container's output from the moment its FIFOs are opened (before the task is
 * created, since the shim opens the other ends then) until close(). Neither a slow disk nor
 * a broken one can stall another container or grow memory without bound: writes for this
 * container are one at a time, its buffer is bounded, and past the bound only its own FIFOs
 * are paused. A broken log (ENOSPC, directory gone) is reported once and its output is
 * discarded until reopen(): the container keeps running instead of blocking on a full pipe.
 */
export class ContainerLog {
  private readonly listeners = new Set<OutputListener>();
  private readonly readers: StreamReader[] = [];
  private readonly finished = deferred<void>();
  private reopening: Promise<void> = Promise.resolve();
  private closing: Promise<void> | undefined;

  /** Resolves once every stream reached EOF and all its records are written (or discarded),
   * or when close() is called. Never rejects. */
  readonly done: Promise<void> = this.finished.promise;

  private readonly writer: SerialLogWriter | undefined;

  private constructor(
    private readonly opts: ContainerLogOptions,
    sink: LogSink | undefined,
  ) {
    if (sink && opts.path !== undefined) {
      const bound = opts.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
      this.writer = new SerialLogWriter(sink, opts.path, bound, opts.logger, (paused) => this.setPaused(paused));
    }
  }

  /**
   * Opens the log file first (a start that cannot log fails before anything else is
   * acquired), then the read ends of the FIFOs. With a TTY only stdout is read.
   */
  static async open(opts: ContainerLogOptions): Promise<ContainerLog> {
    const sink = opts.path === undefined ? undefined : await openSinkAt(opts.openSink ?? openLogFile, opts.path);
    return new ContainerLog(opts, sink).attach();
  }

  /** Record bytes held in memory for this container right now (queued and being written). */
  get bufferedBytes(): number {
    return this.writer?.bufferedBytes ?? 0;
  }

  /** Whether reading is paused because the log file is not keeping up. */
  get paused(): boolean {
    return this.readers.some((r) => r.socket.isPaused());
  }

  /**
   * Raw output as read from the FIFOs, before framing, for attach. Listeners run
   * synchronously, must not modify the chunk and get no backpressure: a slow consumer must
   * buffer or drop on its own. Returns the unsubscribe function.
   */
  onOutput(listener: OutputListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * ReopenContainerLog: a new file at the same path (the old one was typically renamed by
   * kubelet's rotation), both streams switched to it, the old handle closed. When this
   * resolves nothing more reaches the old file. On failure the old file stays in use (kubelet
   * renames it back and retries). Calls are serialised.
   */
  reopen(): Promise<void> {
    const run = this.reopening.then(async () => {
      if (this.closing) throw new FailedPreconditionError("the container's log is closed");
      const { path } = this.opts;
      if (path === undefined || !this.writer) throw new FailedPreconditionError("the container has no log path");
      const sink = await openSinkAt(this.opts.openSink ?? openLogFile, path);
      if (this.closing) {
        await sink.close().catch(() => undefined);
        throw new FailedPreconditionError("the container's log is closed");
      }
      await this.writer.replaceSink(sink);
    });
    this.reopening = run.catch(() => undefined);
    return run;
  }

  /**
   * Stops reading, closes the FIFOs and the file, resolves `done`. By default what is not
   * written yet is dropped; with `flush` (podshim shutting down while the container runs on)
   * everything already read is written first, for up to `flushTimeoutMs`, and the rest of the
   * container's output waits in its FIFO for the next podshim. Safe to call more than once.
   */
  close(opts: { flush?: boolean; flushTimeoutMs?: number } = {}): Promise<void> {
    this.closing ??= (async () => {
      for (const r of this.readers) {
        if (opts.flush) r.flush();
        r.socket.destroy();
      }
      await this.reopening;
      if (opts.flush && this.writer) await withTimeout("flushing the container log", opts.flushTimeoutMs ?? 5000, this.writer.idle()).catch(() => undefined);
      await this.writer?.close();
      this.finished.resolve();
    })();
    return this.closing;
  }

  private async attach(): Promise<ContainerLog> {
    const streams: Array<[CriStream, string]> = [[CriStream.stdout, this.opts.stdoutFifo]];
    if (!this.opts.tty && this.opts.stderrFifo !== undefined) streams.push([CriStream.stderr, this.opts.stderrFifo]);
    try {
      for (const [stream, fifo] of streams) this.readers.push(this.read(stream, await openFifoReader(fifo)));
    } catch (err) {
      await this.close();
      throw err;
    }
    void Promise.all(this.readers.map((r) => r.ended))
      .then(() => this.writer?.idle())
      .then(() => this.finished.resolve());
    return this;
  }

  private read(stream: CriStream, socket: Socket): StreamReader {
    const splitter = new CriLineSplitter(stream, { maxLineSize: this.opts.maxLineSize });
    const writer = this.writer;
    const ended = deferred<void>();
    let over = false;
    // The end of a stream flushes its unfinished line; an error counts as an end (nothing more
    // will come), close() does not (it discards).
    const finish = (err?: Error, flushing = false): void => {
      if (over) return;
      over = true;
      if (err) this.opts.logger.warn({ stream, path: this.opts.path, err: err.message }, "reading container output failed");
      if (writer && (!this.closing || flushing)) writer.add(splitter.end());
      ended.resolve();
    };
    socket.on("data", (chunk: Buffer) => {
      for (const l of this.listeners) {
        try {
          l(stream, chunk);
        } catch (err) {
          this.opts.logger.warn({ stream, err: messageOf(err) }, "container output listener threw");
        }
      }
      // Without a log file there is nothing to frame for; the data is only drained.
      if (writer) writer.add(splitter.push(chunk));
    });
    socket.on("end", () => finish());
    socket.on("error", (err) => finish(err));
    socket.on("close", () => finish());
    const flush = (): void => {
      if (over) return;
      socket.pause();
      // read() on a paused socket emits each buffered chunk as "data" as well.
      while (socket.read() !== null);
      finish(undefined, true);
    };
    return { socket, ended: ended.promise, flush };
  }

  private setPaused(paused: boolean): void {
    for (const r of this.readers) {
      if (paused) r.socket.pause();
      else r.socket.resume();
    }
  }
}

async function openSinkAt(openSink: OpenLogSink, path: string): Promise<LogSink> {
  try {
    return await openSink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ELOOP") throw new FailedPreconditionError(`container log ${path} is a symbolic link; podshim does not follow it`, { cause: err });
    throw new InternalError(`cannot open container log ${path}: ${messageOf(err)}`, { cause: err });
  }
}
