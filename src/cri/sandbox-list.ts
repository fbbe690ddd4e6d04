// ListPodSandbox and StreamPodSandboxes: from the index, never a containerd round trip.
// Filters: id (full or prefix), state, and a label selector; all given filters must match.
// Each sandbox's encoded entry is reused until its state changes.
import { PodSandbox, type ListPodSandboxRequest, type PodSandboxFilter, type StreamPodSandboxesRequest } from "../gen/cri/runtime/v1/api.js";
import type { SandboxRecord } from "../sandbox/sandbox-store.js";
import type { StreamRpc, UnaryRpc } from "../rpc/handlers.js";
import { PreEncoded, type Encoded } from "../rpc/pre-encoded.js";
import type { CriDeps } from "./deps.js";
import { EncodedItems, LastAnswer } from "./encoded-items.js";
import { criSandboxState, matchesLabels, toCriSandbox } from "./sandbox-format.js";
import { sendInBatches } from "./stream-list.js";

// ListPodSandboxResponse.items and StreamPodSandboxesResponse.pod_sandboxes
const SANDBOXES_FIELD = 1;

function selected(deps: CriDeps, items: EncodedItems<SandboxRecord>, f: PodSandboxFilter | undefined): Encoded[] {
  return deps.sandboxes.list().filter((rec) =>
    (!f?.id || rec.id.startsWith(f.id)) &&
    (f?.state === undefined || criSandboxState(rec) === f.state.state) &&
    matchesLabels(rec.config.labels, f?.labelSelector)).map((rec) => items.of(rec));
}

export function sandboxListRpcs(deps: CriDeps): { list: UnaryRpc<ListPodSandboxRequest, PreEncoded>; stream: StreamRpc<StreamPodSandboxesRequest, PreEncoded> } {
  const items = new EncodedItems<SandboxRecord>((rec) => PodSandbox.encode(toCriSandbox(rec)).finish(), criSandboxState);
  const last = new LastAnswer(SANDBOXES_FIELD);
  return {
    list: async (req) => new PreEncoded(last.of(selected(deps, items, req.filter))),
    stream: (req, send) => sendInBatches(selected(deps, items, req.filter), SANDBOXES_FIELD, send),
  };
}
