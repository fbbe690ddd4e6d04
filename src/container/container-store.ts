import type { ContainerConfig, LinuxContainerResources } from "../gen/cri/runtime/v1/api.js";
import { RecordIndex } from "../util/record-index.js";

/**
 * The lifecycle of an app container. A transition only happens from the state before it, so
 * a late event (an exit seen twice, a stop racing an exit) is a no-op, never a corruption.
 */
export const ContainerState = {
  Created: "created",
  Running: "running",
  Exited: "exited",
  /** Its fate was lost (podshim was down when containerd lost the task); reported as exited
   * with exit code 255 and reason Unknown, as containerd does. */
  Unknown: "unknown",
} as const;
export type ContainerState = (typeof ContainerState)[keyof typeof ContainerState];

export const ExitReason = {
  Completed: "Completed",
  Error: "Error",
  OOMKilled: "OOMKilled",
  StartError: "StartError",
  Unknown: "Unknown",
} as const;

/** The identity the kubelet resolves to: uid, primary gid and every additional gid. */
export interface ContainerIdentity {
  uid: number;
  gid: number;
  additionalGids: number[];
}

/** What never changes after CreateContainer; kept as a containerd extension. */
export interface ContainerMetadata {
  id: string;
  sandboxId: string;
  /** containerName_podName_podNamespace_podUid_attempt: the name registry's key. */
  nameKey: string;
  config: ContainerConfig;
  /** The image as the user named it, its node-local ID (config digest), the name to report
   * (a repo tag when known) and the repo digest reference when known. */
  imageRef: string;
  imageId: string;
  imageName: string;
  imageRepoDigest: string;
  /** Nanoseconds since the epoch. */
  createdAt: bigint;
  /** Absolute, or "" when the kubelet gave no log directory or path (output is discarded). */
  logPath: string;
  user: ContainerIdentity;
  stopSignal: number;
  runtimeHandler: string;
}

/** What changes as the container runs; checkpointed atomically to the state file. */
export interface ContainerStatusFields {
  state: ContainerState;
  pid: number;
  startedAt: bigint;
  finishedAt: bigint;
  exitCode: number;
  reason: string;
  message: string;
  /** An OOM event arrived for the container; its exit is reported as OOMKilled. */
  oomKilled: boolean;
  /** The resources last applied (creation or UpdateContainerResources). */
  resources: LinuxContainerResources | undefined;
}

export interface ContainerRecord extends ContainerMetadata {
  status: ContainerStatusFields;
  /** True while RemoveContainer runs: the record is on its way out. */
  removing: boolean;
}

export function containerNameKey(config: ContainerConfig, pod: { name: string; namespace: string; uid: string }): string {
  const m = config.metadata!;
  return [m.name, pod.name, pod.namespace, pod.uid, m.attempt].join("_");
}

/** The index of containers (rebuilt from containerd at start) and their name registry. */
export class ContainerStore extends RecordIndex<ContainerRecord> {
  constructor() {
    super("container");
  }

  inSandbox(sandboxId: string): ContainerRecord[] {
    return this.all().filter((c) => c.sandboxId === sandboxId);
  }
}
