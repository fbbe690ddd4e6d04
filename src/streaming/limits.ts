// Caps on what streaming clients can hold open: port-forward connections per pod and on the
// node (each one is a helper process and a socket), and how plainly the server is exposed.
import { isIP } from "node:net";

export const STREAMING_LIMIT_DEFAULTS = {
  portForwardPerPod: 64,
  portForwardTotal: 1024,
  streamsPerSession: 256,
} as const;

export interface StreamingLimits {
  portForwardPerPod: number;
  portForwardTotal: number;
  /** Concurrent streams one SPDY session may have open. */
  streamsPerSession: number;
}

/** Counts live port-forward connections; acquire() hands back the release or the refusal text. */
export class ForwardLimiter {
  private total = 0;
  private readonly perPod = new Map<string, number>();

  constructor(private readonly limits: Pick<StreamingLimits, "portForwardPerPod" | "portForwardTotal">) {}

  acquire(podSandboxId: string): { release: () => void } | { refused: string } {
    const n = this.perPod.get(podSandboxId) ?? 0;
    if (n >= this.limits.portForwardPerPod) return { refused: `too many port-forward connections into pod ${podSandboxId} (at most ${this.limits.portForwardPerPod} at once)` };
    if (this.total >= this.limits.portForwardTotal) return { refused: `too many port-forward connections on this node (at most ${this.limits.portForwardTotal} at once)` };
    this.perPod.set(podSandboxId, n + 1);
    this.total++;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.total--;
        const left = (this.perPod.get(podSandboxId) ?? 1) - 1;
        if (left <= 0) this.perPod.delete(podSandboxId);
        else this.perPod.set(podSandboxId, left);
      },
    };
  }

  get active(): { total: number; pods: number } {
    return { total: this.total, pods: this.perPod.size };
  }
}

function isLoopback(host: string): boolean {
  const h = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (h === "localhost") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  if (isIP(h) === 6) return h === "::1";
  return false;
}

/** How the streaming server is reachable; a warning when others can reach it in plain text. */
export function streamingExposure(host: string, tls: boolean): { address: string; tls: boolean; loopbackOnly: boolean; warning?: string } {
  const loopbackOnly = isLoopback(host);
  const out = { address: host, tls, loopbackOnly };
  if (loopbackOnly || tls) return out;
  return { ...out, warning: `the streaming server listens on ${host} without TLS: anyone who can reach it and read a URL from the kubelet can exec into containers; set --stream-tls-cert/--stream-tls-key or a loopback --stream-address` };
}
