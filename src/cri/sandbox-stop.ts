// StopPodSandbox: stops the pod's containers and its pause container, runs CNI DEL and
// releases the network namespace. Idempotent: an unknown or stopped sandbox is not an error.
import { StopPodSandboxResponse, type StopPodSandboxRequest } from "../gen/cri/runtime/v1/api.js";
import { InvalidArgumentError } from "../errors/errors.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";

export function stopPodSandbox(deps: CriDeps): UnaryRpc<StopPodSandboxRequest, StopPodSandboxResponse> {
  return async (req) => {
    if (!req.podSandboxId) throw new InvalidArgumentError("StopPodSandbox: pod_sandbox_id is required");
    await deps.pods.stop(req.podSandboxId);
    return StopPodSandboxResponse.fromPartial({});
  };
}
