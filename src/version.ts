import { readFileSync } from "node:fs";

// The version comes from package.json, the one place it is set.
const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };

export const RUNTIME_NAME = "podshim";
export const RUNTIME_VERSION = pkg.version;
/** The CRI API version podshim serves (runtime.v1). */
export const CRI_API_VERSION = "v1";
/** What Version answers in `version`: the kubelet reads it as the CRI API's version. */
export const KUBELET_API_VERSION = "0.1.0";
