import type { ContainerdClient } from "../containerd/client.js";
import { ContainerRecords } from "../containerd/containers.js";
import { withLease } from "../containerd/leases.js";
import type { Snapshots } from "../containerd/snapshots.js";
import { Tasks, type TaskApi } from "../containerd/tasks.js";
import type { ImageService } from "../image/image-service.js";
import type { Logger } from "../logger/logger.js";
import type { SandboxService } from "../sandbox/sandbox-service.js";

/**
 * What app containers are made of outside podshim's process, as the container service
 * needs it: containerd's records, tasks, snapshots and leases, the images pulled, and the
 * pods they join. The composition root hands in the real ones; unit tests hand in fakes.
 */
export interface ContainerAdapters {
  records: Pick<ContainerRecords, "create" | "delete" | "list" | "get" | "setSpec">;
  tasks: TaskApi;
  snapshots: Pick<Snapshots, "prepare" | "remove" | "mounts" | "snapshotter">;
  /** Runs work under a containerd lease; the lease is released in the background after. */
  withLease<T>(purpose: string, work: (lease: string) => Promise<T>): Promise<T>;
  images: Pick<ImageService, "status">;
  sandboxes: Pick<SandboxService, "get" | "files" | "runtimeOf" | "handlerFeatures">;
}

const LEASE_EXPIRE_MS = 600_000;

export function containerAdapters(d: { client: ContainerdClient; snapshots: Snapshots; images: ImageService; sandboxes: SandboxService; logger: Logger }): ContainerAdapters {
  return {
    records: new ContainerRecords(d.client),
    tasks: new Tasks(d.client),
    snapshots: d.snapshots,
    withLease: (purpose, work) => withLease(d.client, d.logger, purpose, LEASE_EXPIRE_MS, work, { syncGc: false, background: true }),
    images: d.images,
    sandboxes: d.sandboxes,
  };
}
