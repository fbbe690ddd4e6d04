// ListContainerStats and StreamContainerStats: every container matching the filter (id
// prefix, pod sandbox id prefix, label selector), running or not. Served from cgroupfs and a
// cached writable layer usage: no containerd round trip per container. An id that matches
// nothing gives an empty list.
import { ContainerStats, ListContainerStatsResponse, type ListContainerStatsRequest, type StreamContainerStatsRequest } from "../gen/cri/runtime/v1/api.js";
import type { StreamRpc, UnaryRpc } from "../rpc/handlers.js";
import type { PreEncoded } from "../rpc/pre-encoded.js";
import type { StatsDeps } from "../stats/types.js";
import { sendListInBatches } from "./stream-list.js";

export function listContainerStats(deps: StatsDeps): UnaryRpc<ListContainerStatsRequest, ListContainerStatsResponse> {
  return async (req) => ListContainerStatsResponse.fromPartial({ stats: await deps.stats.listContainerStats(req.filter) });
}

export function streamContainerStats(deps: StatsDeps): StreamRpc<StreamContainerStatsRequest, PreEncoded> {
  // StreamContainerStatsResponse.container_stats = 1
  return async (req, send) => sendListInBatches(await deps.stats.listContainerStats(req.filter), (s) => ContainerStats.encode(s).finish(), 1, send);
}
