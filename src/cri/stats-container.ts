// ContainerStats: one container's CPU, memory, swap and writable layer. Unknown (or an
// ambiguous prefix) is NOT_FOUND; a container that is not running answers with its attributes
// and writable layer only, as containerd does.
import { ContainerStatsResponse, type ContainerStatsRequest } from "../gen/cri/runtime/v1/api.js";
import { InvalidArgumentError } from "../errors/errors.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { StatsDeps } from "../stats/types.js";

export function containerStats(deps: StatsDeps): UnaryRpc<ContainerStatsRequest, ContainerStatsResponse> {
  return async (req) => {
    if (!req.containerId) throw new InvalidArgumentError("ContainerStats: container_id is required");
    return ContainerStatsResponse.fromPartial({ stats: await deps.stats.containerStats(req.containerId) });
  };
}
