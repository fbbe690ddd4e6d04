import type { ContainerdClient } from "../containerd/client.js";
import { ContainerRecords } from "../containerd/containers.js";
import { withLease } from "../containerd/leases.js";
import type { Snapshots } from "../containerd/snapshots.js";
import { Tasks } from "../containerd/tasks.js";
import type { ImageService } from "../image/image-service.js";
import type { Logger } from "../logger/logger.js";
import { createNetns, deleteNetns, netnsPathOf } from "../network/netns.js";
import type { NetworkService } from "../network/network-service.js";
import { mountTmpfs, unmountAndRemove } from "../util/mount.js";

/**
 * Everything outside podshim's own process a sandbox is made of, as the sandbox service
 * needs it: containerd's records, tasks, snapshots and leases, the pinned netns, the pod's
 * shm mount, CNI and the pause image. The composition root hands in the real ones; unit
 * tests hand in small fakes.
 */
export interface SandboxAdapters {
  records: Pick<ContainerRecords, "create" | "delete" | "list" | "setExtension">;
  tasks: Pick<Tasks, "create" | "start" | "get" | "killAndDelete" | "undoCreate">;
  snapshots: Pick<Snapshots, "prepare" | "remove" | "snapshotter">;
  /** Runs work under a containerd lease that keeps what it makes from the collector. */
  withLease<T>(purpose: string, work: (lease: string) => Promise<T>): Promise<T>;
  /** A pod's netns: its path is known from its name before it exists (the spec names it). */
  netns: { pathOf(name: string): string; create(name: string): Promise<string>; delete(path: string): Promise<void> };
  mounts: { tmpfs(path: string, options: string[]): Promise<void>; unmountAndRemove(path: string): Promise<void> };
  network: Pick<NetworkService, "setUpPod" | "tearDownPod">;
  images: Pick<ImageService, "ensurePauseImage">;
}

const LEASE_EXPIRE_MS = 600_000;

/** The real adapters: containerd through its client, netns and mounts through the OS. */
export function sandboxAdapters(d: { client: ContainerdClient; snapshots: Snapshots; network: NetworkService; images: ImageService; logger: Logger }): SandboxAdapters {
  return {
    records: new ContainerRecords(d.client),
    tasks: new Tasks(d.client),
    snapshots: d.snapshots,
    withLease: (purpose, work) => withLease(d.client, d.logger, purpose, LEASE_EXPIRE_MS, work, { syncGc: false }),
    netns: { pathOf: netnsPathOf, create: createNetns, delete: deleteNetns },
    mounts: { tmpfs: mountTmpfs, unmountAndRemove },
    network: d.network,
    images: d.images,
  };
}
