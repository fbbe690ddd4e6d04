// PullImage: fetch an image into containerd and answer its ID (the config digest), as
// containerd's CRI does. Credentials come from the request's AuthConfig; a malformed
// reference is INVALID_ARGUMENT, a missing image NOT_FOUND, refused credentials
// UNAUTHENTICATED. Pulling what is already there pulls again (the tag may have moved).
import { PullImageResponse, type PullImageRequest } from "../gen/cri/runtime/v1/api.js";
import { credentialsFromAuthConfig } from "../registry/auth.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";
import { requireImage } from "./image-format.js";

export function pullImage(deps: CriDeps): UnaryRpc<PullImageRequest, PullImageResponse> {
  return async (req, ctx) => {
    const image = requireImage(req.image, "PullImage");
    const entry = await deps.images.pull(image, credentialsFromAuthConfig(req.auth), ctx.signal);
    return PullImageResponse.fromPartial({ imageRef: entry.id });
  };
}
