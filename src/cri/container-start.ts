// StartContainer: only a CREATED container starts (else FAILED_PRECONDITION); unknown is
// NOT_FOUND. A start that fails leaves the container EXITED with reason StartError.
import { StartContainerResponse, type StartContainerRequest } from "../gen/cri/runtime/v1/api.js";
import { InvalidArgumentError } from "../errors/errors.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";

export function startContainer(deps: CriDeps): UnaryRpc<StartContainerRequest, StartContainerResponse> {
  return async (req) => {
    if (!req.containerId) throw new InvalidArgumentError("StartContainer: container_id is required");
    await deps.pods.startContainer(req.containerId);
    return StartContainerResponse.fromPartial({});
  };
}
