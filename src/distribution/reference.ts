// Image references as the kubelet sends them, normalised the way Docker and containerd do
// (distribution's reference grammar plus its docker.io defaults), so that "busybox",
// "docker.io/library/busybox:latest" and "index.docker.io/library/busybox" name one image.
import { InvalidArgumentError, type PodshimError } from "../errors/errors.js";

export interface ImageRef {
  /** Registry host with optional port: "docker.io", "127.0.0.1:5000", "[::1]:5000". */
  domain: string;
  /** Repository path inside the registry: "library/busybox". */
  path: string;
  tag?: string;
  digest?: string;
}

export const DEFAULT_DOMAIN = "docker.io";
const LEGACY_DEFAULT_DOMAIN = "index.docker.io";
const OFFICIAL_REPO_PREFIX = "library/";
const DEFAULT_TAG = "latest";
/** distribution's NameTotalLengthMax, applied to the normalised domain/path. */
const NAME_MAX = 255;

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const TAG = /^\w[\w.-]{0,127}$/;
const HEX64 = /^[a-f0-9]{64}$/;
const DIGEST = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):(.+)$/;
/** Algorithms whose encoded length we know; any other algorithm only has to look like one. */
const KNOWN_DIGEST_HEX: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };
/** distribution's grammar for the encoded part of a digest in a reference. */
const OTHER_DIGEST_HEX = /^[a-fA-F0-9]{32,}$/;

function invalid(input: string, reason: string): PodshimError {
  return new InvalidArgumentError(`invalid image reference ${JSON.stringify(input)}: ${reason}`);
}

/** The reason a digest string is malformed, or undefined when it is fine. */
function digestProblem(digest: string): string | undefined {
  const m = DIGEST.exec(digest);
  if (!m) return `digest ${JSON.stringify(digest)} is not of the form algorithm:hex`;
  const [, algorithm, encoded] = m as unknown as [string, string, string];
  const known = KNOWN_DIGEST_HEX[algorithm];
  if (known !== undefined) {
    if (encoded.length !== known || !/^[a-f0-9]+$/.test(encoded)) {
      return `${algorithm} digest must be ${known} lowercase hex digits, got ${JSON.stringify(encoded)}`;
    }
    return undefined;
  }
  if (!OTHER_DIGEST_HEX.test(encoded)) return `digest ${JSON.stringify(digest)} must end in at least 32 hex digits`;
  return undefined;
}

/** Splits "algorithm:encoded"; throws InvalidArgumentError naming `what` when malformed. */
export function parseDigest(digest: string, what = "digest"): { algorithm: string; encoded: string } {
  const problem = digestProblem(digest);
  if (problem) throw new InvalidArgumentError(`invalid ${what}: ${problem}`);
  const i = digest.indexOf(":");
  return { algorithm: digest.slice(0, i), encoded: digest.slice(i + 1) };
}

export function isDigest(s: string): boolean {
  return digestProblem(s) === undefined;
}

/**
 * Splits the registry host off a name. Following distribution's current rules, the first
 * component is a host when it is "localhost", contains "." or ":", or has uppercase letters
 * (Docker Hub namespaces cannot), otherwise the name lives on Docker Hub.
 */
function splitDomain(name: string): { domain: string; path: string } {
  const slash = name.indexOf("/");
  if (slash === -1) return { domain: DEFAULT_DOMAIN, path: OFFICIAL_REPO_PREFIX + name };
  const first = name.slice(0, slash);
  const rest = name.slice(slash + 1);
  let domain: string;
  let path: string;
  if (first === "localhost" || /[.:]/.test(first) || first.toLowerCase() !== first) {
    domain = first === LEGACY_DEFAULT_DOMAIN ? DEFAULT_DOMAIN : first;
    path = rest;
  } else {
    domain = DEFAULT_DOMAIN;
    path = name;
  }
  if (domain === DEFAULT_DOMAIN && !path.includes("/")) path = OFFICIAL_REPO_PREFIX + path;
  return { domain, path };
}

/**
 * Parses and normalises an image reference: "busybox" becomes docker.io/library/busybox:latest.
 * The tag defaults to "latest" only when there is no digest; a reference with both keeps both
 * (the digest is what gets pulled). Throws InvalidArgumentError quoting the input.
 */
export function parseImageRef(input: string): ImageRef {
  if (input === "") throw invalid(input, "it is empty");
  // distribution refuses these so that an image id is never mistaken for a Docker Hub name.
  if (HEX64.test(input)) throw invalid(input, "a 64-character hex string is an image id, not a repository name");

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (digest === "") throw invalid(input, `nothing follows "@"`);
    if (digest.includes("@")) throw invalid(input, `it has more than one "@"`);
    const problem = digestProblem(digest);
    if (problem) throw invalid(input, problem);
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) {
      throw invalid(
        input,
        `tag ${JSON.stringify(tag)} must be 1 to 128 letters, digits, "_", "." or "-", not starting with "." or "-"`,
      );
    }
  }
  if (rest === "") throw invalid(input, "the repository name is empty");

  const { domain, path } = splitDomain(rest);
  if (!DOMAIN.test(domain)) throw invalid(input, `registry host ${JSON.stringify(domain)} is not a valid host[:port]`);
  if (path.toLowerCase() !== path) throw invalid(input, `repository name ${JSON.stringify(path)} must be lowercase`);
  for (const component of path.split("/")) {
    if (!PATH_COMPONENT.test(component)) {
      throw invalid(
        input,
        component === ""
          ? `repository name ${JSON.stringify(path)} has an empty path component`
          : `path component ${JSON.stringify(component)} must be lowercase letters and digits joined by ".", "_", "__" or dashes`,
      );
    }
  }
  const name = `${domain}/${path}`;
  if (name.length > NAME_MAX) throw invalid(input, `the name ${name} is ${name.length} characters, more than ${NAME_MAX}`);

  const ref: ImageRef = { domain, path };
  if (tag !== undefined) ref.tag = tag;
  else if (digest === undefined) ref.tag = DEFAULT_TAG;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** "domain/path" */
export function refName(r: ImageRef): string {
  return `${r.domain}/${r.path}`;
}

/** "domain/path[:tag][@digest]" */
export function refString(r: ImageRef): string {
  return `${refName(r)}${r.tag !== undefined ? `:${r.tag}` : ""}${r.digest !== undefined ? `@${r.digest}` : ""}`;
}

/** True for what names an image by id rather than by reference: "sha256:<64 hex>" or bare 64 hex. */
export function isImageId(s: string): boolean {
  return HEX64.test(s.startsWith("sha256:") ? s.slice("sha256:".length) : s);
}
