// UpdatePodSandboxResources: the kubelet tells the runtime about a pod's new resources after
// an in-place resize. The kubelet itself resizes the pod-level cgroup, and podshim keeps no
// pod-level resource settings of its own (no NRI plugins to inform), so the call validates
// the sandbox and records the new values in the log. An unknown sandbox is NOT_FOUND.
import { UpdatePodSandboxResourcesResponse, type UpdatePodSandboxResourcesRequest } from "../gen/cri/runtime/v1/api.js";
import { InvalidArgumentError } from "../errors/errors.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";

export function updatePodSandboxResources(deps: CriDeps): UnaryRpc<UpdatePodSandboxResourcesRequest, UpdatePodSandboxResourcesResponse> {
  return async (req, ctx) => {
    if (!req.podSandboxId) throw new InvalidArgumentError("UpdatePodSandboxResources: pod_sandbox_id is required");
    const rec = deps.sandboxes.get(req.podSandboxId);
    const r = req.resources;
    ctx.log.info({ sandbox: rec.id, cpuQuota: r?.cpuQuota, cpuShares: r?.cpuShares, memoryLimitInBytes: r?.memoryLimitInBytes }, "pod resources updated by the kubelet");
    return UpdatePodSandboxResourcesResponse.fromPartial({});
  };
}
