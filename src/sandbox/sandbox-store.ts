import { AlreadyExistsError } from "../errors/errors.js";
import type { PodSandboxConfig } from "../gen/cri/runtime/v1/api.js";

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

/**
 * The in-memory index of sandboxes (rebuilt from containerd at start) and the name registry:
 * one pod identity maps to one sandbox while that sandbox exists.
 */
export class SandboxStore {
  private readonly byId = new Map<string, SandboxRecord>();
  private readonly names = new Map<string, string>();

  /** Reserves a pod identity for an id; refuses when another sandbox holds it. */
  reserve(nameKey: string, id: string): void {
    const holder = this.names.get(nameKey);
    if (holder && holder !== id) {
      throw new AlreadyExistsError(`pod sandbox name "${nameKey}" is already reserved for sandbox ${holder}; remove it first`);
    }
    this.names.set(nameKey, id);
  }

  release(nameKey: string, id: string): void {
    if (this.names.get(nameKey) === id) this.names.delete(nameKey);
  }

  add(rec: SandboxRecord): void {
    this.byId.set(rec.id, rec);
    this.names.set(rec.nameKey, rec.id);
  }

  delete(id: string): void {
    const rec = this.byId.get(id);
    if (!rec) return;
    this.byId.delete(id);
    this.release(rec.nameKey, id);
  }

  /** By full id or unique prefix (crictl shows 13-character ids). */
  get(idOrPrefix: string): SandboxRecord | undefined {
    const exact = this.byId.get(idOrPrefix);
    if (exact || idOrPrefix.length === 0) return exact;
    let hit: SandboxRecord | undefined;
    for (const [id, rec] of this.byId) {
      if (!id.startsWith(idOrPrefix)) continue;
      if (hit) return undefined;
      hit = rec;
    }
    return hit;
  }

  all(): SandboxRecord[] {
    return [...this.byId.values()];
  }
}
