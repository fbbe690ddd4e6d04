// Version: who this runtime is. Never fails, never touches containerd, so the kubelet can
// identify podshim even while containerd is down.
import { VersionResponse, type VersionRequest } from "../gen/cri/runtime/v1/api.js";
import { CRI_API_VERSION, KUBELET_API_VERSION, RUNTIME_NAME, RUNTIME_VERSION_WITH_COMMIT } from "../version.js";
import type { UnaryRpc } from "../rpc/handlers.js";

export function version(): UnaryRpc<VersionRequest, VersionResponse> {
  return async () =>
    VersionResponse.fromPartial({
      version: KUBELET_API_VERSION,
      runtimeName: RUNTIME_NAME,
      runtimeVersion: RUNTIME_VERSION_WITH_COMMIT,
      runtimeApiVersion: CRI_API_VERSION,
    });
}
