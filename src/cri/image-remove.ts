// RemoveImage: by tag, digest or ID. One of several tags only untags; the last tag, a digest
// or the ID removes the image. Removing an image that is not there succeeds (idempotent).
import { RemoveImageResponse, type RemoveImageRequest } from "../gen/cri/runtime/v1/api.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";
import { requireImage } from "./image-format.js";

export function removeImage(deps: CriDeps): UnaryRpc<RemoveImageRequest, RemoveImageResponse> {
  return async (req) => {
    await deps.images.remove(requireImage(req.image, "RemoveImage"));
    return RemoveImageResponse.fromPartial({});
  };
}
