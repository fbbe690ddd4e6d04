import { SnapshotsService, type Info } from "../gen/containerd/services/snapshots/v1/snapshots.js";
import type { Mount } from "../gen/containerd/types/mount.js";
import { isNotFound } from "../errors/errors.js";
import type { CallOptions, ContainerdClient } from "./client.js";

export type { Mount };
export type SnapshotInfo = Info;

/** One snapshotter of containerd (overlayfs unless configured otherwise). */
export class Snapshots {
  constructor(
    private readonly client: ContainerdClient,
    readonly snapshotter = "overlayfs",
  ) {}

  async stat(key: string, opts: CallOptions = {}): Promise<SnapshotInfo | undefined> {
    try {
      return (await this.client.call(SnapshotsService.stat, { snapshotter: this.snapshotter, key }, opts)).info;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async prepare(key: string, parent: string, labels: Record<string, string>, opts: CallOptions = {}): Promise<Mount[]> {
    return (await this.client.call(SnapshotsService.prepare, { snapshotter: this.snapshotter, key, parent, labels }, opts)).mounts;
  }

  /** The mounts of an existing active snapshot (a task's rootfs). */
  async mounts(key: string, opts: CallOptions = {}): Promise<Mount[]> {
    return (await this.client.call(SnapshotsService.mounts, { snapshotter: this.snapshotter, key }, opts)).mounts;
  }

  async commit(name: string, key: string, labels: Record<string, string>, opts: CallOptions = {}): Promise<void> {
    await this.client.call(SnapshotsService.commit, { snapshotter: this.snapshotter, name, key, labels, parent: "" }, opts);
  }

  /** Removing what is not there is not an error. */
  async remove(key: string, opts: CallOptions = {}): Promise<void> {
    try {
      await this.client.call(SnapshotsService.remove, { snapshotter: this.snapshotter, key }, opts);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async list(filters: string[] = [], opts: CallOptions = {}): Promise<SnapshotInfo[]> {
    const stream = this.client.serverStream(SnapshotsService.list, { snapshotter: this.snapshotter, filters }, opts);
    const out: SnapshotInfo[] = [];
    try {
      for await (const msg of stream) out.push(...(msg as { info: SnapshotInfo[] }).info);
    } catch (err) {
      throw this.client.streamError(SnapshotsService.list, err);
    }
    return out;
  }

  async usage(key: string, opts: CallOptions = {}): Promise<{ size: bigint; inodes: bigint }> {
    return this.client.call(SnapshotsService.usage, { snapshotter: this.snapshotter, key }, opts);
  }
}
