// A pod's network counters from /proc/<pid>/net/dev of a process inside the pod's network
// namespace (the pause process): procfs shows that file through the process's own netns, so
// nothing has to enter the namespace (no nsenter, no spawn, no netlink socket in the netns).
import { readPseudoFile } from "./read.js";

export interface InterfaceCounters {
  name: string;
  rxBytes: bigint;
  rxPackets: bigint;
  rxErrors: bigint;
  rxDropped: bigint;
  txBytes: bigint;
  txPackets: bigint;
  txErrors: bigint;
  txDropped: bigint;
}

/** The interface the kubelet reports as the pod's (its network.DefaultInterfaceName). */
export const DEFAULT_INTERFACE = "eth0";

/**
 * Parses /proc/net/dev: two header lines, then "<name>: <8 receive> <8 transmit>" counters
 * (bytes packets errs drop fifo frame compressed multicast | bytes packets errs drop fifo
 * colls carrier compressed). Large counters can follow the colon with no space.
 */
export function parseNetDev(text: string): InterfaceCounters[] {
  const out: InterfaceCounters[] = [];
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const f = line.slice(colon + 1).trim().split(/\s+/);
    if (name === "" || name.includes("|") || f.length < 16 || !f.every((x) => /^\d+$/.test(x))) continue;
    const n = f.map((x) => BigInt(x));
    out.push({
      name,
      rxBytes: n[0]!, rxPackets: n[1]!, rxErrors: n[2]!, rxDropped: n[3]!,
      txBytes: n[8]!, txPackets: n[9]!, txErrors: n[10]!, txDropped: n[11]!,
    });
  }
  return out;
}

/** The pod's interfaces as the CRI groups them: the default one apart, loopback left out. */
export function splitInterfaces(all: readonly InterfaceCounters[], defaultName = DEFAULT_INTERFACE): { default?: InterfaceCounters; others: InterfaceCounters[] } {
  const def = all.find((i) => i.name === defaultName);
  const others = all.filter((i) => i.name !== defaultName && i.name !== "lo");
  return def ? { default: def, others } : { others };
}

/** The interfaces of the network namespace `pid` is in; undefined when the process is gone. */
export async function readNetDev(pid: number, procRoot = "/proc"): Promise<InterfaceCounters[] | undefined> {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  // A pod's lo and eth0 take ~450 bytes: a room from Node's Buffer pool (under 4 KiB), not a
  // fresh 8 KiB backing store per pod per call.
  const text = await readPseudoFile(`${procRoot}/${pid}/net/dev`, 2048);
  return text === undefined ? undefined : parseNetDev(text);
}
