// PortForward: hands out a single-use URL where the client opens connections to ports inside
// the pod (ports come per stream over SPDY; `port` is only filled for the legacy WebSocket
// path). The sandbox must be ready (FAILED_PRECONDITION), unknown is NOT_FOUND.
import { PortForwardResponse, type PortForwardRequest } from "../gen/cri/runtime/v1/api.js";
import { FailedPreconditionError, InvalidArgumentError } from "../errors/errors.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";
import { SandboxState } from "../sandbox/sandbox-store.js";

export function portForward(deps: CriDeps): UnaryRpc<PortForwardRequest, PortForwardResponse> {
  return async (req) => {
    if (!req.podSandboxId) throw new InvalidArgumentError("PortForward: pod_sandbox_id is required");
    for (const p of req.port) if (!Number.isInteger(p) || p < 1 || p > 65535) throw new InvalidArgumentError(`PortForward: ${p} is not a TCP port`);
    const sandbox = deps.sandboxes.get(req.podSandboxId);
    if (sandbox.state !== SandboxState.Ready) throw new FailedPreconditionError(`PortForward: pod sandbox ${sandbox.id} is not ready`);
    const url = deps.streaming.portForwardUrl({ podSandboxId: sandbox.id, ports: req.port });
    return PortForwardResponse.fromPartial({ url });
  };
}
