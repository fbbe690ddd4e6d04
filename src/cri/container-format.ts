import { criSignalOf } from "../container/container-spec.js";
import {
  ContainerState as CriContainerState,
  type Container,
  type ContainerStatus,
} from "../gen/cri/runtime/v1/api.js";
import { ContainerState, type ContainerRecord } from "../container/container-store.js";

const CRI_STATE: Record<ContainerState, CriContainerState> = {
  [ContainerState.Created]: CriContainerState.CONTAINER_CREATED,
  [ContainerState.Running]: CriContainerState.CONTAINER_RUNNING,
  [ContainerState.Exited]: CriContainerState.CONTAINER_EXITED,
  // A lost container is over for the kubelet: it sees EXITED with exit 255, reason Unknown.
  [ContainerState.Unknown]: CriContainerState.CONTAINER_EXITED,
};

export function criContainerState(rec: ContainerRecord): CriContainerState {
  return CRI_STATE[rec.status.state];
}

export function toCriContainer(rec: ContainerRecord): Container {
  return {
    id: rec.id,
    podSandboxId: rec.sandboxId,
    metadata: rec.config.metadata,
    image: rec.config.image,
    imageRef: rec.imageId,
    imageId: rec.imageId,
    state: criContainerState(rec),
    createdAt: rec.createdAt,
    labels: rec.config.labels,
    annotations: rec.config.annotations,
  };
}

/**
 * Timestamps are reported only for the states that have them (containerd zeroes the others),
 * and exit code, reason and message only once the container is over.
 */
export function toCriContainerStatus(rec: ContainerRecord): ContainerStatus {
  const s = rec.status;
  const started = s.state !== ContainerState.Created;
  const over = s.state === ContainerState.Exited || s.state === ContainerState.Unknown;
  return {
    id: rec.id,
    metadata: rec.config.metadata,
    state: criContainerState(rec),
    createdAt: rec.createdAt,
    startedAt: started ? s.startedAt : 0n,
    finishedAt: over ? s.finishedAt : 0n,
    exitCode: over ? s.exitCode : 0,
    image: { image: rec.imageName, annotations: rec.config.image?.annotations ?? {}, userSpecifiedImage: rec.imageRef, runtimeHandler: "", imageRef: rec.imageId },
    imageRef: rec.imageRepoDigest || rec.imageId,
    imageId: rec.imageId,
    reason: over ? s.reason : "",
    message: over ? s.message : "",
    labels: rec.config.labels,
    annotations: rec.config.annotations,
    mounts: rec.config.mounts,
    logPath: rec.logPath,
    resources: s.resources ? { linux: s.resources, windows: undefined } : undefined,
    user: { linux: { uid: BigInt(rec.user.uid), gid: BigInt(rec.user.gid), supplementalGroups: rec.user.additionalGids.map(BigInt) } },
    stopSignal: criSignalOf(rec.stopSignal),
  };
}
