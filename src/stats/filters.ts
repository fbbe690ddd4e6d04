// The CRI stats filters and id lookups, over the source's records. Pure.
//
// Filter semantics follow podshim's ListContainers / ListPodSandbox: ids match as prefixes
// (crictl users type 13-character ids), the label selector needs every pair to match exactly,
// and an empty filter matches everything. Unknown ids in a filter match nothing; they are not
// an error in a List call.
import type { ContainerStatsFilter, PodSandboxStatsFilter } from "../gen/cri/runtime/v1/api.js";
import type { StatsContainer, StatsSandbox } from "./types.js";

function matchesLabels(labels: Record<string, string>, selector: Record<string, string> | undefined): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}

export function matchContainer(c: StatsContainer, f: ContainerStatsFilter | undefined): boolean {
  return (!f?.id || c.id.startsWith(f.id)) &&
    (!f?.podSandboxId || c.sandboxId.startsWith(f.podSandboxId)) &&
    matchesLabels(c.labels, f?.labelSelector);
}

export function matchSandbox(s: StatsSandbox, f: PodSandboxStatsFilter | undefined): boolean {
  return (!f?.id || s.id.startsWith(f.id)) && matchesLabels(s.labels, f?.labelSelector);
}

/** By full id, else by a prefix only one record has; undefined when none or ambiguous. */
export function findById<T extends { id: string }>(items: readonly T[], idOrPrefix: string): T | undefined {
  if (idOrPrefix === "") return undefined;
  let hit: T | undefined;
  for (const it of items) {
    if (it.id === idOrPrefix) return it;
    if (!it.id.startsWith(idOrPrefix)) continue;
    if (hit) {
      // Ambiguous unless a later record is an exact match.
      return items.find((x) => x.id === idOrPrefix);
    }
    hit = it;
  }
  return hit;
}
