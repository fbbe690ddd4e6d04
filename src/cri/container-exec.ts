// Exec: hands out a single-use URL of podshim's streaming server, where the client (kubectl
// through the kubelet, crictl) runs the command over SPDY or WebSocket. The container must be
// running (FAILED_PRECONDITION otherwise, NOT_FOUND when unknown); tty with stderr, or no
// stream at all, is INVALID_ARGUMENT.
import { ExecResponse, type ExecRequest } from "../gen/cri/runtime/v1/api.js";
import { FailedPreconditionError, InvalidArgumentError } from "../errors/errors.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";
import { checkStdio } from "./streaming-check.js";
import { ContainerState } from "../container/container-store.js";

export function exec(deps: CriDeps): UnaryRpc<ExecRequest, ExecResponse> {
  return async (req) => {
    checkStdio("Exec", req);
    if (req.cmd.length === 0) throw new InvalidArgumentError("Exec: cmd must name a command");
    const rec = deps.containers.get(req.containerId);
    if (rec.status.state !== ContainerState.Running) throw new FailedPreconditionError(`Exec: container ${rec.id} is ${rec.status.state}, not running`);
    const url = deps.streaming.execUrl({ containerId: rec.id, cmd: req.cmd, tty: req.tty, stdin: req.stdin, stdout: req.stdout, stderr: req.stderr });
    return ExecResponse.fromPartial({ url });
  };
}
