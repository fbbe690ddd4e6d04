// ListImages: every image; with a filter naming an image, just that one (or none).
import { ListImagesResponse, type ListImagesRequest } from "../gen/cri/runtime/v1/api.js";
import type { UnaryRpc } from "../server/boundary.js";
import type { CriDeps } from "./deps.js";
import { toCriImage } from "./image-format.js";

export function listImages(deps: CriDeps): UnaryRpc<ListImagesRequest, ListImagesResponse> {
  return async (req) => {
    const wanted = req.filter?.image?.image ?? "";
    const entries = wanted === "" ? deps.images.list() : [deps.images.status(wanted)].filter((e) => e !== undefined);
    return ListImagesResponse.fromPartial({ images: entries.map(toCriImage) });
  };
}
