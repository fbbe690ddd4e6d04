// RuntimeConfig: the cgroup driver the kubelet must match (it refuses to start on a mismatch).
import { CgroupDriver, RuntimeConfigResponse, type RuntimeConfigRequest } from "../gen/cri/runtime/v1/api.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";

export function runtimeConfig(deps: CriDeps): UnaryRpc<RuntimeConfigRequest, RuntimeConfigResponse> {
  return async () =>
    RuntimeConfigResponse.fromPartial({
      linux: { cgroupDriver: deps.config.cgroupDriver === "systemd" ? CgroupDriver.SYSTEMD : CgroupDriver.CGROUPFS },
    });
}
