// What the streaming server needs from the rest of podshim: processes to talk to and pod ports
// to connect to. The container service implements it; the streaming server knows nothing of
// containerd, FIFOs or network namespaces.
import type { Duplex, Readable, Writable } from "node:stream";

/** A terminal size, in character cells. */
export interface TerminalSize {
  width: number;
  height: number;
}

/** How a process (an exec, or a container's own process for attach) ended. */
export interface ProcessExit {
  exitCode: number;
}

/**
 * The stdio of a process the client is connected to. Streams are present only for what the
 * request asked for (stdin only with stdin, stderr never with a TTY).
 */
export interface ProcessStreams {
  /** The process's stdin; end() closes it (the process sees EOF). */
  stdin?: Writable;
  stdout?: Readable;
  stderr?: Readable;
  /** Resizes the process's terminal (TTY only; a no-op otherwise). */
  resize(size: TerminalSize): Promise<void>;
  /**
   * Exec: resolves when the process exits and its output has been delivered to stdout/stderr
   * (they end first). Attach: resolves when the container exits, or never if it outlives the
   * session.
   */
  exited: Promise<ProcessExit>;
  /** The client went away: exec kills its process, attach just detaches. Idempotent. */
  detach(): void;
}

export interface ExecParams {
  containerId: string;
  cmd: string[];
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

export interface AttachParams {
  containerId: string;
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

export interface StreamingBackend {
  /** Starts `cmd` in a running container. Throws typed errors (NotFound, FailedPrecondition). */
  exec(params: ExecParams): Promise<ProcessStreams>;
  /** Joins a running container's own stdio. */
  attach(params: AttachParams): Promise<ProcessStreams>;
  /** A TCP connection to `port` on 127.0.0.1 inside the pod's network namespace. */
  portForward(podSandboxId: string, port: number): Promise<Duplex>;
}
