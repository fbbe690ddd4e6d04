import { spawn, type ChildProcess, type ChildProcessByStdio } from "node:child_process";
import { existsSync } from "node:fs";
import { type Socket } from "node:net";
import { constants } from "node:os";
import { type Readable, type Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { CanceledError, DeadlineExceededError, InternalError } from "../errors/errors.js";

export interface ProgramResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ProgramOptions {
  /** Written to stdin, which is then closed. Without it stdin is /dev/null. */
  input?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Names the program in timeout and cancel errors ("CNI plugin bridge (ADD)"). */
  what: string;
  /**
   * A built-in program of the native spawner that does what this one does (see BuiltinProgram):
   * run instead of it whenever the native spawner is the one in use.
   */
  builtin?: { cmd: BuiltinProgram; args: readonly string[] };
}

/**
 * The native spawner's built-in programs (scripts/spawner/spawner.c has what each does): the
 * syscalls of `ip netns add`, `ip netns delete`, the CNI loopback plugin's ADD, `mount -t tmpfs`
 * and `umount -l`, made by a fork of the spawner instead of an exec of those binaries, which
 * costs several milliseconds of CPU each on every pod start and stop.
 */
export type BuiltinProgram = "@netns-add" | "@netns-delete" | "@netns-lo-up" | "@mount-tmpfs" | "@umount-lazy";

/** Whether the built-in programs can be run: the native spawner is the one in use. */
export function haveBuiltins(): boolean {
  return spawner() instanceof NativeSpawner;
}

// Plugins print a result of a few KiB; this only guards memory against a runaway program.
const MAX_OUTPUT = 4 * 1024 * 1024;

/**
 * Runs a program with an argument array (never a shell). It gets a process group of its
 * own, so a timeout or cancel kills what it spawned too (a CNI plugin runs its IPAM plugin
 * as a child), and a Ctrl-C aimed at podshim's group does not cut a plugin off half-way.
 * Resolves with the exit status whatever it is; rejects only when the program could not be
 * started, ran out of time, or was cancelled.
 *
 * The program is started by the spawner (below), a helper process, never by podshim itself.
 */
export function runProgram(cmd: string, args: readonly string[], opts: ProgramOptions): Promise<ProgramResult> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(new CanceledError(`${opts.what} was cancelled before it started`, { cause: opts.signal.reason }));
      return;
    }
    let ending: Error | undefined;
    const helper = spawner();
    const program = opts.builtin && helper instanceof NativeSpawner ? opts.builtin : { cmd, args };
    const run = helper.start({ cmd: program.cmd, args: [...program.args], input: opts.input, env: opts.env ?? defaultEnv(), maxOutput: MAX_OUTPUT });
    const timer = setTimeout(() => {
      ending = new DeadlineExceededError(`${opts.what} did not finish within ${opts.timeoutMs} ms and was killed`);
      run.kill();
    }, opts.timeoutMs);
    timer.unref();
    const onAbort = (): void => {
      ending = new CanceledError(`${opts.what} was cancelled and killed`, { cause: opts.signal?.reason });
      run.kill();
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    run.done.then(
      (res) => {
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        if ("error" in res) reject(new InternalError(`cannot run ${cmd}: ${res.error}`));
        else if (ending) reject(ending);
        else resolve(res);
      },
      (err: unknown) => {
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        reject(ending ?? new InternalError(`cannot run ${cmd}: ${(err as Error).message}`, { cause: err }));
      },
    );
  });
}

interface SpawnRequest {
  cmd: string;
  args: string[];
  input: string | undefined;
  env: NodeJS.ProcessEnv;
  maxOutput: number;
}
/** What the spawner answers for one program: how it ended, or why it could not start. */
type SpawnAnswer = ProgramResult | { error: string };

/** What both spawners offer: start a program, and whether the helper died (then start anew). */
interface ProgramSpawner {
  readonly dead: boolean;
  readonly pid: number | undefined;
  start(req: SpawnRequest): { done: Promise<SpawnAnswer>; kill(): void };
}

/*
 * The spawner: a small helper process that starts programs and collects their output.
 * Starting a process from podshim itself is expensive in two ways. libuv forks and blocks the
 * calling thread until the child has exec'd (it reads a close-on-exec pipe to learn whether
 * exec failed): 7-10 ms a program here. And the fork marks every page of podshim's heap
 * copy-on-write, so until the child execs every page podshim writes faults, whichever thread
 * forked (a worker thread measured half the main thread's throughput while it spawned). A pod
 * takes a dozen programs (ip netns, mount, CNI plugins and their IPAM, umount). The helper is
 * small, so its forks are cheap, and podshim's event loop never waits on one.
 *
 * The helper is scripts/spawner/spawner.c, built by `npm run build` into dist/spawner (about
 * 1 MB resident). It speaks the length-prefixed frames described at the top of that file, over
 * its stdin and stdout. Where no C compiler was at hand at build time (or PODSHIM_SPAWNER=node)
 * it is a Node process running SPAWNER_SOURCE over Node's IPC channel instead: the same
 * behaviour at some 45-54 MB resident (about 7 MB of it its own, the rest the node binary's
 * pages it shares with podshim). Either leaves when podshim does (its request pipe or IPC
 * channel closes); programs it started run on in their own process groups, as they did when
 * podshim started them itself.
 */
const SPAWNER_SOURCE = String.raw`
const { spawn } = require("node:child_process");
const children = new Map();
process.on("disconnect", () => process.exit(0));
process.on("message", (m) => {
  if (m.op === "kill") {
    const child = children.get(m.id);
    if (!child) return;
    try {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    } catch {
      child.kill("SIGKILL");
    }
    return;
  }
  let child;
  try {
    child = spawn(m.cmd, m.args, { stdio: [m.input === undefined ? "ignore" : "pipe", "pipe", "pipe"], env: m.env, detached: true });
  } catch (err) {
    process.send({ id: m.id, answer: { error: err.message } });
    return;
  }
  children.set(m.id, child);
  let stdout = "";
  let stderr = "";
  let answered = false;
  const answer = (a) => {
    if (answered) return;
    answered = true;
    children.delete(m.id);
    process.send({ id: m.id, answer: a });
  };
  child.stdout.setEncoding("utf8").on("data", (d) => { if (stdout.length < m.maxOutput) stdout += d; });
  child.stderr.setEncoding("utf8").on("data", (d) => { if (stderr.length < m.maxOutput) stderr += d; });
  // Without a pid the program never started (ENOENT, EACCES); otherwise close says how it ended.
  child.on("error", (err) => { if (child.pid === undefined) answer({ error: err.message }); });
  child.on("close", (code, signal) => answer({ code, signal, stdout, stderr }));
  if (m.input !== undefined) {
    // A program that exits without reading its stdin makes the write fail with EPIPE;
    // its exit status says what happened, so the write error is not the story.
    child.stdin.on("error", () => undefined);
    child.stdin.end(m.input);
  }
});
`;

/** A small heap: the helper holds a few programs' output at a time. */
const SPAWNER_NODE_FLAGS = ["--max-old-space-size=32", "--max-semi-space-size=1"];

type Pending = Map<number, { resolve(a: SpawnAnswer): void; reject(err: Error): void }>;

/** The fallback helper: a Node process that starts programs with child_process.spawn. */
class NodeSpawner implements ProgramSpawner {
  private readonly helper: ChildProcess;
  private readonly pending: Pending = new Map();
  private nextId = 0;
  dead = false;

  constructor() {
    // Its stderr is podshim's, so a crash of the helper is in podshim's log; env is empty (the
    // programs get theirs with each request), so no NODE_OPTIONS meant for podshim reach it.
    this.helper = spawn(process.execPath, [...SPAWNER_NODE_FLAGS, "-e", SPAWNER_SOURCE], { stdio: ["ignore", "ignore", "inherit", "ipc"], env: {} });
    this.idle();
    this.helper.on("message", (m: { id: number; answer: SpawnAnswer }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) this.idle();
      p.resolve(m.answer);
    });
    const fail = (err: Error): void => {
      this.dead = true;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    this.helper.on("error", fail);
    this.helper.on("exit", (code, signal) => fail(new Error(`the spawner process exited (${signal ?? code})`)));
  }

  get pid(): number | undefined {
    return this.helper.pid;
  }

  /** Idle, the helper keeps nothing alive; while a program runs, it does. */
  private idle(): void {
    this.helper.unref();
    this.helper.channel?.unref();
  }

  start(req: SpawnRequest): { done: Promise<SpawnAnswer>; kill(): void } {
    const id = this.nextId++;
    const done = new Promise<SpawnAnswer>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    if (this.pending.size === 1) {
      this.helper.ref();
      this.helper.channel?.ref();
    }
    this.helper.send({ op: "run", id, ...req });
    return { done, kill: () => this.helper.connected && this.helper.send({ op: "kill", id }) };
  }
}

/** Where `npm run build` puts the C helper; two levels up is the package root from both
 * src/util/exec.ts (under vitest) and dist/util/exec.js. */
const NATIVE_SPAWNER = fileURLToPath(new URL("../../dist/spawner/podshim-spawner", import.meta.url));

// The frame protocol of scripts/spawner/spawner.c (its top comment has the full layout):
// every frame is u32 length | body, little-endian. Requests: op 1 run = u32 id | u32 maxOutput |
// str cmd | u32 n | n x str arg | u32 n | n x str "K=V" | u8 hasInput | [str input], where
// str = u32 length | utf8 bytes; op 2 kill = u32 id. Answers: u32 id | u8 kind, then kind 0
// (exited) i32 code | str stdout | str stderr, kind 1 (signaled) u32 signal | str stdout |
// str stderr, kind 2 (could not start) str message.
const OP_RUN = 1;
const OP_KILL = 2;
const KIND_EXITED = 0;
const KIND_SIGNALED = 1;

/** Signal numbers to Node's names ("SIGKILL"), as a Node child's exit event reports them. */
let signalNames: Map<number, NodeJS.Signals> | undefined;
function signalName(n: number): NodeJS.Signals | null {
  signalNames ??= new Map(Object.entries(constants.signals).map(([name, num]) => [num, name as NodeJS.Signals]));
  return signalNames.get(n) ?? null;
}

/** Builds frames from u32s, u8s and strs; the length prefix is filled in by frame(). */
class FrameWriter {
  private readonly parts: Buffer[] = [];
  private size = 0;

  u8(v: number): this {
    return this.push(Buffer.of(v));
  }
  u32(v: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(v);
    return this.push(b);
  }
  str(s: string): this {
    const b = Buffer.from(s, "utf8");
    return this.u32(b.length).push(b);
  }
  frame(): Buffer {
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32LE(this.size);
    return Buffer.concat([head, ...this.parts], 4 + this.size);
  }
  private push(b: Buffer): this {
    this.parts.push(b);
    this.size += b.length;
    return this;
  }
}

/** The environment as the "K=V" strings a program gets. */
function envStrings(env: NodeJS.ProcessEnv): string[] {
  return Object.entries(env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
}

function encodeRun(id: number, req: SpawnRequest, env: readonly string[]): Buffer {
  const w = new FrameWriter().u8(OP_RUN).u32(id).u32(req.maxOutput).str(req.cmd).u32(req.args.length);
  for (const a of req.args) w.str(a);
  w.u32(env.length);
  for (const e of env) w.str(e);
  if (req.input === undefined) w.u8(0);
  else w.u8(1).str(req.input);
  return w.frame();
}

/** Reads the strs of an answer body in order. */
function decodeAnswer(body: Buffer): { id: number; answer: SpawnAnswer } {
  let at = 0;
  const u32 = (): number => {
    const v = body.readUInt32LE(at);
    at += 4;
    return v;
  };
  const str = (): string => {
    const n = u32();
    if (at + n > body.length) throw new RangeError(`a string of ${n} bytes overruns its ${body.length}-byte frame`);
    const s = body.toString("utf8", at, at + n);
    at += n;
    return s;
  };
  const id = u32();
  const kind = body.readUInt8(at++);
  if (kind === KIND_EXITED || kind === KIND_SIGNALED) {
    const status = kind === KIND_EXITED ? body.readInt32LE(at) : body.readUInt32LE(at);
    at += 4;
    const stdout = str();
    const stderr = str();
    return { id, answer: kind === KIND_EXITED ? { code: status, signal: null, stdout, stderr } : { code: null, signal: signalName(status), stdout, stderr } };
  }
  return { id, answer: { error: str() } };
}

/** The C helper: programs are started and collected by dist/spawner/podshim-spawner. */
class NativeSpawner implements ProgramSpawner {
  private readonly helper: ChildProcessByStdio<Writable, Readable, null>;
  private readonly pending: Pending = new Map();
  private nextId = 0;
  private chunks: Buffer[] = [];
  private buffered = 0;
  dead = false;

  constructor() {
    // As for the Node helper: podshim's stderr, and an empty env (each request carries one).
    this.helper = spawn(NATIVE_SPAWNER, [], { stdio: ["pipe", "pipe", "inherit"], env: {} });
    this.idle();
    this.helper.stdout.on("data", (chunk: Buffer) => this.receive(chunk));
    const fail = (err: Error): void => this.fail(err);
    // Writes to a helper that died fail with EPIPE; its exit event tells the story.
    this.helper.stdin.on("error", () => undefined);
    this.helper.stdout.on("error", () => undefined);
    this.helper.on("error", (err) => {
      // It could not even be started (a binary built for another machine): use the Node helper
      // from now on rather than fail every program the same way.
      if (this.helper.pid === undefined) nativeUnusable = true;
      fail(err);
    });
    // Dead from its exit on, so the next program gets a new helper; answers it wrote before it
    // died are still read, so what is pending is failed only once its stdout closed too.
    this.helper.on("exit", () => (this.dead = true));
    this.helper.on("close", (code, signal) => fail(new Error(`the spawner process exited (${signal ?? code})`)));
  }

  get pid(): number | undefined {
    return this.helper.pid;
  }

  /** Idle, the helper keeps nothing alive; while a program runs, it does. */
  private idle(): void {
    this.helper.unref();
    (this.helper.stdin as Socket).unref();
    (this.helper.stdout as Socket).unref();
  }

  private busy(): void {
    this.helper.ref();
    (this.helper.stdin as Socket).ref();
    (this.helper.stdout as Socket).ref();
  }

  private fail(err: Error): void {
    this.dead = true;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  /** Collects answer bytes; chunks are joined only once a whole frame is in (a 4 MiB stdout
   * arrives in 64 KiB chunks, and joining at each would copy it over and over). */
  private receive(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= 4) {
      if (this.chunks[0]!.length < 4) this.join();
      const n = this.chunks[0]!.readUInt32LE(0);
      if (this.buffered < 4 + n) return;
      this.join();
      const buf = this.chunks[0]!;
      let decoded: { id: number; answer: SpawnAnswer };
      try {
        decoded = decodeAnswer(buf.subarray(4, 4 + n));
      } catch (err) {
        // Only a bug makes a frame unreadable, and nothing after it can be trusted either.
        this.chunks = [];
        this.buffered = 0;
        this.helper.kill("SIGKILL");
        this.fail(new Error(`the spawner sent a malformed answer: ${(err as Error).message}`));
        return;
      }
      // The decoded strings are copies, so the tail kept may be a view of the joined buffer.
      const rest = buf.subarray(4 + n);
      this.chunks = rest.length === 0 ? [] : [rest];
      this.buffered = rest.length;
      const p = this.pending.get(decoded.id);
      if (!p) continue;
      this.pending.delete(decoded.id);
      if (this.pending.size === 0) this.idle();
      p.resolve(decoded.answer);
    }
  }

  private join(): void {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
  }

  start(req: SpawnRequest): { done: Promise<SpawnAnswer>; kill(): void } {
    const id = this.nextId;
    this.nextId = (this.nextId + 1) >>> 0; // a u32 on the wire
    // The frame carries C strings' bytes: a NUL would cut one short, so refuse it as Node's
    // spawn does (ERR_INVALID_ARG_VALUE), before anything runs.
    const env = envStrings(req.env);
    if ([req.cmd, ...req.args, ...env].some((s) => s.includes("\0"))) {
      return { done: Promise.resolve({ error: `spawn ${req.cmd}: an argument or environment string contains a NUL byte` }), kill: () => undefined };
    }
    if (this.dead) return { done: Promise.reject(new Error("the spawner process exited")), kill: () => undefined };
    const done = new Promise<SpawnAnswer>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    if (this.pending.size === 1) this.busy();
    this.helper.stdin.write(encodeRun(id, req, env));
    return {
      done,
      kill: () => {
        if (!this.dead && this.pending.has(id)) this.helper.stdin.write(new FrameWriter().u8(OP_KILL).u32(id).frame());
      },
    };
  }
}

/** Set when the C helper would not start at all; the Node helper is used from then on. */
let nativeUnusable = false;
/** Which helper the next one started is; tests choose, podshim leaves it to the environment. */
let chosenKind: SpawnerKind | undefined;
export type SpawnerKind = "native" | "node";

function spawnerKind(): SpawnerKind {
  if (chosenKind !== undefined) return chosenKind;
  return !nativeUnusable && process.env.PODSHIM_SPAWNER !== "node" && existsSync(NATIVE_SPAWNER) ? "native" : "node";
}

let current: ProgramSpawner | undefined;
/** The spawner process, started at first use (and again if it ever died). */
function spawner(): ProgramSpawner {
  if (current === undefined || current.dead) current = spawnerKind() === "native" ? new NativeSpawner() : new NodeSpawner();
  return current;
}

/** For tests: which helper to use from the next program on (undefined: as podshim chooses),
 * and the pid of the helper in use. The helper running now is left to exit with podshim. */
export const spawnerForTests = {
  use(kind: SpawnerKind | undefined): void {
    chosenKind = kind;
    current = undefined;
  },
  pid(): number | undefined {
    return current?.pid;
  },
  dead(): boolean {
    return current?.dead ?? true;
  },
  kind(): SpawnerKind | undefined {
    return current === undefined ? undefined : current instanceof NativeSpawner ? "native" : "node";
  },
  nativePath: NATIVE_SPAWNER,
};

let cachedEnv: { path: string | undefined; env: NodeJS.ProcessEnv } | undefined;
/** podshim's environment with the sbin directories on PATH, computed once per PATH. */
export function defaultEnv(): NodeJS.ProcessEnv {
  if (cachedEnv === undefined || cachedEnv.path !== process.env.PATH) cachedEnv = { path: process.env.PATH, env: withSbinPath(process.env) };
  return cachedEnv.env;
}

/** The environment with the sbin directories on PATH: a daemon started by hand or from a
 * minimal init may lack them, and ip, iptables and tc live there on Debian. */
export function withSbinPath(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const have = (env.PATH ?? "").split(":").filter((d) => d !== "");
  const want = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
  return { ...env, PATH: [...have, ...want.filter((d) => !have.includes(d))].join(":") };
}
