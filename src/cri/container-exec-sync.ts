// ExecSync: runs a command in a running container and returns its output and exit code. A
// non-zero exit is a result, not an error; a timeout (seconds, 0 = none) kills the command and
// is DEADLINE_EXCEEDED, which the kubelet reports as a timed-out exec probe. Each stream is cut
// at 16 MiB. A container that is not running is FAILED_PRECONDITION, unknown NOT_FOUND.
import { ExecSyncResponse, type ExecSyncRequest } from "../gen/cri/runtime/v1/api.js";
import { InvalidArgumentError } from "../errors/errors.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";

export function execSync(deps: CriDeps): UnaryRpc<ExecSyncRequest, ExecSyncResponse> {
  return async (req) => {
    if (!req.containerId) throw new InvalidArgumentError("ExecSync: container_id is required");
    if (req.cmd.length === 0) throw new InvalidArgumentError("ExecSync: cmd must name a command");
    if (req.timeout < 0n) throw new InvalidArgumentError(`ExecSync: timeout must not be negative, got ${req.timeout}`);
    const res = await deps.containers.streaming.execSync(req.containerId, req.cmd, Number(req.timeout));
    return ExecSyncResponse.fromPartial({ stdout: res.stdout, stderr: res.stderr, exitCode: res.exitCode });
  };
}
