import { InvalidArgumentError, NotFoundError } from "../errors/errors.js";
import { isIndex, isManifest, MediaType, type Descriptor, type Platform } from "./descriptor.js";

export interface ImageIndex {
  mediaType: string;
  manifests: Descriptor[];
}

export interface ImageManifest {
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

/** The parts of an OCI/Docker image config podshim uses. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  config?: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    StopSignal?: string;
    ExposedPorts?: Record<string, unknown>;
    Volumes?: Record<string, unknown>;
    Labels?: Record<string, string>;
  };
  rootfs: { type: string; diff_ids: string[] };
  [key: string]: unknown;
}

const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;

function json(bytes: Buffer, what: string): Record<string, unknown> {
  try {
    const v = JSON.parse(bytes.toString("utf8"));
    if (typeof v === "object" && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new InvalidArgumentError(`${what} is not a JSON object`);
}

function descriptor(v: unknown, what: string): Descriptor {
  const d = v as Partial<Descriptor> | null;
  if (!d || typeof d.mediaType !== "string" || typeof d.digest !== "string" || !DIGEST.test(d.digest) || typeof d.size !== "number" || d.size < 0) {
    throw new InvalidArgumentError(`${what} is not a valid descriptor: ${JSON.stringify(v)?.slice(0, 200)}`);
  }
  return d as Descriptor;
}

/** The media type of a manifest document: its own field, else what the registry said. */
/** The media types a manifest request may answer with (schema 2 and OCI manifests and indexes). */
export const MANIFEST_MEDIA_TYPES = [
  MediaType.OciIndex, MediaType.DockerManifestList, MediaType.OciManifest, MediaType.DockerManifest,
] as const;

export function isManifestMediaType(mediaType: string): boolean {
  return (MANIFEST_MEDIA_TYPES as readonly string[]).includes(mediaType);
}

/**
 * What a document says it is when nothing else does: its own mediaType, else what its shape
 * is (a schema 1 manifest, an index, a manifest); undefined when it is not a JSON object.
 */
export function sniffManifestType(bytes: Buffer): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof doc !== "object" || doc === null) return undefined;
  const d = doc as Record<string, unknown>;
  if (typeof d.mediaType === "string" && d.mediaType !== "") return d.mediaType;
  if (d.schemaVersion === 1) return "application/vnd.docker.distribution.manifest.v1+json";
  if (Array.isArray(d.manifests)) return MediaType.OciIndex;
  if (typeof d.config === "object" && d.config !== null) return MediaType.OciManifest;
  return undefined;
}

export function documentMediaType(bytes: Buffer, fallback: string): string {
  const doc = json(bytes, "manifest");
  if (typeof doc.mediaType === "string" && doc.mediaType !== "") return doc.mediaType;
  if (Array.isArray(doc.manifests)) return MediaType.OciIndex;
  if (doc.config !== undefined) return MediaType.OciManifest;
  return fallback;
}

export function parseIndex(bytes: Buffer, what = "image index"): ImageIndex {
  const doc = json(bytes, what);
  if (!Array.isArray(doc.manifests)) throw new InvalidArgumentError(`${what} has no manifests list`);
  return { mediaType: (doc.mediaType as string) ?? MediaType.OciIndex, manifests: doc.manifests.map((m, i) => descriptor(m, `${what} entry ${i}`)) };
}

export function parseManifest(bytes: Buffer, what = "image manifest"): ImageManifest {
  const doc = json(bytes, what);
  if (doc.schemaVersion !== 2) throw new InvalidArgumentError(`${what} has schemaVersion ${JSON.stringify(doc.schemaVersion)}; only schema 2 images are supported`);
  const config = descriptor(doc.config, `${what} config`);
  if (!Array.isArray(doc.layers)) throw new InvalidArgumentError(`${what} has no layers list`);
  return { mediaType: (doc.mediaType as string) ?? MediaType.OciManifest, config, layers: doc.layers.map((l, i) => descriptor(l, `${what} layer ${i}`)) };
}

export function parseConfig(bytes: Buffer, layerCount: number, what = "image config"): ImageConfig {
  const doc = json(bytes, what) as Partial<ImageConfig>;
  const diffIds = doc.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.some((d) => typeof d !== "string" || !DIGEST.test(d))) {
    throw new InvalidArgumentError(`${what} has no valid rootfs.diff_ids`);
  }
  if (diffIds.length !== layerCount) {
    throw new InvalidArgumentError(`${what} lists ${diffIds.length} diff IDs for ${layerCount} layers`);
  }
  return doc as ImageConfig;
}

const LAYER_TYPES = new Set<string>([
  MediaType.OciLayer, MediaType.OciLayerGzip, MediaType.OciLayerZstd, MediaType.OciLayerNonDistributableGzip,
  MediaType.DockerLayerGzip, MediaType.DockerForeignLayerGzip, "application/vnd.oci.image.layer.nondistributable.v1.tar",
]);

export function checkLayerTypes(manifest: ImageManifest, what: string): void {
  for (const l of manifest.layers) {
    if (!LAYER_TYPES.has(l.mediaType)) throw new InvalidArgumentError(`${what} has a layer of unsupported media type ${l.mediaType}`);
  }
}

function platformText(p?: Platform): string {
  return p ? [p.os, p.architecture, p.variant].filter(Boolean).join("/") : "unknown";
}

/**
 * Picks the manifest for `want` from an index: os and architecture must match; among those
 * an exact variant wins, then one without a variant (arm64's implied v8).
 */
export function selectManifest(index: ImageIndex, want: Platform, what: string): Descriptor {
  const candidates = index.manifests.filter((m) => isManifest(m.mediaType) && m.platform?.os === want.os && m.platform?.architecture === want.architecture);
  const exact = candidates.find((m) => (m.platform?.variant ?? "") === (want.variant ?? ""));
  const loose = candidates.find((m) => !m.platform?.variant || (want.architecture === "arm64" && m.platform.variant === "v8"));
  const chosen = exact ?? loose ?? (candidates.length === 1 ? candidates[0] : undefined);
  if (!chosen) {
    const offered = index.manifests.map((m) => platformText(m.platform)).join(", ") || "none";
    throw new NotFoundError(`${what} has no image for ${platformText(want)} (it has ${offered})`);
  }
  return chosen;
}

export { isIndex, isManifest };
