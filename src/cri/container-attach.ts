// Attach: hands out a single-use URL where the client joins the container's own stdio. The
// container must be running; tty with stderr, or no stream at all, is INVALID_ARGUMENT.
import { AttachResponse, type AttachRequest } from "../gen/cri/runtime/v1/api.js";
import { FailedPreconditionError } from "../errors/errors.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";
import { checkStdio } from "./streaming-check.js";
import { ContainerState } from "../container/container-store.js";

export function attach(deps: CriDeps): UnaryRpc<AttachRequest, AttachResponse> {
  return async (req) => {
    checkStdio("Attach", req);
    const rec = deps.containers.get(req.containerId);
    if (rec.status.state !== ContainerState.Running) throw new FailedPreconditionError(`Attach: container ${rec.id} is ${rec.status.state}, not running`);
    const url = deps.streaming.attachUrl({ containerId: rec.id, tty: req.tty, stdin: req.stdin, stdout: req.stdout, stderr: req.stderr });
    return AttachResponse.fromPartial({ url });
  };
}
