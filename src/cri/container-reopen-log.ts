// ReopenContainerLog: after the kubelet renamed a container's log file, output goes to a new
// file at the same path. A container that is not running is FAILED_PRECONDITION and nothing
// is created; unknown is NOT_FOUND.
import { ReopenContainerLogResponse, type ReopenContainerLogRequest } from "../gen/cri/runtime/v1/api.js";
import { InvalidArgumentError } from "../errors/errors.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";

export function reopenContainerLog(deps: CriDeps): UnaryRpc<ReopenContainerLogRequest, ReopenContainerLogResponse> {
  return async (req) => {
    if (!req.containerId) throw new InvalidArgumentError("ReopenContainerLog: container_id is required");
    await deps.containers.reopenLog(req.containerId);
    return ReopenContainerLogResponse.fromPartial({});
  };
}
