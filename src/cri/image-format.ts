import type { Image } from "../gen/cri/runtime/v1/api.js";
import { repoTagsAndDigests, type ImageEntry } from "../image/image-store.js";
import { InvalidArgumentError } from "../errors/errors.js";

/**
 * The user an image runs as, in CRI terms: a numeric USER (or uid:gid) is a uid, a name is a
 * username, and no USER at all leaves both unset.
 */
export function imageUser(user: string | undefined): { uid?: bigint; username: string } {
  const who = (user ?? "").split(":")[0]!;
  if (who === "") return { username: "" };
  if (/^\d+$/.test(who)) return { uid: BigInt(who), username: "" };
  return { username: who };
}

export function toCriImage(entry: ImageEntry): Image {
  const { repoTags, repoDigests } = repoTagsAndDigests(entry);
  const user = imageUser(entry.config.config?.User);
  return {
    id: entry.id,
    repoTags,
    repoDigests,
    size: BigInt(entry.size),
    uid: user.uid !== undefined ? { value: user.uid } : undefined,
    username: user.username,
    spec: { image: entry.id, annotations: {}, userSpecifiedImage: "", runtimeHandler: "", imageRef: "" },
    pinned: entry.pinned,
  };
}

/** The image a request names; an empty one is the caller's mistake. */
export function requireImage(spec: { image: string } | undefined, rpc: string): string {
  const image = spec?.image?.trim() ?? "";
  if (image === "") throw new InvalidArgumentError(`${rpc}: image is required (for example docker.io/library/busybox:latest)`);
  return image;
}
