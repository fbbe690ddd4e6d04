// RunPodSandbox: a pause container holding the pod's namespaces, a pinned netns wired by CNI.
// The same pod identity (name, namespace, uid, attempt) twice is ALREADY_EXISTS while the
// first sandbox exists; an unknown runtime handler is INVALID_ARGUMENT; a CNI failure comes
// back with the plugin's own message and leaves nothing behind.
import { RunPodSandboxResponse, type RunPodSandboxRequest } from "../gen/cri/runtime/v1/api.js";
import { InvalidArgumentError } from "../errors/errors.js";
import type { UnaryRpc } from "../server/boundary.js";
import type { CriDeps } from "./deps.js";

export function runPodSandbox(deps: CriDeps): UnaryRpc<RunPodSandboxRequest, RunPodSandboxResponse> {
  return async (req) => {
    if (!req.config) throw new InvalidArgumentError("RunPodSandbox: config is required");
    const rec = await deps.sandboxes.run(req.config, req.runtimeHandler);
    return RunPodSandboxResponse.fromPartial({ podSandboxId: rec.id });
  };
}
