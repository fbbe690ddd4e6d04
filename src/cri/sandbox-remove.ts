// RemovePodSandbox: removes the pod's containers, its pause container, netns and files,
// stopping what still runs. Idempotent: removing an unknown sandbox succeeds.
import { RemovePodSandboxResponse, type RemovePodSandboxRequest } from "../gen/cri/runtime/v1/api.js";
import { InvalidArgumentError } from "../errors/errors.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";

export function removePodSandbox(deps: CriDeps): UnaryRpc<RemovePodSandboxRequest, RemovePodSandboxResponse> {
  return async (req) => {
    if (!req.podSandboxId) throw new InvalidArgumentError("RemovePodSandbox: pod_sandbox_id is required");
    await deps.pods.remove(req.podSandboxId);
    return RemovePodSandboxResponse.fromPartial({});
  };
}
