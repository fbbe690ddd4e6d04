// ContainerLog end to end on real FIFOs and files: the test plays the shim, writing into
// the FIFOs, and reads the log file back with the CRI parser.
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { constants, existsSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { FailedPreconditionError, InternalError } from "../../src/errors/errors.js";
import { createLogger } from "../../src/logger/logger.js";
import { ContainerLog, openLogFile } from "../../src/container-logs/container-log.js";
import type { ContainerLogOptions, LogSink } from "../../src/container-logs/container-log.js";
import { parseCriLog, reassembleCriLog } from "../../src/container-logs/cri-log-format.js";
import { makeFifo, openFifoWriter } from "../../src/container-logs/fifo.js";

const root = mkdtempSync(join(tmpdir(), "podshim-container-log-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const silent = createLogger("silent");
const logs: ContainerLog[] = [];
const writers: Socket[] = [];

afterEach(async () => {
  for (const w of writers.splice(0)) w.destroy();
  await Promise.all(logs.splice(0).map((l) => l.close()));
});

let seq = 0;

/** A container's FIFOs, its log path, and the shim's write ends (opened on demand). */
async function container(opts: { stderr?: boolean } = {}) {
  const dir = join(root, `c${seq++}`);
  const stdoutFifo = join(root, `c${seq}-stdout`);
  const stderrFifo = join(root, `c${seq}-stderr`);
  await makeFifo(stdoutFifo, 0o600);
  if (opts.stderr !== false) await makeFifo(stderrFifo, 0o600);
  return { stdoutFifo, stderrFifo, path: join(dir, "app", "0.log") };
}

async function open(opts: Partial<ContainerLogOptions> & Pick<ContainerLogOptions, "stdoutFifo" | "path">): Promise<ContainerLog> {
  const log = await ContainerLog.open({ tty: false, logger: silent, ...opts });
  logs.push(log);
  return log;
}

async function writer(fifo: string): Promise<Socket> {
  const w = await openFifoWriter(fifo);
  writers.push(w);
  return w;
}

/** Ends a write end and waits until every byte is in the pipe and the fd is closed. */
function finish(w: Socket, last?: string | Buffer): Promise<void> {
  return new Promise((resolve) => {
    w.once("close", () => resolve());
    if (last === undefined) w.end();
    else w.end(last);
  });
}

async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const read = (path: string) => (existsSync(path) ? readFileSync(path) : Buffer.alloc(0));
const lines = (path: string) => reassembleCriLog(read(path)).map((m) => `${m.stream} ${m.complete ? "F" : "P"} ${m.content.toString()}`);

/** A sink over the real file whose writes wait for `gate()` to allow them. */
function gatedSink(onWrite: (batch: Buffer) => void = () => undefined) {
  let open = false;
  let wake: (() => void) | undefined;
  const factory = async (path: string): Promise<LogSink> => {
    const file = await openLogFile(path);
    return {
      async write(data) {
        onWrite(data);
        while (!open) await new Promise<void>((r) => (wake = r));
        await file.write(data);
      },
      close: () => file.close(),
    };
  };
  return {
    factory,
    release() {
      open = true;
      wake?.();
    },
  };
}

describe("ContainerLog", () => {
  it("writes stdout and stderr as CRI records into one file, created like containerd's", async () => {
    const c = await container();
    const log = await open(c);
    const out = await writer(c.stdoutFifo);
    const err = await writer(c.stderrFifo);
    out.write("hello\r\n");
    await waitFor("stdout record", () => lines(c.path).length === 1);
    err.write("oops\n");
    await waitFor("stderr record", () => lines(c.path).length === 2);
    await finish(out, "bye");
    await finish(err);
    await log.done;
    expect(lines(c.path)).toEqual(["stdout F hello", "stderr F oops", "stdout P bye"]);
    const umask = process.umask();
    expect(statSync(c.path).mode & 0o777).toBe(0o640 & ~umask);
    expect(statSync(join(c.path, "..")).mode & 0o777).toBe(0o755 & ~umask);
    expect(statSync(join(c.path, "..", "..")).mode & 0o777).toBe(0o755 & ~umask);
  });

  it("appends to an existing file", async () => {
    const c = await container();
    const first = await open(c);
    await finish(await writer(c.stdoutFifo), "one\n");
    await finish(await writer(c.stderrFifo));
    await first.done;
    await first.close();
    const again = await container();
    const second = await open({ ...again, path: c.path });
    await finish(await writer(again.stdoutFifo), "two\n");
    await finish(await writer(again.stderrFifo));
    await second.done;
    expect(lines(c.path)).toEqual(["stdout F one", "stdout F two"]);
  });

  it("never interleaves records of the two streams", async () => {
    const c = await container();
    const log = await open(c);
    const out = await writer(c.stdoutFifo);
    const err = await writer(c.stderrFifo);
    const n = 5000;
    const body = (tag: string) => Array.from({ length: n }, (_, i) => `${tag}-${i}-${"x".repeat(i % 300)}\n`).join("");
    await Promise.all([finish(out, body("out")), finish(err, body("err"))]);
    await log.done;
    const entries = parseCriLog(read(c.path));
    expect(entries).toHaveLength(2 * n);
    const byStream = (s: string) => entries.filter((e) => e.stream === s).map((e) => `${e.content.toString()}\n`).join("");
    expect(byStream("stdout")).toBe(body("out"));
    expect(byStream("stderr")).toBe(body("err"));
    // Records are in timestamp order in the file.
    for (let i = 1; i < entries.length; i++) expect(entries[i]!.timeNs >= entries[i - 1]!.timeNs).toBe(true);
  });

  it("splits long lines at maxLineSize", async () => {
    const c = await container();
    const log = await open({ ...c, maxLineSize: 4 });
    await finish(await writer(c.stdoutFifo), "abcdefghij\n");
    await finish(await writer(c.stderrFifo));
    await log.done;
    expect(parseCriLog(read(c.path)).map((e) => `${e.tag} ${e.content.toString()}`)).toEqual(["P abcd", "P efgh", "F ij"]);
  });

  it("with a TTY reads stdout only", async () => {
    const c = await container({ stderr: false });
    const log = await open({ ...c, tty: true });
    await finish(await writer(c.stdoutFifo), "$ ls\r\nbin\r\n");
    await log.done;
    expect(lines(c.path)).toEqual(["stdout F $ ls", "stdout F bin"]);
  });

  it("without a log path drains the FIFOs and writes nothing", async () => {
    const c = await container();
    let opened = 0;
    const log = await open({ ...c, path: undefined, openSink: async (p) => (opened++, openLogFile(p)) });
    // Far more than a pipe holds: the writes only finish if someone reads.
    await Promise.all([finish(await writer(c.stdoutFifo), Buffer.alloc(1 << 20, "o")), finish(await writer(c.stderrFifo), Buffer.alloc(1 << 20, "e"))]);
    await log.done;
    expect(opened).toBe(0);
    expect(existsSync(c.path)).toBe(false);
    await expect(log.reopen()).rejects.toThrow(FailedPreconditionError);
  });

  it("tees raw output to listeners until they unsubscribe", async () => {
    const c = await container();
    const log = await open(c);
    const seen: string[] = [];
    const off = log.onOutput((stream, chunk) => seen.push(`${stream}:${chunk.toString()}`));
    const out = await writer(c.stdoutFifo);
    out.write("a\r\nb");
    await waitFor("tee", () => seen.length === 1);
    off();
    out.write("c\n");
    await finish(out);
    await finish(await writer(c.stderrFifo));
    await log.done;
    expect(seen).toEqual(["stdout:a\r\nb"]);
    expect(lines(c.path)).toEqual(["stdout F a", "stdout F bc"]);
  });

  it("keeps logging when a listener throws", async () => {
    const c = await container();
    const log = await open(c);
    log.onOutput(() => {
      throw new Error("listener bug");
    });
    await finish(await writer(c.stdoutFifo), "still here\n");
    await finish(await writer(c.stderrFifo));
    await log.done;
    expect(lines(c.path)).toEqual(["stdout F still here"]);
  });

  it("refuses a log file it cannot open, before opening the FIFOs", async () => {
    const c = await container();
    const blocker = join(root, `blocker-${seq++}`);
    writeFileSync(blocker, "");
    await expect(ContainerLog.open({ ...c, path: join(blocker, "0.log"), tty: false, logger: silent })).rejects.toThrow(InternalError);
    // Nothing holds the read end: a non-blocking write-only open finds no reader.
    expect(() => openSync(c.stdoutFifo, constants.O_WRONLY | constants.O_NONBLOCK)).toThrow(/ENXIO/);
  });

  it("does not follow a symlink planted at the log path", async () => {
    const c = await container();
    const target = join(root, `target-${seq++}`);
    writeFileSync(target, "");
    const link = join(root, `link-${seq++}.log`);
    symlinkSync(target, link);
    await expect(ContainerLog.open({ ...c, path: link, tty: false, logger: silent })).rejects.toThrow(FailedPreconditionError);
    expect(readFileSync(target, "utf8")).toBe("");
  });

  it("close() is idempotent, resolves done and closes the FIFOs", async () => {
    const c = await container();
    const log = await ContainerLog.open({ ...c, tty: false, logger: silent });
    let done = false;
    void log.done.then(() => (done = true));
    await Promise.all([log.close(), log.close()]);
    await log.close();
    expect(done).toBe(true);
    for (const fifo of [c.stdoutFifo, c.stderrFifo]) {
      expect(() => openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK)).toThrow(/ENXIO/);
    }
    await expect(log.reopen()).rejects.toThrow(FailedPreconditionError);
  });

  describe("reopen", () => {
    it("sends new output only to the new file after a rename", async () => {
      const c = await container();
      const log = await open(c);
      const out = await writer(c.stdoutFifo);
      out.write("before\n");
      await waitFor("first record", () => lines(c.path).length === 1);
      const rotated = `${c.path}.20260823-101502`;
      renameSync(c.path, rotated);
      await log.reopen();
      expect(existsSync(c.path)).toBe(true);
      out.write("after\n");
      await finish(out);
      await finish(await writer(c.stderrFifo));
      await log.done;
      expect(lines(rotated)).toEqual(["stdout F before"]);
      expect(lines(c.path)).toEqual(["stdout F after"]);
      expect(statSync(c.path).mode & 0o777).toBe(0o640 & ~process.umask());
    });

    it("leaves the old file alone once it resolved, under steady output", async () => {
      const c = await container();
      const log = await open(c);
      const out = await writer(c.stdoutFifo);
      let i = 0;
      const ticker = setInterval(() => out.write(`tick ${i++}\n`), 1);
      try {
        await waitFor("some output", () => read(c.path).length > 1000);
        const rotated = `${c.path}.1`;
        renameSync(c.path, rotated);
        await log.reopen();
        const size = statSync(rotated).size;
        await waitFor("output in the new file", () => read(c.path).length > 1000);
        expect(statSync(rotated).size).toBe(size);
      } finally {
        clearInterval(ticker);
      }
      await finish(out);
      await finish(await writer(c.stderrFifo));
      await log.done;
      // Nothing lost or doubled across the switch.
      const all = [...lines(`${c.path}.1`), ...lines(c.path)];
      expect(all).toEqual(Array.from({ length: i }, (_, k) => `stdout F tick ${k}`));
    });

    it("keeps the old file when the new one cannot be opened", async () => {
      const c = await container();
      let calls = 0;
      const log = await open({ ...c, openSink: async (p) => (++calls === 2 ? Promise.reject(new Error("EACCES")) : openLogFile(p)) });
      const out = await writer(c.stdoutFifo);
      out.write("one\n");
      await waitFor("first record", () => lines(c.path).length === 1);
      await expect(log.reopen()).rejects.toThrow(InternalError);
      out.write("two\n");
      await finish(out);
      await finish(await writer(c.stderrFifo));
      await log.done;
      expect(lines(c.path)).toEqual(["stdout F one", "stdout F two"]);
    });
  });

  describe("a broken log", () => {
    it("is reported once, discards output without blocking the container, and heals on reopen", async () => {
      const c = await container();
      const reports: string[] = [];
      const logger = createLogger(
        "warn",
        new Writable({
          write(chunk: Buffer, _enc, cb) {
            reports.push(chunk.toString());
            cb();
          },
        }),
      );
      let broken = true;
      const log = await open({
        ...c,
        logger,
        openSink: async (p) => {
          const file = await openLogFile(p);
          return {
            write: (d) => (broken ? Promise.reject(Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" })) : file.write(d)),
            close: () => file.close(),
          };
        },
      });
      const out = await writer(c.stdoutFifo);
      // 4 MiB, far over the pipe and the buffer bound: this only completes if it is drained.
      const big = Buffer.from("lost line\n".repeat(400_000));
      await new Promise<void>((resolve) => out.write(big, () => resolve()));
      await waitFor("buffer empty", () => log.bufferedBytes === 0 && out.writableLength === 0);
      expect(reports.filter((r) => r.includes("container log write failed"))).toHaveLength(1);
      expect(reports[0]).toContain("ENOSPC");
      expect(read(c.path).length).toBe(0);

      broken = false;
      await log.reopen();
      out.write("back\n");
      await finish(out);
      await finish(await writer(c.stderrFifo));
      await log.done;
      expect(lines(c.path)).toEqual(["stdout F back"]);
    });

    it("does not keep done from resolving", async () => {
      const c = await container();
      const log = await open({ ...c, openSink: async () => ({ write: () => Promise.reject(new Error("EIO")), close: async () => undefined }) });
      await finish(await writer(c.stdoutFifo), "x\n".repeat(10_000));
      await finish(await writer(c.stderrFifo), "y\n");
      await log.done;
    });
  });

  describe("backpressure", () => {
    it("pauses only the slow container's FIFOs, bounds its memory, loses nothing", async () => {
      const bound = 256 * 1024;
      let maxBatch = 0;
      const gate = gatedSink((batch) => (maxBatch = Math.max(maxBatch, batch.length)));
      const slow = await container();
      const slowLog = await open({ ...slow, openSink: gate.factory, maxBufferedBytes: bound });
      const fast = await container();
      const fastLog = await open(fast);

      const slowOut = await writer(slow.stdoutFifo);
      const payload = Array.from({ length: 200_000 }, (_, i) => `line ${i}\n`).join("");
      let maxBuffered = 0;
      const sampler = setInterval(() => (maxBuffered = Math.max(maxBuffered, slowLog.bufferedBytes)), 1);
      const slowDone = finish(slowOut, payload);
      try {
        await waitFor("the slow container to be paused", () => slowLog.paused);
        // The data now waits in the pipe and in the writer, not in podshim.
        await new Promise((r) => setTimeout(r, 100));
        expect(slowLog.paused).toBe(true);
        expect(slowOut.writableLength).toBeGreaterThan(0);

        // Another container is not held up.
        await finish(await writer(fast.stdoutFifo), "fast\n");
        await finish(await writer(fast.stderrFifo));
        await fastLog.done;
        expect(lines(fast.path)).toEqual(["stdout F fast"]);

        gate.release();
        await slowDone;
        await finish(await writer(slow.stderrFifo));
        await slowLog.done;
      } finally {
        clearInterval(sampler);
        gate.release();
      }
      expect(slowLog.paused).toBe(false);
      // The bound plus what one read of short lines can turn into before the pause takes effect.
      const slack = 4 * 64 * 1024;
      expect(maxBuffered).toBeLessThanOrEqual(bound + slack);
      expect(maxBatch).toBeLessThanOrEqual(bound + slack);
      const got = parseCriLog(read(slow.path)).map((e) => `${e.content.toString()}\n`).join("");
      expect(got).toBe(payload);
    });

    it("batches queued records into one write", async () => {
      const batches: number[] = [];
      const gate = gatedSink((b) => batches.push(b.length));
      const c = await container();
      const log = await open({ ...c, openSink: gate.factory });
      const out = await writer(c.stdoutFifo);
      out.write("first\n");
      await waitFor("first write", () => batches.length === 1);
      for (let i = 0; i < 50; i++) out.write(`queued ${i}\n`);
      await waitFor("queued records", () => log.bufferedBytes > 50 * 30);
      gate.release();
      await finish(out);
      await finish(await writer(c.stderrFifo));
      await log.done;
      expect(batches.length).toBeLessThan(10);
      expect(lines(c.path)).toHaveLength(51);
    });
  });
});
