// Attach: a client joins a running container's own stdio. Output is teed from the log pump
// (the log keeps every byte; an attached client gets a copy), stdin goes into the same FIFO
// writer podshim holds for the container's life.
import type { Socket } from "node:net";
import { PassThrough, Writable } from "node:stream";
import type { ContainerLog } from "../container-logs/container-log.js";
import type { ProcessExit, ProcessStreams, TerminalSize } from "../streaming/backend.js";

/** A client that reads slower than the container writes loses output past this much. */
const MAX_PENDING_OUTPUT = 4 * 1024 * 1024;

export interface AttachTarget {
  log: ContainerLog;
  /** podshim's writer of the container's stdin FIFO; absent when the container has no stdin. */
  stdin?: Socket;
  tty: boolean;
  /** stdin_once: the container's stdin closes when the first attached client's does. */
  stdinOnce: boolean;
  /** Closes the container's stdin for good (CloseIO on its process). */
  closeStdin(): Promise<void>;
  resize(size: TerminalSize): Promise<void>;
  exited: Promise<ProcessExit>;
}

export function attachTo(target: AttachTarget, want: { stdin: boolean; stdout: boolean; stderr: boolean }): ProcessStreams {
  const stdout = want.stdout ? new PassThrough() : undefined;
  // With a terminal there is one stream, reported as stdout.
  const stderr = want.stderr && !target.tty ? new PassThrough() : undefined;
  for (const s of [stdout, stderr]) s?.on("error", () => undefined);
  const forward = (to: PassThrough | undefined, chunk: Buffer): void => {
    // Never slow the container (or its log) down for a client: past the bound, its copy drops.
    if (!to || to.destroyed || to.writableLength > MAX_PENDING_OUTPUT) return;
    to.write(chunk);
  };
  const unsubscribe = target.log.onOutput((stream, chunk) => forward(stream === "stderr" ? stderr : stdout, chunk));

  let stdin: Writable | undefined;
  if (want.stdin && target.stdin) {
    const fifo = target.stdin;
    stdin = new Writable({
      write(chunk: Buffer, _enc, done) {
        if (fifo.destroyed) return done();
        if (fifo.write(chunk)) done();
        else fifo.once("drain", () => done());
      },
      final(done) {
        // Only a stdin_once container's stdin ends with its client; for the others it stays open
        // for the next client, and this one keeps receiving output (what it typed last is
        // still being answered) until the container exits or it hangs up.
        if (target.stdinOnce) target.closeStdin().then(() => done(), () => done());
        else done();
      },
    });
  }

  let detached = false;
  const detach = (): void => {
    if (detached) return;
    detached = true;
    unsubscribe();
    stdout?.end();
    stderr?.end();
  };
  // The container's end ends the session: its last output has been teed by then.
  const exited = target.exited.then((exit) => {
    detach();
    return exit;
  });
  return {
    ...(stdin ? { stdin } : {}),
    ...(stdout ? { stdout } : {}),
    ...(stderr ? { stderr } : {}),
    resize: (size: TerminalSize) => (target.tty ? target.resize(size) : Promise.resolve()),
    exited,
    detach,
  };
}
