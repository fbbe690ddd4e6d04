// PodSandboxStatus: served from podshim's index. An unknown id is NOT_FOUND. verbose adds
// the pause pid, netns, runtime handler and the sandbox config as JSON under "info".
import { PodSandboxConfig, PodSandboxStatusResponse, type PodSandboxStatusRequest } from "../gen/cri/runtime/v1/api.js";
import { InvalidArgumentError } from "../errors/errors.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";
import { toCriSandboxStatus } from "./sandbox-format.js";
import { toCriContainerStatus } from "./container-format.js";
import { nowUnixNanos } from "../util/clock.js";

export function podSandboxStatus(deps: CriDeps): UnaryRpc<PodSandboxStatusRequest, PodSandboxStatusResponse> {
  return async (req) => {
    if (!req.podSandboxId) throw new InvalidArgumentError("PodSandboxStatus: pod_sandbox_id is required");
    const rec = deps.sandboxes.get(req.podSandboxId);
    const info: Record<string, string> = {};
    if (req.verbose) {
      info.info = JSON.stringify({
        pid: rec.pid, netnsPath: rec.netnsPath, runtimeHandler: rec.runtimeHandler, ips: rec.ips,
        config: PodSandboxConfig.toJSON(rec.config),
      });
    }
    return PodSandboxStatusResponse.fromPartial({ status: toCriSandboxStatus(rec), info, containersStatuses: deps.containers.store.inSandbox(rec.id).map(toCriContainerStatus), timestamp: nowUnixNanos() });
  };
}
