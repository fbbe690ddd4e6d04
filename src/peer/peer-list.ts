// Which peers to ask, and which to leave alone for a while. Peers come from the config (static)
// and from a file an operator or the bed keeps up to date; the file is looked at (stat) every
// time the list is asked for and re-read when it changed, so a new node is used at its next
// pull without a restart or a watcher that can miss a rename.
import { readFile, stat } from "node:fs/promises";
import type { Logger } from "../logger/logger.js";
import { messageOf } from "../errors/errors.js";

/** Why a peer was set aside; the backoff grows with each failure in a row. */
export type PeerFailure = "unreachable" | "slow" | "corrupt" | "error";

const BACKOFF_BASE_MS: Record<PeerFailure, number> = {
  unreachable: 5_000,
  slow: 5_000,
  error: 5_000,
  // A peer that sent bytes that are not what the digest names is not asked for a long time.
  corrupt: 5 * 60_000,
};
const BACKOFF_MAX_MS = 5 * 60_000;
const HOST_PORT = /^(?:\[[0-9a-fA-F:.]+\]|[^\s:[\]/]+):\d{1,5}$/;

interface PeerHealth {
  failures: number;
  until: number;
  last?: PeerFailure;
}

export interface PeerListOptions {
  peers: readonly string[];
  file?: string;
  /** This node's own address(es): never asked. */
  self?: readonly string[];
  logger: Logger;
  now?: () => number;
}

export class PeerList {
  private fromFile: string[] = [];
  private fileStamp = "";
  private readonly health = new Map<string, PeerHealth>();
  /** Peers that turned out to be this node (they answered with its instance id). */
  private readonly selves = new Set<string>();
  private readonly now: () => number;

  constructor(private readonly opts: PeerListOptions) {
    this.now = opts.now ?? Date.now;
    for (const s of opts.self ?? []) this.selves.add(s);
  }

  /** Every configured peer, the file re-read when it changed (a missing file is an empty list). */
  async all(): Promise<string[]> {
    if (this.opts.file) await this.refresh(this.opts.file);
    const out = new Set<string>();
    for (const p of [...this.opts.peers, ...this.fromFile]) if (!this.selves.has(p)) out.add(p);
    return [...out];
  }

  /** The peers not in backoff now. */
  async available(): Promise<string[]> {
    const t = this.now();
    return (await this.all()).filter((p) => (this.health.get(p)?.until ?? 0) <= t);
  }

  failed(peer: string, why: PeerFailure): void {
    const h = this.health.get(peer) ?? { failures: 0, until: 0 };
    h.failures++;
    h.last = why;
    const ms = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS[why] * 2 ** Math.min(h.failures - 1, 10));
    h.until = this.now() + ms;
    this.health.set(peer, h);
    this.opts.logger.warn({ peer, reason: why, backoffMs: ms }, "peer set aside");
  }

  succeeded(peer: string): void {
    this.health.delete(peer);
  }

  isSelf(peer: string): void {
    this.selves.add(peer);
  }

  /** For Status verbose: every peer and whether it is set aside, and until when. */
  async describe(): Promise<{ peer: string; state: string; reason?: string; retryAt?: string }[]> {
    const t = this.now();
    return (await this.all()).map((peer) => {
      const h = this.health.get(peer);
      if (!h || h.until <= t) return { peer, state: "ok" };
      return { peer, state: "backoff", ...(h.last ? { reason: h.last } : {}), retryAt: new Date(h.until).toISOString() };
    });
  }

  private async refresh(file: string): Promise<void> {
    let stamp: string;
    try {
      const st = await stat(file);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      stamp = "absent";
    }
    if (stamp === this.fileStamp) return;
    this.fileStamp = stamp;
    if (stamp === "absent") {
      this.fromFile = [];
      return;
    }
    try {
      this.fromFile = parsePeersFile(await readFile(file, "utf8"), (line) => this.opts.logger.warn({ file, line }, "peers file: not HOST:PORT; line ignored"));
      this.opts.logger.info({ file, peers: this.fromFile }, "peers file read");
    } catch (err) {
      this.opts.logger.warn({ file, err: messageOf(err) }, "peers file could not be read; keeping the last list");
    }
  }
}

/** HOST:PORT per line; blank lines and # comments skipped; anything else reported and skipped. */
export function parsePeersFile(text: string, bad: (line: string) => void = () => undefined): string[] {
  const out: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (line === "") continue;
    if (HOST_PORT.test(line) && Number(line.slice(line.lastIndexOf(":") + 1)) <= 65535) out.push(line);
    else bad(line);
  }
  return out;
}
