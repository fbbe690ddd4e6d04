// Named pipes for container stdio, read and written without tying up libuv's thread pool.
//
// fs.createReadStream on a FIFO parks a pool thread in read(2) until data or EOF comes, and
// the pool has 4 threads: a few quiet containers would freeze every fs call in the daemon.
// Instead each FIFO is opened non-blocking and handed to net.Socket, which libuv polls with
// epoll on the event loop thread, like any pipe.
//
// What the other end does (containerd's shim): it opens the write end of stdout/stderr when
// the task is created, so our read end must already be open by then; it also holds a read
// end of its own, so while podshim is down the container's writes block once the pipe
// buffer (64 KiB) fills instead of failing with EPIPE; it closes its write end when the
// process's output ends, which is the EOF we see.
//
// The sockets own their fds and close them in libuv. That is only sound on the main thread:
// a worker thread's Node environment records every fd that fs.open returns and closes those
// numbers again when the worker exits, by then possibly someone else's. podshim does all its
// work on the main thread; tests should run in a forks pool for the same reason.

import { open as openCb, close as closeCb, constants } from "node:fs";
import { Socket } from "node:net";
import { InternalError, messageOf } from "../errors/errors.js";
import { runProgram } from "../util/exec.js";
import { removeFile } from "../util/remove.js";

/**
 * Creates a FIFO at `path` with exactly `mode` (not filtered by the umask). Whatever was
 * there is removed first: a FIFO left by an earlier attempt (or a crashed podshim) must not
 * be reused, as a stale writer could still hold it.
 */
export async function makeFifo(path: string, mode = 0o600): Promise<void> {
  await makeFifos([path], mode);
}

/** Several FIFOs with one helper process: a spawn costs milliseconds, more under load. */
export async function makeFifos(paths: readonly string[], mode = 0o600): Promise<void> {
  if (paths.length === 0) return;
  await Promise.all(paths.map(removeFile));
  // Node has no mkfifo(3); coreutils' program is the smallest helper there is.
  const res = await runProgram("mkfifo", ["-m", (mode & 0o7777).toString(8), "--", ...paths], {
    timeoutMs: 10_000,
    what: `mkfifo ${paths.join(" ")}`,
  });
  if (res.code !== 0) throw new InternalError(`cannot create FIFOs ${paths.join(", ")}: ${res.stderr.trim() || `mkfifo exited with ${res.code ?? res.signal}`}`);
}

/**
 * Opens a raw fd: the callback API hands over a plain number that the socket then owns.
 * A fs.promises FileHandle would keep owning it and close it on garbage collection, under
 * the socket's feet. With O_NONBLOCK the open itself never waits for the other end.
 */
function openFd(path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => {
    openCb(path, flags, (err, fd) => (err ? reject(new InternalError(`cannot open FIFO ${path}: ${err.message}`, { cause: err })) : resolve(fd)));
  });
}

function socketOnFd(path: string, fd: number, dir: "read" | "write"): Socket {
  try {
    return new Socket({ fd, readable: dir === "read", writable: dir === "write" });
  } catch (err) {
    // net.Socket refuses an fd that is not a pipe or socket (ERR_INVALID_FD_TYPE): a regular
    // file sitting where the FIFO should be.
    closeCb(fd, () => undefined);
    throw new InternalError(`cannot use ${path} as a FIFO: ${messageOf(err)}`, { cause: err });
  }
}

/**
 * The read end of a FIFO as a readable socket. The open succeeds with no writer yet; the
 * socket then waits without reading. It ends when a writer has connected and every writer
 * has closed: before any writer came, Linux reports no hang-up, so an early open does not
 * see a false EOF. (The flip side: a FIFO whose only writer came and went before this open
 * never ends; do not wait for its EOF.) Destroying the socket closes the fd.
 */
export async function openFifoReader(path: string): Promise<Socket> {
  const fd = await openFd(path, constants.O_RDONLY | constants.O_NONBLOCK);
  return socketOnFd(path, fd, "read");
}

/**
 * The write end of a FIFO (a container's stdin) as a writable socket. O_RDWR because a
 * non-blocking write-only open fails with ENXIO while no reader exists, and holding a read
 * end ourselves means a reader that comes and goes never turns our writes into EPIPE.
 * Writes that find the pipe full wait in the socket's buffer, not in a thread.
 */
export async function openFifoWriter(path: string): Promise<Socket> {
  const fd = await openFd(path, constants.O_RDWR | constants.O_NONBLOCK);
  return socketOnFd(path, fd, "write");
}
