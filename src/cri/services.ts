import type { Handlers } from "../server/boundary.js";
import type { CriDeps } from "./deps.js";
import { imageFsInfo } from "./image-fs-info.js";
import { listImages } from "./image-list.js";
import { pullImage } from "./image-pull.js";
import { removeImage } from "./image-remove.js";
import { imageStatus } from "./image-status.js";
import { runtimeConfig } from "./runtime-config.js";
import { status } from "./status.js";
import { updateRuntimeConfig } from "./update-runtime-config.js";
import { version } from "./version.js";

/** RuntimeService handlers by RPC name. What is missing here answers UNIMPLEMENTED. */
export function runtimeServiceHandlers(deps: CriDeps): Partial<Handlers> {
  return {
    unary: {
      Version: version(),
      Status: status(deps),
      RuntimeConfig: runtimeConfig(deps),
      UpdateRuntimeConfig: updateRuntimeConfig(deps),
    },
  };
}

/** ImageService handlers by RPC name. */
export function imageServiceHandlers(deps: CriDeps): Partial<Handlers> {
  return {
    unary: {
      PullImage: pullImage(deps),
      ImageStatus: imageStatus(deps),
      ListImages: listImages(deps),
      RemoveImage: removeImage(deps),
      ImageFsInfo: imageFsInfo(deps),
    },
  };
}
