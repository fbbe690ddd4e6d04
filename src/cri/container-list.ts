// ListContainers and StreamContainers: from the index. Filters: id (full or prefix), state,
// pod sandbox id (full or prefix) and a label selector; all given filters must match. Each
// container's encoded entry is reused until its state changes.
import { Container, type ContainerFilter, type ListContainersRequest, type StreamContainersRequest } from "../gen/cri/runtime/v1/api.js";
import type { ContainerRecord } from "../container/container-store.js";
import type { StreamRpc, UnaryRpc } from "../rpc/handlers.js";
import { PreEncoded, type Encoded } from "../rpc/pre-encoded.js";
import type { CriDeps } from "./deps.js";
import { criContainerState, toCriContainer } from "./container-format.js";
import { EncodedItems, LastAnswer } from "./encoded-items.js";
import { sendInBatches } from "./stream-list.js";
import { matchesLabels } from "./sandbox-format.js";

// ListContainersResponse.containers and StreamContainersResponse.containers
const CONTAINERS_FIELD = 1;

function selected(deps: CriDeps, items: EncodedItems<ContainerRecord>, f: ContainerFilter | undefined): Encoded[] {
  return deps.containers.list().filter((rec) =>
    (!f?.id || rec.id.startsWith(f.id)) &&
    (!f?.podSandboxId || rec.sandboxId.startsWith(f.podSandboxId)) &&
    (f?.state === undefined || criContainerState(rec) === f.state.state) &&
    matchesLabels(rec.config.labels, f?.labelSelector)).map((rec) => items.of(rec));
}

export function containerListRpcs(deps: CriDeps): { list: UnaryRpc<ListContainersRequest, PreEncoded>; stream: StreamRpc<StreamContainersRequest, PreEncoded> } {
  const items = new EncodedItems<ContainerRecord>((rec) => Container.encode(toCriContainer(rec)).finish(), criContainerState);
  const last = new LastAnswer(CONTAINERS_FIELD);
  return {
    list: async (req) => new PreEncoded(last.of(selected(deps, items, req.filter))),
    stream: (req, send) => sendInBatches(selected(deps, items, req.filter), CONTAINERS_FIELD, send),
  };
}
