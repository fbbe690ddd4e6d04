// RunPodSandbox: a pause container holding the pod's namespaces, a pinned netns wired by CNI.
// The same pod identity (name, namespace, uid, attempt) as a call under way waits for it and
// answers its id, and as a ready sandbox answers that sandbox's id; while a NOTREADY one holds
// the identity it is ALREADY_EXISTS; an unknown runtime handler is INVALID_ARGUMENT; a CNI failure comes
// back with the plugin's own message and leaves nothing behind.
import { RunPodSandboxResponse, type RunPodSandboxRequest } from "../gen/cri/runtime/v1/api.js";
import { InvalidArgumentError } from "../errors/errors.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";

export function runPodSandbox(deps: CriDeps): UnaryRpc<RunPodSandboxRequest, RunPodSandboxResponse> {
  return async (req) => {
    if (!req.config) throw new InvalidArgumentError("RunPodSandbox: config is required");
    const rec = await deps.pods.run(req.config, req.runtimeHandler);
    return RunPodSandboxResponse.fromPartial({ podSandboxId: rec.id });
  };
}
