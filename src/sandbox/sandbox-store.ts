import type { PodSandboxConfig } from "../gen/cri/runtime/v1/api.js";
import { RecordIndex } from "../util/record-index.js";

export const SandboxState = { Ready: "ready", NotReady: "notready" } as const;
export type SandboxState = (typeof SandboxState)[keyof typeof SandboxState];

/** A pod sandbox as podshim tracks it. */
export interface SandboxRecord {
  id: string;
  /** The pod identity the name registry holds: name_namespace_uid_attempt. */
  nameKey: string;
  config: PodSandboxConfig;
  runtimeHandler: string;
  /** Nanoseconds since the epoch. */
  createdAt: bigint;
  /** The pinned network namespace; "" for host network or once released. */
  netnsPath: string;
  ips: string[];
  state: SandboxState;
  pid: number;
  /** Per-sandbox files (hostname, hosts, resolv.conf). */
  dir: string;
  /** RunPodSandbox is still setting it up: indexed (so its pause's exit is seen) but not
   * listed, and nothing can be created in it. */
  creating?: boolean;
  /** The pause process exited while the sandbox was being created. */
  exitedWhileCreating?: boolean;
}

export function nameKeyOf(config: PodSandboxConfig): string {
  const m = config.metadata!;
  return [m.name, m.namespace, m.uid, m.attempt].join("_");
}

/** The index of sandboxes (rebuilt from containerd at start) and their name registry. */
export class SandboxStore extends RecordIndex<SandboxRecord> {
  constructor() {
    super("pod sandbox");
  }

  /** The sandboxes callers may see: every one but those still being created. */
  visible(): SandboxRecord[] {
    return this.all().filter((r) => !r.creating);
  }

  /** By id or prefix, as callers see them. */
  find(idOrPrefix: string): SandboxRecord | undefined {
    const rec = this.get(idOrPrefix);
    return rec && !rec.creating ? rec : undefined;
  }
}
