// ImageStatus: an unknown image is not an error: the answer simply has no image (the kubelet
// pulls on that). verbose adds the image config and where the image came from, as JSON.
import { ImageStatusResponse, type ImageStatusRequest } from "../gen/cri/runtime/v1/api.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";
import { requireImage, toCriImage } from "./image-format.js";

export function imageStatus(deps: CriDeps): UnaryRpc<ImageStatusRequest, ImageStatusResponse> {
  return async (req) => {
    const entry = deps.images.status(requireImage(req.image, "ImageStatus"));
    if (!entry) return ImageStatusResponse.fromPartial({});
    const info: Record<string, string> = {};
    if (req.verbose) {
      info.info = JSON.stringify({
        chainID: entry.chainId,
        target: entry.target,
        manifest: entry.manifest,
        layers: entry.layers,
        imageSpec: entry.config,
      });
    }
    return ImageStatusResponse.fromPartial({ image: toCriImage(entry), info });
  };
}
