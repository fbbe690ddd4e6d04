// What podshim persists about a sandbox, in a schema of its own: the CRI config is kept as
// its protobuf encoding (stable by field number, unlike the JSON names a ts-proto upgrade
// could change), everything else as plain fields. Version 1 (the CRI JSON form) is still
// read, so an upgraded podshim keeps the pods an older one started.
import { InternalError } from "../errors/errors.js";
import { PodSandboxConfig } from "../gen/cri/runtime/v1/api.js";
import type { Any } from "../gen/google/protobuf/any.js";

export const SANDBOX_RECORD_EXTENSION = "io.podshim.sandbox/metadata";
const TYPE_URL_PREFIX = "podshim.io/SandboxMetadata/";
const CURRENT = 2;

/** A sandbox as podshim keeps it across restarts. */
export interface SandboxRecordData {
  id: string;
  config: PodSandboxConfig;
  runtimeHandler: string;
  createdAt: bigint;
  netnsPath: string;
  ips: string[];
  /** False until RunPodSandbox finished: a crash before that leaves a pod that never was. */
  complete: boolean;
}

interface StoredV2 {
  version: 2;
  id: string;
  configProto: string;
  runtimeHandler: string;
  createdAtNs: string;
  netnsPath: string;
  ips: string[];
  complete: boolean;
}

interface StoredV1 {
  id: string;
  config: unknown;
  runtimeHandler: string;
  createdAt: string;
  netnsPath: string;
  ips: string[];
}

export function encodeSandboxRecord(r: SandboxRecordData): Any {
  const stored: StoredV2 = {
    version: CURRENT,
    id: r.id,
    configProto: Buffer.from(PodSandboxConfig.encode(r.config).finish()).toString("base64"),
    runtimeHandler: r.runtimeHandler,
    createdAtNs: r.createdAt.toString(),
    netnsPath: r.netnsPath,
    ips: r.ips,
    complete: r.complete,
  };
  return { typeUrl: `${TYPE_URL_PREFIX}v${CURRENT}`, value: Buffer.from(JSON.stringify(stored)) };
}

/** Throws an InternalError naming the container and the schema when it cannot be read. */
export function decodeSandboxRecord(containerId: string, any: Any | undefined): SandboxRecordData {
  if (!any) throw new InternalError(`sandbox ${containerId}: its containerd record has no ${SANDBOX_RECORD_EXTENSION} extension`);
  const version = any.typeUrl.startsWith(TYPE_URL_PREFIX) ? any.typeUrl.slice(TYPE_URL_PREFIX.length) : any.typeUrl;
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(any.value).toString("utf8"));
  } catch (err) {
    throw new InternalError(`sandbox ${containerId}: its record (${any.typeUrl}) is not valid JSON`, { cause: err });
  }
  if (version === "v1") {
    const v1 = doc as StoredV1;
    // v1 records were written once RunPodSandbox had set the pod up; their ips say whether it
    // finished (a host-network pod has none either way and counts as finished).
    return { id: v1.id, config: PodSandboxConfig.fromJSON(v1.config), runtimeHandler: v1.runtimeHandler, createdAt: BigInt(v1.createdAt), netnsPath: v1.netnsPath, ips: v1.ips, complete: true };
  }
  if (version === "v2" && (doc as StoredV2).version === 2) {
    const v2 = doc as StoredV2;
    return {
      id: v2.id,
      config: PodSandboxConfig.decode(Buffer.from(v2.configProto, "base64")),
      runtimeHandler: v2.runtimeHandler,
      createdAt: BigInt(v2.createdAtNs),
      netnsPath: v2.netnsPath,
      ips: v2.ips,
      complete: v2.complete,
    };
  }
  throw new InternalError(`sandbox ${containerId}: its record has schema ${JSON.stringify(any.typeUrl)}, which this podshim cannot read (written by a newer podshim?)`);
}
