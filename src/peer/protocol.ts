// What podshim peers say to each other on top of the OCI distribution read API: a few response
// headers, ignored by anything else that speaks the API (a peer may be a plain registry mirror).

export const PeerHeader = {
  /** The answering podshim's instance id: a node that hears its own id knows it asked itself. */
  node: "podshim-node",
  /** stored | claiming | fetching-upstream | fetching-peer */
  state: "podshim-peer-state",
  /** The claim token of a blob being fetched: among simultaneous claimants, the lowest goes upstream. */
  claim: "podshim-claim",
} as const;

export type PeerState = "stored" | "claiming" | "fetching-upstream" | "fetching-peer";

/** What a peer stores content under: blobs, or manifests (and indexes). */
export type PeerKind = "blobs" | "manifests";

export interface PeerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** Bytes a pull got, by where they came from; the puller logs it once per pull. */
export interface SourceTally {
  upstream: number;
  peers: Record<string, number>;
}

export const MANIFEST_TYPES = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
] as const;

export const MAX_PEER_MANIFEST_BYTES = 4 * 1024 * 1024;

/** The media type of a stored document, when it is a manifest or an index. */
export function manifestTypeOf(body: Buffer): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof doc !== "object" || doc === null) return undefined;
  const d = doc as Record<string, unknown>;
  if (typeof d.mediaType === "string") return (MANIFEST_TYPES as readonly string[]).includes(d.mediaType) ? d.mediaType : undefined;
  if (d.schemaVersion !== 2) return undefined;
  if (Array.isArray(d.manifests)) return MANIFEST_TYPES[0];
  if (typeof d.config === "object" && d.config !== null && Array.isArray(d.layers)) return MANIFEST_TYPES[2];
  return undefined;
}

export function isManifestType(mediaType: string): boolean {
  return (MANIFEST_TYPES as readonly string[]).includes(mediaType);
}
