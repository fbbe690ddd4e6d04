import type { ImageConfig } from "../distribution/manifest.js";
import { isImageId, parseImageRef, refString } from "../distribution/reference.js";
import type { Descriptor } from "../distribution/descriptor.js";

/** One image as podshim knows it: its config digest is its ID; several names may point at it. */
export interface ImageEntry {
  id: string;
  /** What the containerd records point at: the index or the manifest that was pulled. */
  target: Descriptor;
  /** This platform's manifest (the target itself when no index was involved). */
  manifest: Descriptor;
  layers: Descriptor[];
  config: ImageConfig;
  /** The snapshot containers of this image start from. */
  chainId: string;
  /** Bytes in the content store: manifest, config and compressed layers. */
  size: number;
  /** containerd record names: repo:tag, repo@digest and the ID itself. */
  names: Set<string>;
  pinned: boolean;
}

/**
 * The in-memory index of images, a cache of containerd's records (rebuilt from them at
 * start): by ID and by record name. Lookups accept what users type: a reference in any
 * normalisable form, a full ID, a bare hex ID, or an unambiguous ID prefix.
 */
export class ImageStore {
  private readonly byId = new Map<string, ImageEntry>();
  private readonly byName = new Map<string, string>();

  all(): ImageEntry[] {
    return [...this.byId.values()];
  }

  get(id: string): ImageEntry | undefined {
    return this.byId.get(id);
  }

  /** Adds or merges an entry; a name moves from the image it pointed at before. */
  put(entry: ImageEntry): ImageEntry {
    const existing = this.byId.get(entry.id);
    const target = existing ?? entry;
    if (existing) {
      existing.pinned ||= entry.pinned;
      existing.target = entry.target;
    } else {
      this.byId.set(entry.id, entry);
    }
    for (const name of entry.names) {
      const prev = this.byName.get(name);
      if (prev && prev !== entry.id) this.byId.get(prev)?.names.delete(name);
      this.byName.set(name, entry.id);
      target.names.add(name);
    }
    return target;
  }

  /** Forgets a name; the image goes when its last name does. */
  dropName(name: string): void {
    const id = this.byName.get(name);
    if (!id) return;
    this.byName.delete(name);
    const entry = this.byId.get(id);
    if (!entry) return;
    entry.names.delete(name);
    if (entry.names.size === 0) this.byId.delete(id);
  }

  resolve(input: string): ImageEntry | undefined {
    if (isImageId(input)) {
      const id = input.startsWith("sha256:") ? input : `sha256:${input}`;
      return this.byId.get(id);
    }
    try {
      const id = this.byName.get(refString(parseImageRef(input)));
      if (id) return this.byId.get(id);
    } catch {
      // not a reference; maybe an ID prefix
    }
    const prefix = /^(?:sha256:)?([0-9a-f]{3,63})$/.exec(input)?.[1];
    if (!prefix) return undefined;
    const hits = [...this.byId.keys()].filter((id) => id.startsWith(`sha256:${prefix}`));
    return hits.length === 1 ? this.byId.get(hits[0]!) : undefined;
  }
}

/** Splits record names into what CRI calls repo tags and repo digests. */
export function repoTagsAndDigests(entry: ImageEntry): { repoTags: string[]; repoDigests: string[] } {
  const repoTags: string[] = [];
  const repoDigests: string[] = [];
  for (const name of entry.names) {
    if (name === entry.id) continue;
    if (name.includes("@")) repoDigests.push(name);
    else repoTags.push(name);
  }
  return { repoTags: repoTags.sort(), repoDigests: repoDigests.sort() };
}
