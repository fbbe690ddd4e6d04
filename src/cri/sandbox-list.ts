// ListPodSandbox: from the index, never a containerd round trip. Filters: id (full or
// prefix), state, and a label selector; all given filters must match.
import { ListPodSandboxResponse, type ListPodSandboxRequest } from "../gen/cri/runtime/v1/api.js";
import type { UnaryRpc } from "../server/boundary.js";
import type { CriDeps } from "./deps.js";
import { criSandboxState, matchesLabels, toCriSandbox } from "./sandbox-format.js";

export function listPodSandbox(deps: CriDeps): UnaryRpc<ListPodSandboxRequest, ListPodSandboxResponse> {
  return async (req) => {
    const f = req.filter;
    const items = deps.sandboxes.list().filter((rec) =>
      (!f?.id || rec.id.startsWith(f.id)) &&
      (f?.state === undefined || criSandboxState(rec) === f.state.state) &&
      matchesLabels(rec.config.labels, f?.labelSelector));
    return ListPodSandboxResponse.fromPartial({ items: items.map(toCriSandbox) });
  };
}
