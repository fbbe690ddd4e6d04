import { randomBytes } from "node:crypto";
import { LeasesService } from "../gen/containerd/services/leases/v1/leases.js";
import { isNotFound, messageOf } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import { retryLater } from "../util/cleanup.js";
import { isTransient } from "../util/retry.js";
import type { ContainerdClient } from "./client.js";

// containerd's garbage collector deletes a lease by itself after this time, so a podshim that
// dies mid-pull does not pin half-downloaded content forever.
const EXPIRE_LABEL = "containerd.io/gc.expire";

/**
 * Runs `work` under a fresh lease: everything it writes into content and snapshots survives
 * garbage collection until the lease goes. The lease is deleted afterwards either way, by
 * default with a synchronous collection, so a failed pull leaves nothing that no image
 * refers to. `background` does not wait for the deletion.
 */
export async function withLease<T>(client: ContainerdClient, logger: Logger, purpose: string, expireMs: number, work: (lease: string) => Promise<T>, opts: { syncGc?: boolean; background?: boolean } = {}): Promise<T> {
  // A synchronous collection costs a full GC pass; only pulls need what they leave
  // unreferenced gone by the time they return.
  const sync = opts.syncGc ?? true;
  const id = `podshim-${purpose}-${randomBytes(6).toString("hex")}`;
  const deleteLater = () => retryLater(logger, [{ name: `delete lease ${id}`, undo: () => deleteLease(client, id) }]);
  try {
    await client.call(LeasesService.create, {
      id,
      labels: { [EXPIRE_LABEL]: new Date(Date.now() + expireMs).toISOString() },
    });
  } catch (err) {
    // The answer may be what was lost (containerd restarting): make sure no lease stays.
    if (isTransient(err)) deleteLater();
    throw err;
  }
  const release = async (): Promise<void> => {
    try {
      await client.call(LeasesService.delete, { id, sync }, { timeoutMs: 120_000 });
    } catch (err) {
      if (isNotFound(err)) return;
      // Not the caller's failure: tried again in the background (and it expires by itself).
      logger.warn({ lease: id, err: messageOf(err) }, "could not delete lease; retrying in the background");
      deleteLater();
    }
  };
  try {
    return await work(id);
  } finally {
    // Once what the work made is referenced by a record of its own, nobody needs to wait for
    // the lease to go.
    if (opts.background) void release();
    else await release();
  }
}

/** The ids of every lease in podshim's namespace. */
export async function listLeases(client: ContainerdClient): Promise<string[]> {
  return (await client.call(LeasesService.list, { filters: [] }, { timeoutMs: 30_000 })).leases.map((l) => l.id);
}

/** Deletes a lease without waiting for a collection; one already gone is not an error. */
export async function deleteLease(client: ContainerdClient, id: string): Promise<void> {
  try {
    await client.call(LeasesService.delete, { id, sync: false }, { timeoutMs: 30_000 });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
