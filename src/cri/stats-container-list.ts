// ListContainerStats: every container matching the filter (id prefix, pod sandbox id prefix,
// label selector), running or not. Served from cgroupfs and a cached writable layer usage:
// no containerd round trip per container. An id that matches nothing gives an empty list.
import { ListContainerStatsResponse, type ListContainerStatsRequest } from "../gen/cri/runtime/v1/api.js";
import type { UnaryRpc } from "../server/boundary.js";
import type { StatsDeps } from "../stats/types.js";

export function listContainerStats(deps: StatsDeps): UnaryRpc<ListContainerStatsRequest, ListContainerStatsResponse> {
  return async (req) => ListContainerStatsResponse.fromPartial({ stats: await deps.stats.listContainerStats(req.filter) });
}
