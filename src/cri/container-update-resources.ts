// UpdateContainerResources: new cgroup limits applied to the running task and kept for the
// container's status; an exited container is FAILED_PRECONDITION, unknown NOT_FOUND.
import { UpdateContainerResourcesResponse, type UpdateContainerResourcesRequest } from "../gen/cri/runtime/v1/api.js";
import { InvalidArgumentError } from "../errors/errors.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";

export function updateContainerResources(deps: CriDeps): UnaryRpc<UpdateContainerResourcesRequest, UpdateContainerResourcesResponse> {
  return async (req) => {
    if (!req.containerId) throw new InvalidArgumentError("UpdateContainerResources: container_id is required");
    if (!req.linux) throw new InvalidArgumentError("UpdateContainerResources: linux resources are required");
    await deps.containers.updateResources(req.containerId, req.linux);
    return UpdateContainerResourcesResponse.fromPartial({});
  };
}
