// The stats service's view of podshim's containers and sandboxes: plain values read from the
// in-memory indexes, never a call to containerd.
import type { Config } from "../config/options.js";
import { NamespaceMode } from "../gen/cri/runtime/v1/api.js";
import { cgroupsPath } from "../oci/cgroups.js";
import type { SandboxService } from "../sandbox/sandbox-service.js";
import { SandboxState } from "../sandbox/sandbox-store.js";
import type { StatsSource } from "../stats/types.js";
import type { ContainerService } from "./container-service.js";
import { ContainerState } from "./container-store.js";

export function statsSource(containers: ContainerService, sandboxes: SandboxService, config: Config): StatsSource {
  return {
    containers: () => containers.list().map((rec) => ({
      id: rec.id,
      sandboxId: rec.sandboxId,
      metadata: rec.config.metadata,
      labels: rec.config.labels,
      annotations: rec.config.annotations,
      image: rec.imageName,
      cgroupsPath: containers.cgroupsPathOf(rec.id),
      snapshotKey: rec.id,
      running: rec.status.state === ContainerState.Running,
    })),
    sandboxes: () => sandboxes.list().map((rec) => ({
      id: rec.id,
      metadata: rec.config.metadata,
      labels: rec.config.labels,
      annotations: rec.config.annotations,
      cgroupParent: rec.config.linux?.cgroupParent ?? "",
      cgroupsPath: cgroupsPath(rec.id, rec.config.linux?.cgroupParent ?? "", config.cgroupDriver),
      pid: rec.pid,
      hostNetwork: rec.config.linux?.securityContext?.namespaceOptions?.network === NamespaceMode.NODE,
      ready: rec.state === SandboxState.Ready,
    })),
  };
}
