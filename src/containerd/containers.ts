import { ContainersService, type Container } from "../gen/containerd/services/containers/v1/containers.js";
import type { Any } from "../gen/google/protobuf/any.js";
import { isNotFound } from "../errors/errors.js";
import { SPEC_TYPE_URL } from "../oci/spec-types.js";
import type { CallOptions, ContainerdClient } from "./client.js";

export type { Container };


export function jsonAny(typeUrl: string, value: unknown): Any {
  return { typeUrl, value: Buffer.from(JSON.stringify(value)) };
}

export function fromJsonAny<T>(any: Any | undefined): T | undefined {
  return any ? (JSON.parse(Buffer.from(any.value).toString("utf8")) as T) : undefined;
}

export interface NewContainer {
  id: string;
  image: string;
  labels: Record<string, string>;
  spec: unknown;
  runtime: { name: string; options?: Any };
  snapshotter: string;
  snapshotKey: string;
  extensions?: Record<string, Any>;
}

/** containerd's container records (metadata only: the process is a task). */
export class ContainerRecords {
  constructor(private readonly client: ContainerdClient) {}

  async create(c: NewContainer, opts: CallOptions = {}): Promise<Container> {
    const res = await this.client.call(ContainersService.create, {
      container: {
        id: c.id, labels: c.labels, image: c.image,
        runtime: { name: c.runtime.name, options: c.runtime.options },
        spec: jsonAny(SPEC_TYPE_URL, c.spec),
        snapshotter: c.snapshotter, snapshotKey: c.snapshotKey,
        createdAt: undefined, updatedAt: undefined, extensions: c.extensions ?? {}, sandbox: "",
      },
    }, opts);
    return res.container!;
  }

  async get(id: string, opts: CallOptions = {}): Promise<Container | undefined> {
    try {
      return (await this.client.call(ContainersService.get, { id }, opts)).container;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Containers matching containerd filters (e.g. `labels."io.podshim.kind"==sandbox`). */
  async list(filters: string[], opts: CallOptions = {}): Promise<Container[]> {
    return (await this.client.call(ContainersService.list, { filters }, { timeoutMs: 60_000, ...opts })).containers;
  }

  async setExtension(id: string, key: string, value: Any, opts: CallOptions = {}): Promise<void> {
    await this.client.call(ContainersService.update, {
      container: { id, labels: {}, image: "", runtime: undefined, spec: undefined, snapshotter: "", snapshotKey: "", createdAt: undefined, updatedAt: undefined, extensions: { [key]: value }, sandbox: "" },
      updateMask: [`extensions.${key}`],
    }, opts);
  }

  /** Replaces the stored OCI spec (what a restarted task would run with). */
  async setSpec(id: string, spec: unknown, opts: CallOptions = {}): Promise<void> {
    await this.client.call(ContainersService.update, {
      container: { id, labels: {}, image: "", runtime: undefined, spec: jsonAny(SPEC_TYPE_URL, spec), snapshotter: "", snapshotKey: "", createdAt: undefined, updatedAt: undefined, extensions: {}, sandbox: "" },
      updateMask: ["spec"],
    }, opts);
  }

  /** Deleting what is not there is not an error. */
  async delete(id: string, opts: CallOptions = {}): Promise<void> {
    try {
      await this.client.call(ContainersService.delete, { id }, opts);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
