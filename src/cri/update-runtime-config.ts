// UpdateRuntimeConfig: the kubelet hands over the node's pod CIDR; podshim keeps it (on disk)
// for CNI's ipRanges. An empty request is a no-op, like containerd's; a malformed CIDR is
// INVALID_ARGUMENT.
import { UpdateRuntimeConfigResponse, type UpdateRuntimeConfigRequest } from "../gen/cri/runtime/v1/api.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";

export function updateRuntimeConfig(deps: CriDeps): UnaryRpc<UpdateRuntimeConfigRequest, UpdateRuntimeConfigResponse> {
  return async (req) => {
    const cidr = req.runtimeConfig?.networkConfig?.podCidr;
    if (cidr !== undefined && cidr !== "") await deps.network.setPodCidr(cidr);
    return UpdateRuntimeConfigResponse.fromPartial({});
  };
}
