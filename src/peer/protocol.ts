// What podshim peers say to each other on top of the OCI distribution read API: a few response
// headers, ignored by anything else that speaks the API (a peer may be a plain registry mirror).
import { isManifestMediaType, sniffManifestType } from "../distribution/manifest.js";

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


export const MAX_PEER_MANIFEST_BYTES = 4 * 1024 * 1024;

/** The media type of a stored document, when it is a manifest or an index. */
export function manifestTypeOf(body: Buffer): string | undefined {
  const t = sniffManifestType(body);
  return t !== undefined && isManifestMediaType(t) ? t : undefined;
}

export const isManifestType = isManifestMediaType;
