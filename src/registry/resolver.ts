// Resolving a tag or digest to its manifest's descriptor on one host: HEAD when the headers
// say enough, otherwise GET and read the manifest (sniffing its type when Content-Type does
// not say), refusing Docker schema 1 and manifests beyond containerd's size limit, and checking
// the digest against the reference and Docker-Content-Digest.
import type { IncomingMessage } from "node:http";
import { ErrorKind, InternalError, ResourceExhaustedError, UnimplementedError, isKind, messageOf } from "../errors/errors.js";
import type { PodshimError } from "../errors/errors.js";
import { parseDigest, refString } from "../distribution/reference.js";
import type { ImageRef } from "../distribution/reference.js";
import { MANIFEST_MEDIA_TYPES, isManifestMediaType, sniffManifestType } from "../distribution/manifest.js";
import type { Descriptor } from "../distribution/descriptor.js";
import type { RegistryApi } from "./api.js";
import type { RegistryCredentials } from "./auth.js";
import { contentLength, digestMismatch, digestOf } from "./body.js";
import { hostLabel } from "./hosts.js";
import type { RegistryHost } from "./hosts.js";

/** What resolve asks for, best first: indexes before single manifests, OCI before Docker. */
export { MANIFEST_MEDIA_TYPES };
/** containerd's limit: no real manifest comes near it, a hostile one could be endless. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

const SCHEMA1_MEDIA_TYPES = new Set([
  "application/vnd.docker.distribution.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v1+prettyjws",
]);

function contentType(res: IncomingMessage): string {
  return (res.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
}



function digestHeader(res: IncomingMessage, what: string): string | undefined {
  const value = res.headers["docker-content-digest"];
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined || raw === "") return undefined;
  try {
    parseDigest(raw, "Docker-Content-Digest");
  } catch (err) {
    throw new InternalError(`${what}: ${messageOf(err)}`, { cause: err });
  }
  return raw;
}

function schema1(name: string, from: string): PodshimError {
  return new UnimplementedError(
    `image "${name}" at ${from} is a Docker schema 1 manifest, which podshim does not pull; push it again as a Docker schema 2 or OCI image`,
  );
}

function tooLarge(name: string, from: string, size: number | undefined): PodshimError {
  return new ResourceExhaustedError(
    `manifest of "${name}" at ${from} is ${size === undefined ? "more" : `${size} bytes, more`} than the ${MAX_MANIFEST_BYTES} bytes podshim accepts`,
  );
}

/** The descriptor of `ref`'s manifest or index as `host` serves it. */
export async function resolveOnHost(
  api: RegistryApi,
  host: RegistryHost,
  ref: ImageRef,
  creds: RegistryCredentials | undefined,
  signal?: AbortSignal,
): Promise<Descriptor> {
  const source = { repository: ref.path, ref, ...(creds ? { creds } : {}) };
  const reference = ref.digest ?? ref.tag ?? "latest";
  const name = refString(ref);
  const from = hostLabel(host);
  const what = `resolve of ${name} at ${from}`;
  const url = api.endpoint(host, source, "manifests", reference);
  const headers = { ...api.headers(host), Accept: MANIFEST_MEDIA_TYPES.join(", ") };
  const opt = signal ? { signal } : {};

  const head = await api.send(host, { method: "HEAD", url, headers, what, ...opt }, source);
  head.resume();
  if (head.statusCode === 200) {
    const mediaType = contentType(head);
    if (SCHEMA1_MEDIA_TYPES.has(mediaType)) throw schema1(name, from);
    const size = contentLength(head);
    const headerDigest = digestHeader(head, what);
    const sameAlgorithm = ref.digest && headerDigest && headerDigest.split(":")[0] === ref.digest.split(":")[0];
    if (sameAlgorithm && headerDigest !== ref.digest) throw digestMismatch(ref.digest!, from, headerDigest!);
    const digest = ref.digest ?? headerDigest;
    if (isManifestMediaType(mediaType) && size !== undefined && digest) {
      if (size > MAX_MANIFEST_BYTES) throw tooLarge(name, from, size);
      return { mediaType, digest, size };
    }
    // Not enough from HEAD: the body tells the rest.
  } else if (head.statusCode !== 405) {
    throw await api.statusError(head, "HEAD", what, `manifest ${reference} of ${ref.path}`);
  }

  const res = await api.send(host, { method: "GET", url, headers, what, ...opt }, source);
  if (res.statusCode !== 200) throw await api.statusError(res, "GET", what, `manifest ${reference} of ${ref.path}`);
  const announced = contentLength(res);
  if (announced !== undefined && announced > MAX_MANIFEST_BYTES) {
    res.destroy();
    throw tooLarge(name, from, announced);
  }
  const headerDigest = digestHeader(res, what);
  let body: Buffer;
  try {
    body = await api.readBody(res, { what, limit: MAX_MANIFEST_BYTES, ...opt });
  } catch (err) {
    if (isKind(err, ErrorKind.ResourceExhausted)) throw tooLarge(name, from, undefined);
    throw err;
  }
  let mediaType = contentType(res);
  if (!isManifestMediaType(mediaType) && !SCHEMA1_MEDIA_TYPES.has(mediaType)) mediaType = sniffManifestType(body) ?? mediaType;
  if (SCHEMA1_MEDIA_TYPES.has(mediaType)) throw schema1(name, from);
  if (!isManifestMediaType(mediaType)) {
    throw new UnimplementedError(`${what}: unsupported manifest media type ${JSON.stringify(mediaType)}`);
  }
  const algorithm = ref.digest ? parseDigest(ref.digest).algorithm : "sha256";
  const actual = digestOf(algorithm, body);
  if (ref.digest && actual !== ref.digest) throw digestMismatch(ref.digest, from, actual);
  if (headerDigest && headerDigest.startsWith(`${algorithm}:`) && headerDigest !== actual) {
    throw digestMismatch(headerDigest, from, actual);
  }
  return { mediaType, digest: actual, size: body.length };
}
