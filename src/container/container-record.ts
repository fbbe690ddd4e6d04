// What podshim persists about a container, in a schema of its own: CRI messages are kept as
// their protobuf encoding (stable by field number), everything else as plain fields. The
// metadata lives as an extension of the containerd container, the status in a file under
// --root written at every transition. Version 1 (the CRI JSON form) is still read.
import { InternalError } from "../errors/errors.js";
import { ContainerConfig, LinuxContainerResources } from "../gen/cri/runtime/v1/api.js";
import type { Any } from "../gen/google/protobuf/any.js";
import type { ContainerMetadata, ContainerState, ContainerStatusFields } from "./container-store.js";

export const CONTAINER_RECORD_EXTENSION = "io.podshim.container/metadata";
const TYPE_URL_PREFIX = "podshim.io/ContainerMetadata/";

interface MetadataV2 extends Omit<ContainerMetadata, "config" | "createdAt"> {
  version: 2;
  configProto: string;
  createdAtNs: string;
}

interface MetadataV1 extends Omit<ContainerMetadata, "config" | "createdAt"> {
  config: unknown;
  createdAt: string;
}

interface StatusV2 {
  version: 2;
  state: ContainerState;
  pid: number;
  startedAtNs: string;
  finishedAtNs: string;
  exitCode: number;
  reason: string;
  message: string;
  oomKilled: boolean;
  resourcesProto?: string;
}

interface StatusV1 extends Omit<ContainerStatusFields, "startedAt" | "finishedAt" | "resources"> {
  startedAt: string;
  finishedAt: string;
  resources: unknown;
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64");
const unb64 = (text: string): Buffer => Buffer.from(text, "base64");

export function encodeContainerMetadata(m: ContainerMetadata): Any {
  const { config, createdAt, ...rest } = m;
  const stored: MetadataV2 = { version: 2, ...rest, configProto: b64(ContainerConfig.encode(config).finish()), createdAtNs: createdAt.toString() };
  return { typeUrl: `${TYPE_URL_PREFIX}v2`, value: Buffer.from(JSON.stringify(stored)) };
}

export function decodeContainerMetadata(containerId: string, any: Any | undefined): ContainerMetadata {
  if (!any) throw new InternalError(`container ${containerId}: its containerd record has no ${CONTAINER_RECORD_EXTENSION} extension`);
  const version = any.typeUrl.startsWith(TYPE_URL_PREFIX) ? any.typeUrl.slice(TYPE_URL_PREFIX.length) : any.typeUrl;
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(any.value).toString("utf8"));
  } catch (err) {
    throw new InternalError(`container ${containerId}: its record (${any.typeUrl}) is not valid JSON`, { cause: err });
  }
  if (version === "v1") {
    const { config, createdAt, ...rest } = doc as MetadataV1;
    return { ...rest, config: ContainerConfig.fromJSON(config), createdAt: BigInt(createdAt) };
  }
  if (version === "v2" && (doc as MetadataV2).version === 2) {
    const { version: _v, configProto, createdAtNs, ...rest } = doc as MetadataV2;
    return { ...rest, config: ContainerConfig.decode(unb64(configProto)), createdAt: BigInt(createdAtNs) };
  }
  throw new InternalError(`container ${containerId}: its record has schema ${JSON.stringify(any.typeUrl)}, which this podshim cannot read (written by a newer podshim?)`);
}

export function encodeContainerStatus(s: ContainerStatusFields): StatusV2 {
  return {
    version: 2,
    state: s.state,
    pid: s.pid,
    startedAtNs: s.startedAt.toString(),
    finishedAtNs: s.finishedAt.toString(),
    exitCode: s.exitCode,
    reason: s.reason,
    message: s.message,
    oomKilled: s.oomKilled,
    ...(s.resources ? { resourcesProto: b64(LinuxContainerResources.encode(s.resources).finish()) } : {}),
  };
}

export function decodeContainerStatus(file: string, doc: unknown): ContainerStatusFields {
  const d = doc as Partial<StatusV2> & { version?: unknown };
  if (d.version === undefined) {
    const v1 = doc as StatusV1;
    return { ...v1, startedAt: BigInt(v1.startedAt), finishedAt: BigInt(v1.finishedAt), resources: v1.resources ? LinuxContainerResources.fromJSON(v1.resources) : undefined };
  }
  if (d.version === 2) {
    const v2 = doc as StatusV2;
    return {
      state: v2.state,
      pid: v2.pid,
      startedAt: BigInt(v2.startedAtNs),
      finishedAt: BigInt(v2.finishedAtNs),
      exitCode: v2.exitCode,
      reason: v2.reason,
      message: v2.message,
      oomKilled: v2.oomKilled,
      resources: v2.resourcesProto ? LinuxContainerResources.decode(unb64(v2.resourcesProto)) : undefined,
    };
  }
  throw new InternalError(`container status checkpoint ${file} has schema version ${JSON.stringify(d.version)}, which this podshim cannot read`);
}
