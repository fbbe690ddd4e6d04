import { readFileSync } from "node:fs";

// The version comes from package.json, the one place it is set.
const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };

/** The commit `npm run build` recorded (scripts/build-info.mjs); "unknown" when run from source or built without git. */
function buildCommit(): string {
  try {
    const info = JSON.parse(readFileSync(new URL("./build-info.json", import.meta.url), "utf8")) as { commit?: unknown };
    return typeof info.commit === "string" && info.commit !== "" ? info.commit : "unknown";
  } catch {
    return "unknown";
  }
}

export const RUNTIME_NAME = "podshim";
export const RUNTIME_VERSION = pkg.version;
export const RUNTIME_COMMIT = buildCommit();
/** CRI Version's runtime_version: the release with the commit as semver build metadata. */
export const RUNTIME_VERSION_WITH_COMMIT = RUNTIME_COMMIT === "unknown" ? RUNTIME_VERSION : `${RUNTIME_VERSION}+${RUNTIME_COMMIT}`;
/** The CRI API version podshim serves (runtime.v1). */
export const CRI_API_VERSION = "v1";
/** What Version answers in `version`: the kubelet reads it as the CRI API's version. */
export const KUBELET_API_VERSION = "0.1.0";
