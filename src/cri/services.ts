import type { Handlers } from "../server/boundary.js";
import type { CriDeps } from "./deps.js";
import { imageFsInfo } from "./image-fs-info.js";
import { listImages } from "./image-list.js";
import { pullImage } from "./image-pull.js";
import { removeImage } from "./image-remove.js";
import { imageStatus } from "./image-status.js";
import { listPodSandbox } from "./sandbox-list.js";
import { removePodSandbox } from "./sandbox-remove.js";
import { runPodSandbox } from "./sandbox-run.js";
import { podSandboxStatus } from "./sandbox-status.js";
import { stopPodSandbox } from "./sandbox-stop.js";
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
      RunPodSandbox: runPodSandbox(deps),
      StopPodSandbox: stopPodSandbox(deps),
      RemovePodSandbox: removePodSandbox(deps),
      PodSandboxStatus: podSandboxStatus(deps),
      ListPodSandbox: listPodSandbox(deps),
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
