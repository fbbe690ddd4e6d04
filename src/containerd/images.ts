import { ImagesService, type Image } from "../gen/containerd/services/images/v1/images.js";
import { isAlreadyExists, isNotFound } from "../errors/errors.js";
import type { Descriptor } from "../distribution/descriptor.js";
import type { CallOptions, ContainerdClient } from "./client.js";

export interface ImageRecord {
  name: string;
  target: Descriptor;
  labels: Record<string, string>;
}

function toRecord(img: Image): ImageRecord {
  const t = img.target!;
  return {
    name: img.name,
    labels: img.labels,
    target: { mediaType: t.mediaType, digest: t.digest, size: Number(t.size), ...(Object.keys(t.annotations).length ? { annotations: t.annotations } : {}) },
  };
}

/** containerd's image records: a name pointing at a manifest or index in the content store. */
export class ImageRecords {
  constructor(private readonly client: ContainerdClient) {}

  async list(opts: CallOptions = {}): Promise<ImageRecord[]> {
    return (await this.client.call(ImagesService.list, { filters: [] }, opts)).images.filter((i) => i.target).map(toRecord);
  }

  /** Creates the record, or points an existing one at the new target with the new labels. */
  async put(rec: ImageRecord, opts: CallOptions = {}): Promise<void> {
    const image = {
      name: rec.name,
      labels: rec.labels,
      target: { mediaType: rec.target.mediaType, digest: rec.target.digest, size: BigInt(rec.target.size), annotations: rec.target.annotations ?? {} },
      createdAt: undefined,
      updatedAt: undefined,
    };
    try {
      await this.client.call(ImagesService.create, { image, sourceDateEpoch: undefined }, opts);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      await this.client.call(ImagesService.update, { image, updateMask: ["target", "labels"], sourceDateEpoch: undefined }, opts);
    }
  }

  /** Deleting what is not there is not an error. `sync` waits for garbage collection. */
  async delete(name: string, sync: boolean, opts: CallOptions = {}): Promise<void> {
    try {
      await this.client.call(ImagesService.delete, { name, sync }, { timeoutMs: 120_000, ...opts });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
