// An in-process StreamingBackend for the streaming server's tests: "processes" are small
// scripted programs over PassThrough pipes, and port-forward dials 127.0.0.1 directly (the
// test's own servers play the pod).
import net from "node:net";
import { PassThrough, type Duplex } from "node:stream";
import { FailedPreconditionError } from "../../src/errors/errors.js";
import type { AttachParams, ExecParams, ProcessExit, ProcessStreams, StreamingBackend, TerminalSize } from "../../src/streaming/backend.js";

/** What one exec or attach did, for assertions. */
export interface FakeProcess {
  kind: "exec" | "attach";
  params: ExecParams | AttachParams;
  resizes: TerminalSize[];
  /** Set when the process's stdin was ended (the client's EOF reached it). */
  stdinEnded: boolean;
  detached: boolean;
  /** Everything written to the process's stdin. */
  stdinData: Buffer[];
  /** Makes the process exit now with this code (output ends first). */
  exit(code: number): void;
  /** Output from the process, for attach tests. */
  write(stream: "stdout" | "stderr", data: string): void;
  exited: Promise<ProcessExit>;
}

function deferred<T>(): { promise: Promise<T>; resolve(v: T): void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * Exec programs, by cmd[0]:
 *  - `echo [code]`: copies stdin to stdout; exits with `code` (default 0) at stdin EOF.
 *  - `print OUT ERR code`: writes OUT to stdout and ERR to stderr, exits with `code`.
 *  - `wait`: does nothing until exit() or detach (detach exits it with 137, as a kill would).
 *  - `fail`: exec itself fails (the container is not running).
 * Attach joins a process that only does what the test tells it through `write` and `exit`.
 */
export class FakeBackend implements StreamingBackend {
  readonly processes: FakeProcess[] = [];
  /** Every port-forward connection made, for cleanup and assertions. */
  readonly connections: net.Socket[] = [];
  private waiters: Array<{ index: number; resolve(p: FakeProcess): void }> = [];

  /** The next process started (or the one already started if `index` names it). */
  nextProcess(index = this.processes.length): Promise<FakeProcess> {
    const p = this.processes[index];
    if (p) return Promise.resolve(p);
    return new Promise((resolve) => this.waiters.push({ index, resolve }));
  }

  async exec(params: ExecParams): Promise<ProcessStreams> {
    if (params.cmd[0] === "fail") throw new FailedPreconditionError(`container ${params.containerId} is not running`);
    const { proc, streams } = this.start("exec", params);
    const [program, ...args] = params.cmd;
    if (program === "echo") {
      const code = Number(args[0] ?? 0);
      streams.stdin?.on("data", (chunk: Buffer) => proc.write("stdout", chunk.toString("latin1")));
      streams.stdin?.on("finish", () => proc.exit(code));
    } else if (program === "print") {
      setImmediate(() => {
        if (args[0]) proc.write("stdout", args[0]);
        if (args[1]) proc.write("stderr", args[1]);
        proc.exit(Number(args[2] ?? 0));
      });
    }
    return streams;
  }

  async attach(params: AttachParams): Promise<ProcessStreams> {
    return this.start("attach", params).streams;
  }

  portForward(_podSandboxId: string, port: number): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const conn = net.connect({ host: "127.0.0.1", port });
      conn.once("connect", () => {
        conn.off("error", reject);
        this.connections.push(conn);
        resolve(conn);
      });
      conn.once("error", reject);
    });
  }

  private start(kind: "exec" | "attach", params: ExecParams | AttachParams): { proc: FakeProcess; streams: ProcessStreams } {
    const stdout = params.stdout ? new PassThrough() : undefined;
    const stderr = params.stderr && !params.tty ? new PassThrough() : undefined;
    const stdin = params.stdin ? new PassThrough() : undefined;
    const exit = deferred<ProcessExit>();
    let exitedAlready = false;
    const proc: FakeProcess = {
      kind,
      params,
      resizes: [],
      stdinEnded: false,
      detached: false,
      stdinData: [],
      exited: exit.promise,
      write(stream, data) {
        const to = stream === "stdout" ? stdout : stderr;
        if (to && !to.writableEnded) to.write(Buffer.from(data, "latin1"));
      },
      exit(code) {
        if (exitedAlready) return;
        exitedAlready = true;
        stdout?.end();
        stderr?.end();
        exit.resolve({ exitCode: code });
      },
    };
    stdin?.on("data", (chunk: Buffer) => proc.stdinData.push(chunk));
    stdin?.on("finish", () => (proc.stdinEnded = true));
    this.processes.push(proc);
    const index = this.processes.length - 1;
    for (const w of this.waiters.filter((x) => x.index === index)) w.resolve(proc);
    this.waiters = this.waiters.filter((x) => x.index !== index);
    const streams: ProcessStreams = {
      ...(stdin ? { stdin } : {}),
      ...(stdout ? { stdout } : {}),
      ...(stderr ? { stderr } : {}),
      resize: async (size) => {
        proc.resizes.push(size);
      },
      exited: exit.promise,
      detach: () => {
        proc.detached = true;
        if (kind === "exec") proc.exit(137);
        else {
          stdout?.end();
          stderr?.end();
        }
      },
    };
    return { proc, streams };
  }

  /** Drops every port-forward connection still open. */
  destroyConnections(): void {
    for (const c of this.connections) c.destroy();
  }
}

/** A TCP echo server on 127.0.0.1 (it half-closes after the client does). */
export async function echoServer(): Promise<{ port: number; server: net.Server; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.once("close", () => sockets.delete(socket));
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
