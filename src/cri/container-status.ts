// ContainerStatus: from podshim's index, no containerd round trip. Unknown is NOT_FOUND (the
// kubelet tests the code). verbose adds containerd-style `info`: a JSON object with the
// sandbox id, pid, snapshot key, runtime and the CRI config.
import { ContainerConfig, ContainerStatusResponse, type ContainerStatusRequest } from "../gen/cri/runtime/v1/api.js";
import { InvalidArgumentError } from "../errors/errors.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";
import { toCriContainerStatus } from "./container-format.js";

export function containerStatus(deps: CriDeps): UnaryRpc<ContainerStatusRequest, ContainerStatusResponse> {
  return async (req) => {
    if (!req.containerId) throw new InvalidArgumentError("ContainerStatus: container_id is required");
    const rec = deps.containers.get(req.containerId);
    const info: Record<string, string> = {};
    if (req.verbose) {
      info.info = JSON.stringify({
        sandboxID: rec.sandboxId, pid: rec.status.pid, removing: rec.removing, snapshotKey: rec.id, snapshotter: "overlayfs",
        runtimeHandler: rec.runtimeHandler, user: rec.user, logPath: rec.logPath, config: ContainerConfig.toJSON(rec.config),
      });
    }
    return ContainerStatusResponse.fromPartial({ status: toCriContainerStatus(rec), info });
  };
}
