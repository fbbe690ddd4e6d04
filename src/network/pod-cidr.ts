import { join } from "node:path";
import { InvalidArgumentError } from "../errors/errors.js";
import { readJsonIfExists, writeJsonAtomic } from "../util/atomic-file.js";

/**
 * The pod CIDR(s) the kubelet hands over in UpdateRuntimeConfig, kept for CNI (host-local's
 * ipRanges). Written under the state dir so a restarted podshim has it before the kubelet
 * says it again.
 */
export class PodCidrStore {
  private cidrs: string[] = [];
  private readonly file: string;

  constructor(stateDir: string) {
    this.file = join(stateDir, "pod-cidr.json");
  }

  async load(): Promise<void> {
    const saved = await readJsonIfExists<{ cidrs: string[] }>(this.file);
    this.cidrs = saved?.cidrs ?? [];
  }

  get current(): readonly string[] {
    return this.cidrs;
  }

  /** Accepts the kubelet's comma-separated form ("10.244.1.0/24,fd00:1::/64"); "" clears it. */
  async set(podCidr: string): Promise<boolean> {
    const cidrs = podCidr.split(",").map((s) => s.trim()).filter((s) => s !== "");
    for (const c of cidrs) {
      if (!isCidr(c)) throw new InvalidArgumentError(`pod CIDR "${c}" is not an IPv4 or IPv6 CIDR like 10.244.0.0/24`);
    }
    if (cidrs.join(",") === this.cidrs.join(",")) return false;
    await writeJsonAtomic(this.file, { cidrs });
    this.cidrs = cidrs;
    return true;
  }
}

export function isCidr(s: string): boolean {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s);
  if (!m) return false;
  const prefix = Number(m[2]);
  const ip = m[1]!;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) return ip.split(".").every((o) => Number(o) <= 255) && prefix <= 32;
  return ip.includes(":") && /^[0-9a-fA-F:]+$/.test(ip) && prefix <= 128;
}
