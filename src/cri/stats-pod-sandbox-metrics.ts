// ListPodSandboxMetrics: per pod, the pod cgroup's and network's metrics, and per container
// its cgroup's and writable layer's, each with label values in the order the descriptors give.
import { ListPodSandboxMetricsResponse, type ListPodSandboxMetricsRequest } from "../gen/cri/runtime/v1/api.js";
import type { UnaryRpc } from "../server/boundary.js";
import type { StatsDeps } from "../stats/types.js";

export function listPodSandboxMetrics(deps: StatsDeps): UnaryRpc<ListPodSandboxMetricsRequest, ListPodSandboxMetricsResponse> {
  return async () => ListPodSandboxMetricsResponse.fromPartial({ podMetrics: await deps.stats.podSandboxMetrics() });
}
