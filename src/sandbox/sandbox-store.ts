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
}
