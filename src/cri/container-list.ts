// ListContainers: from the index. Filters: id (full or prefix), state, pod sandbox id (full
// or prefix) and a label selector; all given filters must match.
import { ListContainersResponse, type ListContainersRequest } from "../gen/cri/runtime/v1/api.js";
import type { UnaryRpc } from "../server/boundary.js";
import type { CriDeps } from "./deps.js";
import { criContainerState, toCriContainer } from "./container-format.js";
import { matchesLabels } from "./sandbox-format.js";

export function listContainers(deps: CriDeps): UnaryRpc<ListContainersRequest, ListContainersResponse> {
  return async (req) => {
    const f = req.filter;
    const items = deps.containers.list().filter((rec) =>
      (!f?.id || rec.id.startsWith(f.id)) &&
      (!f?.podSandboxId || rec.sandboxId.startsWith(f.podSandboxId)) &&
      (f?.state === undefined || criContainerState(rec) === f.state.state) &&
      matchesLabels(rec.config.labels, f?.labelSelector));
    return ListContainersResponse.fromPartial({ containers: items.map(toCriContainer) });
  };
}
