// ListPodSandboxStats and StreamPodSandboxStats: PodSandboxStats of every pod matching the
// filter (id prefix, label selector), ready or not.
import { ListPodSandboxStatsResponse, PodSandboxStats, type ListPodSandboxStatsRequest, type StreamPodSandboxStatsRequest } from "../gen/cri/runtime/v1/api.js";
import type { StreamRpc, UnaryRpc } from "../rpc/handlers.js";
import type { PreEncoded } from "../rpc/pre-encoded.js";
import type { StatsDeps } from "../stats/types.js";
import { sendListInBatches } from "./stream-list.js";

export function listPodSandboxStats(deps: StatsDeps): UnaryRpc<ListPodSandboxStatsRequest, ListPodSandboxStatsResponse> {
  return async (req) => ListPodSandboxStatsResponse.fromPartial({ stats: await deps.stats.listPodSandboxStats(req.filter) });
}

export function streamPodSandboxStats(deps: StatsDeps): StreamRpc<StreamPodSandboxStatsRequest, PreEncoded> {
  // StreamPodSandboxStatsResponse.pod_sandbox_stats = 1
  return async (req, send) => sendListInBatches(await deps.stats.listPodSandboxStats(req.filter), (s) => PodSandboxStats.encode(s).finish(), 1, send);
}
