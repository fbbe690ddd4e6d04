import { connect } from "node:net";
import { lstat, mkdir, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { FailedPreconditionError } from "../errors/errors.js";

/**
 * Makes the socket path ready to bind: creates its directory, removes a stale socket left
 * by a podshim that died, and refuses when a live server still answers on it (two runtimes
 * on one socket would each think they own the node).
 */
export async function prepareSocketPath(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if (!st.isSocket()) {
    throw new FailedPreconditionError(`--listen ${path} exists and is not a socket; refusing to replace it`);
  }
  if (await answers(path)) {
    throw new FailedPreconditionError(`another server is already listening on ${path} (is podshim running?)`);
  }
  await unlink(path);
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(path);
    const done = (live: boolean) => {
      sock.destroy();
      resolve(live);
    };
    sock.once("connect", () => done(true));
    // ECONNREFUSED: nobody accepts on it any more, the socket is stale.
    sock.once("error", () => done(false));
    sock.setTimeout(2000, () => done(true));
  });
}

/**
 * Removes the socket on shutdown: only the one this process bound (ino), never one another
 * process owns (a second podshim refused at start-up must leave the first one's alone).
 */
export async function removeSocket(path: string, ino: number | undefined): Promise<void> {
  if (ino === undefined) return;
  try {
    const st = await lstat(path);
    if (st.ino !== ino) return;
    await unlink(path);
  } catch {
    // already gone
  }
}
