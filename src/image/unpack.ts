import { createHash, randomBytes } from "node:crypto";
import type { ContainerdClient } from "../containerd/client.js";
import { applyLayer } from "../containerd/diff.js";
import type { Snapshots } from "../containerd/snapshots.js";
import { InternalError, isAlreadyExists } from "../errors/errors.js";
import type { Descriptor } from "../distribution/descriptor.js";

/**
 * The chain IDs of a layer stack (OCI image spec): the first is the first diff ID, each next
 * one is sha256 of "<previous chain ID> <diff ID>". A snapshot named by a chain ID holds
 * exactly the filesystem of the layers up to it, so images sharing a base share snapshots.
 */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const [i, diffId] of diffIds.entries()) {
    out.push(i === 0 ? diffId : `sha256:${createHash("sha256").update(`${out[i - 1]} ${diffId}`).digest("hex")}`);
  }
  return out;
}

export interface UnpackOptions {
  lease: string;
  signal?: AbortSignal;
  /** Resolves when layer i's blob is in the content store, so unpacking can follow downloads. */
  available?: (i: number) => Promise<void>;
}

/**
 * Makes the image's layers into committed snapshots named by chain ID, skipping those that
 * exist. Each layer is applied on an active snapshot that is committed only after the
 * applied diff ID matched the config's; a failure removes the active snapshot.
 * Returns the top chain ID (the rootfs parent of the image's containers).
 */
export async function unpackLayers(client: ContainerdClient, snapshots: Snapshots, layers: readonly Descriptor[], diffIds: readonly string[], opts: UnpackOptions): Promise<string> {
  const chain = chainIds(diffIds);
  const call = { lease: opts.lease, ...(opts.signal ? { signal: opts.signal } : {}) };
  for (const [i, layer] of layers.entries()) {
    const name = chain[i]!;
    // The snapshot to unpack into is looked up and prepared while the layer downloads.
    if (await snapshots.stat(name, call)) continue;
    const key = `extract-${randomBytes(6).toString("hex")}-${name}`;
    const parent = i === 0 ? "" : chain[i - 1]!;
    try {
      const mounts = await snapshots.prepare(key, parent, {}, call);
      await opts.available?.(i);
      const applied = await applyLayer(client, layer, mounts, call);
      if (applied !== diffIds[i]) {
        throw new InternalError(`layer ${layer.digest} unpacked to ${applied}, but the image config says its diff ID is ${diffIds[i]}`);
      }
      try {
        await snapshots.commit(name, key, {}, call);
      } catch (err) {
        // Another unpack of the same layer committed first: its snapshot is as good as ours.
        if (!isAlreadyExists(err)) throw err;
        await snapshots.remove(key, { lease: opts.lease });
      }
    } catch (err) {
      await snapshots.remove(key, { lease: opts.lease }).catch(() => undefined);
      throw err;
    }
  }
  return chain[chain.length - 1]!;
}
