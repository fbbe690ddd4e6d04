import type { ContainerdClient } from "../containerd/client.js";
import type { ContentStore } from "../containerd/content.js";
import { ImageRecords } from "../containerd/images.js";
import type { Snapshots } from "../containerd/snapshots.js";
import { IntrospectionService } from "../gen/containerd/services/introspection/v1/introspection.js";
import type { Puller } from "./pull.js";

/**
 * What images are made of outside podshim's process, as the image service needs it:
 * containerd's image records, its content and snapshots, the puller, and where the
 * snapshotter keeps its data. The composition root hands in the real ones; unit tests fakes.
 */
export interface ImageAdapters {
  records: Pick<ImageRecords, "list" | "put" | "delete">;
  content: Pick<ContentStore, "read">;
  snapshots: Pick<Snapshots, "list" | "usage" | "snapshotter">;
  puller: Pick<Puller, "pull" | "importImage">;
  /** The snapshotter's data directory ("" when containerd does not say). */
  snapshotterRoot(snapshotter: string): Promise<string>;
}

export function imageAdapters(d: { client: ContainerdClient; content: ContentStore; snapshots: Snapshots; puller: Puller }): ImageAdapters {
  return {
    records: new ImageRecords(d.client),
    content: d.content,
    snapshots: d.snapshots,
    puller: d.puller,
    snapshotterRoot: async (snapshotter) => {
      const res = await d.client.call(IntrospectionService.plugins, { filters: [`type==io.containerd.snapshotter.v1,id==${snapshotter}`] });
      return res.plugins[0]?.exports.root ?? "";
    },
  };
}
