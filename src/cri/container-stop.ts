// StopContainer: the stop signal, `timeout` seconds, then SIGKILL (timeout 0 kills at once).
// Idempotent: stopping an unknown or stopped container succeeds.
import { StopContainerResponse, type StopContainerRequest } from "../gen/cri/runtime/v1/api.js";
import { InvalidArgumentError } from "../errors/errors.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";

export function stopContainer(deps: CriDeps): UnaryRpc<StopContainerRequest, StopContainerResponse> {
  return async (req) => {
    if (!req.containerId) throw new InvalidArgumentError("StopContainer: container_id is required");
    if (req.timeout < 0n) throw new InvalidArgumentError(`StopContainer: timeout must not be negative, got ${req.timeout}`);
    await deps.containers.stopContainer(req.containerId, Number(req.timeout));
    return StopContainerResponse.fromPartial({});
  };
}
