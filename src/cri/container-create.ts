// CreateContainer: a container in a ready pod sandbox, from an image already pulled. The same
// name and attempt in the same pod twice is ALREADY_EXISTS while the first exists; an unknown
// sandbox or image is NOT_FOUND; a sandbox that is not ready is FAILED_PRECONDITION; a bad
// config (no command, missing host path, group without user) is INVALID_ARGUMENT and leaves
// nothing behind.
import { CreateContainerResponse, type CreateContainerRequest } from "../gen/cri/runtime/v1/api.js";
import { InvalidArgumentError } from "../errors/errors.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";

export function createContainer(deps: CriDeps): UnaryRpc<CreateContainerRequest, CreateContainerResponse> {
  return async (req) => {
    if (!req.podSandboxId) throw new InvalidArgumentError("CreateContainer: pod_sandbox_id is required");
    if (!req.config) throw new InvalidArgumentError("CreateContainer: config is required");
    const rec = await deps.pods.createContainer(req.podSandboxId, req.config);
    return CreateContainerResponse.fromPartial({ containerId: rec.id });
  };
}
