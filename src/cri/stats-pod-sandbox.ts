// PodSandboxStats: the pod cgroup's CPU, memory and task count, the pod's network interfaces
// and the stats of each of its containers. Unknown (or an ambiguous prefix) is NOT_FOUND; a pod
// that is not ready answers with what is left to measure (no network).
import { PodSandboxStatsResponse, type PodSandboxStatsRequest } from "../gen/cri/runtime/v1/api.js";
import { InvalidArgumentError } from "../errors/errors.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { StatsDeps } from "../stats/types.js";

export function podSandboxStats(deps: StatsDeps): UnaryRpc<PodSandboxStatsRequest, PodSandboxStatsResponse> {
  return async (req) => {
    if (!req.podSandboxId) throw new InvalidArgumentError("PodSandboxStats: pod_sandbox_id is required");
    return PodSandboxStatsResponse.fromPartial({ stats: await deps.stats.podSandboxStats(req.podSandboxId) });
  };
}
