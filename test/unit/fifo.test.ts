// FIFOs as containerd's shim uses them, with real writer processes: no false EOF before a
// writer comes, EOF after it goes, and idle readers that hold no thread-pool thread.
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InternalError } from "../../src/errors/errors.js";
import { makeFifo, openFifoReader, openFifoWriter } from "../../src/container-logs/fifo.js";

const root = mkdtempSync(join(tmpdir(), "podshim-fifo-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let seq = 0;
const sockets: Socket[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(children.splice(0).map(reap));
});

function reap(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("close", () => resolve());
    child.kill("SIGKILL");
  });
}

async function newFifo(): Promise<string> {
  const path = join(root, `fifo-${seq++}`);
  await makeFifo(path, 0o600);
  return path;
}

async function reader(path: string): Promise<Socket> {
  const s = await openFifoReader(path);
  sockets.push(s);
  return s;
}

/** A separate process that opens the FIFO for writing (as the shim does), writes, exits. */
function writerProcess(fifo: string, script: string, ...args: string[]): ChildProcess {
  const child = spawn("sh", ["-c", script, "sh", fifo, ...args], { stdio: "ignore" });
  children.push(child);
  return child;
}

/** Everything the socket delivers until it ends. */
function collect(s: Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on("data", (d: Buffer) => parts.push(d));
  return new Promise((resolve, reject) => {
    s.once("end", () => resolve(Buffer.concat(parts)));
    s.once("error", reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await sleep(5);
  }
}

describe("makeFifo", () => {
  it("creates a FIFO with exactly the mode asked for", async () => {
    const path = join(root, "mode");
    await makeFifo(path, 0o640);
    const st = statSync(path);
    expect(st.isFIFO()).toBe(true);
    expect(st.mode & 0o7777).toBe(0o640);
  });

  it("replaces a stale file", async () => {
    const path = join(root, "stale");
    writeFileSync(path, "old");
    await makeFifo(path, 0o600);
    expect(statSync(path).isFIFO()).toBe(true);
  });

  it("fails with a typed error where it cannot create one", async () => {
    await expect(makeFifo(join(root, "no-such-dir", "f"), 0o600)).rejects.toThrow(InternalError);
  });
});

describe("openFifoReader", () => {
  it("reads what another process writes, then ends when it closes", async () => {
    const fifo = await newFifo();
    const s = await reader(fifo);
    const got = collect(s);
    writerProcess(fifo, 'printf "%s\\n" "$2" "$3" > "$1"', "hello", "wörld");
    expect((await got).toString("utf8")).toBe("hello\nwörld\n");
  });

  it("does not see EOF before a writer ever connected", async () => {
    const fifo = await newFifo();
    const s = await reader(fifo);
    let ended = false;
    const got = collect(s);
    void got.then(() => (ended = true));
    await sleep(300);
    expect(ended).toBe(false);
    // The shim comes late: the reader still gets everything and then the EOF.
    writerProcess(fifo, 'printf late > "$1"');
    expect((await got).toString()).toBe("late");
  });

  it("ends only after every writer closed", async () => {
    const fifo = await newFifo();
    const s = await reader(fifo);
    const parts: string[] = [];
    s.on("data", (d: Buffer) => parts.push(d.toString()));
    let ended = false;
    const end = new Promise<void>((resolve) =>
      s.once("end", () => {
        ended = true;
        resolve();
      }),
    );
    // A writer that stays connected until its stdin closes.
    const long = spawn("sh", ["-c", 'exec 3>"$1"; printf b >&3; read line', "sh", fifo], { stdio: ["pipe", "ignore", "ignore"] });
    children.push(long);
    await waitFor(() => parts.join("") === "b");
    // A second writer comes and goes while the first is still there: no EOF yet.
    const short = writerProcess(fifo, 'printf a > "$1"');
    await new Promise((r) => short.once("close", r));
    await waitFor(() => parts.join("") === "ba");
    await sleep(100);
    expect(ended).toBe(false);
    long.stdin!.end();
    await end;
    expect(ended).toBe(true);
  });

  it("refuses a path that is not a FIFO", async () => {
    const path = join(root, "regular");
    writeFileSync(path, "x");
    await expect(openFifoReader(path)).rejects.toThrow(InternalError);
    await expect(openFifoReader(join(root, "missing"))).rejects.toThrow(InternalError);
  });

  it("keeps no thread-pool thread busy: file I/O goes on with 8 idle readers", async () => {
    for (let i = 0; i < 8; i++) await reader(await newFifo());
    const file = join(root, "plain");
    writeFileSync(file, "still works");
    const started = Date.now();
    // Twice the pool size in parallel: a blocked pool would stall these until the timeout.
    const reads = await Promise.all(Array.from({ length: 8 }, () => readFile(file, "utf8")));
    expect(reads.every((r) => r === "still works")).toBe(true);
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe("openFifoWriter", () => {
  it("opens with no reader yet and writes to a reader process that comes later", async () => {
    const fifo = await newFifo();
    const w = await openFifoWriter(fifo);
    sockets.push(w);
    const child = spawn("cat", [fifo], { stdio: ["ignore", "pipe", "ignore"] });
    children.push(child);
    const out: Buffer[] = [];
    child.stdout!.on("data", (d: Buffer) => out.push(d));
    const exited = new Promise((r) => child.once("close", r));
    // More than the pipe holds: the rest waits in the socket, not in a thread.
    const payload = Buffer.alloc(256 * 1024, "s");
    w.end(payload);
    // Closing our end (the only writer) is the reader's EOF.
    expect(await exited).toBe(0);
    expect(Buffer.concat(out).equals(payload)).toBe(true);
  });
});
