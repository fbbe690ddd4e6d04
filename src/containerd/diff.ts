import { DiffService } from "../gen/containerd/services/diff/v1/diff.js";
import type { Mount } from "../gen/containerd/types/mount.js";
import type { CallOptions, ContainerdClient } from "./client.js";

/**
 * Applies a layer blob from the content store onto mounts (containerd decompresses and
 * untars it with whiteouts). Returns the digest of the uncompressed tar, the layer's diff ID.
 */
export async function applyLayer(client: ContainerdClient, layer: { mediaType: string; digest: string; size: number }, mounts: Mount[], opts: CallOptions = {}): Promise<string> {
  const res = await client.call(DiffService.apply, {
    diff: { mediaType: layer.mediaType, digest: layer.digest, size: BigInt(layer.size), annotations: {} },
    mounts,
    payloads: {},
    syncFs: false,
  }, { timeoutMs: 600_000, ...opts });
  return res.applied?.digest ?? "";
}
