// ListImages and StreamImages: every image; with a filter naming an image, just that one (or
// none).
import { Image, ListImagesResponse, type ImageFilter, type ListImagesRequest, type StreamImagesRequest } from "../gen/cri/runtime/v1/api.js";
import type { StreamRpc, UnaryRpc } from "../rpc/handlers.js";
import type { PreEncoded } from "../rpc/pre-encoded.js";
import type { CriDeps } from "./deps.js";
import { toCriImage } from "./image-format.js";
import { sendListInBatches } from "./stream-list.js";

function selected(deps: CriDeps, filter: ImageFilter | undefined) {
  const wanted = filter?.image?.image ?? "";
  const entries = wanted === "" ? deps.images.list() : [deps.images.status(wanted)].filter((e) => e !== undefined);
  return entries.map(toCriImage);
}

export function listImages(deps: CriDeps): UnaryRpc<ListImagesRequest, ListImagesResponse> {
  return async (req) => ListImagesResponse.fromPartial({ images: selected(deps, req.filter) });
}

export function streamImages(deps: CriDeps): StreamRpc<StreamImagesRequest, PreEncoded> {
  // StreamImagesResponse.images = 1
  return async (req, send) => sendListInBatches(selected(deps, req.filter), (i) => Image.encode(i).finish(), 1, send);
}
