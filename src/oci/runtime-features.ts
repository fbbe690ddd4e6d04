// What a runtime handler can do, as Status reports it to the kubelet (which refuses pods that
// need a feature the handler lacks). runc says which mount options it knows through
// `runc features` (runc >= 1.1); recursive read-only mounts also need mount_setattr(2), in
// Linux since 5.12. User namespaces for pods are not supported by podshim at all.
import { release } from "node:os";
import type { RuntimeHandlerConfig } from "../config/runtimes.js";
import { DEFAULT_RUNTIME_TYPE } from "../config/runtimes.js";
import { runProgram } from "../util/exec.js";

export interface HandlerFeatures {
  recursiveReadOnlyMounts: boolean;
  userNamespaces: boolean;
}

const NONE: HandlerFeatures = { recursiveReadOnlyMounts: false, userNamespaces: false };
const PROBE_TIMEOUT_MS = 5_000;

/** True when a `uname -r` style release is at least major.minor. */
export function kernelAtLeast(releaseText: string, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(releaseText);
  if (!m) return false;
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj > major || (maj === major && min >= minor);
}

/** The features of a `runc features` JSON answer (anything unreadable counts as none). */
export function featuresFromRuncAnswer(json: string, kernelRelease: string): HandlerFeatures {
  let mountOptions: unknown;
  try {
    mountOptions = (JSON.parse(json) as { mountOptions?: unknown }).mountOptions;
  } catch {
    return NONE;
  }
  const rro = Array.isArray(mountOptions) && mountOptions.includes("rro") && kernelAtLeast(kernelRelease, 5, 12);
  return { recursiveReadOnlyMounts: rro, userNamespaces: false };
}

/** Probes each runc binary once; a binary that cannot be asked is retried on the next call. */
export class RuntimeFeatureProbe {
  private readonly known = new Map<string, Promise<HandlerFeatures>>();

  features(handler: RuntimeHandlerConfig): Promise<HandlerFeatures> {
    if (handler.runtimeType !== DEFAULT_RUNTIME_TYPE) return Promise.resolve(NONE);
    const binary = handler.options.binaryName || "runc";
    let answer = this.known.get(binary);
    if (!answer) {
      answer = runProgram(binary, ["features"], { timeoutMs: PROBE_TIMEOUT_MS, what: `${binary} features` }).then(
        (r) => (r.code === 0 ? featuresFromRuncAnswer(r.stdout, release()) : NONE),
        () => {
          this.known.delete(binary);
          return NONE;
        },
      );
      this.known.set(binary, answer);
    }
    return answer;
  }
}
