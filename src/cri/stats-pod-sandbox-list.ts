// ListPodSandboxStats: PodSandboxStats of every pod matching the filter (id prefix, label
// selector), ready or not.
import { ListPodSandboxStatsResponse, type ListPodSandboxStatsRequest } from "../gen/cri/runtime/v1/api.js";
import type { UnaryRpc } from "../server/boundary.js";
import type { StatsDeps } from "../stats/types.js";

export function listPodSandboxStats(deps: StatsDeps): UnaryRpc<ListPodSandboxStatsRequest, ListPodSandboxStatsResponse> {
  return async (req) => ListPodSandboxStatsResponse.fromPartial({ stats: await deps.stats.listPodSandboxStats(req.filter) });
}
