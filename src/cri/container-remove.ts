// RemoveContainer: kills a running container first; the log file stays (the kubelet owns
// it). Idempotent: removing an unknown container succeeds.
import { RemoveContainerResponse, type RemoveContainerRequest } from "../gen/cri/runtime/v1/api.js";
import { InvalidArgumentError } from "../errors/errors.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";

export function removeContainer(deps: CriDeps): UnaryRpc<RemoveContainerRequest, RemoveContainerResponse> {
  return async (req) => {
    if (!req.containerId) throw new InvalidArgumentError("RemoveContainer: container_id is required");
    await deps.containers.remove(req.containerId);
    return RemoveContainerResponse.fromPartial({});
  };
}
