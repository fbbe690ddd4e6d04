// ListPodSandboxMetrics and StreamPodSandboxMetrics: per pod, the pod cgroup's and network's
// metrics, and per container its cgroup's and writable layer's, each with label values in the
// order the descriptors give.
import { ListPodSandboxMetricsResponse, PodSandboxMetrics, type ListPodSandboxMetricsRequest, type StreamPodSandboxMetricsRequest } from "../gen/cri/runtime/v1/api.js";
import type { StreamRpc, UnaryRpc } from "../rpc/handlers.js";
import type { PreEncoded } from "../rpc/pre-encoded.js";
import type { StatsDeps } from "../stats/types.js";
import { sendListInBatches } from "./stream-list.js";

export function listPodSandboxMetrics(deps: StatsDeps): UnaryRpc<ListPodSandboxMetricsRequest, ListPodSandboxMetricsResponse> {
  return async () => ListPodSandboxMetricsResponse.fromPartial({ podMetrics: await deps.stats.podSandboxMetrics() });
}

export function streamPodSandboxMetrics(deps: StatsDeps): StreamRpc<StreamPodSandboxMetricsRequest, PreEncoded> {
  // StreamPodSandboxMetricsResponse.pod_sandbox_metrics = 1
  return async (_req, send) => sendListInBatches(await deps.stats.podSandboxMetrics(), (m) => PodSandboxMetrics.encode(m).finish(), 1, send);
}
