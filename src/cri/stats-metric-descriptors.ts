// ListMetricDescriptors: the cAdvisor-named metrics ListPodSandboxMetrics may send, with their
// help text and label keys. The kubelet asks once, when it builds its /metrics/cadvisor
// collector, and drops any later metric whose name it was not told about.
import { ListMetricDescriptorsResponse, type ListMetricDescriptorsRequest } from "../gen/cri/runtime/v1/api.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { StatsDeps } from "../stats/types.js";

export function listMetricDescriptors(deps: StatsDeps): UnaryRpc<ListMetricDescriptorsRequest, ListMetricDescriptorsResponse> {
  return async () => ListMetricDescriptorsResponse.fromPartial({ descriptors: deps.stats.metricDescriptors() });
}
