// Single-use tokens that name a pending streaming session in its URL. The RPC that issues one
// stores the whole request behind it, so the session later trusts only what the RPC validated,
// never the query string of whoever presents the token.
import { randomBytes } from "node:crypto";
import { InternalError, ResourceExhaustedError } from "../errors/errors.js";
import type { AttachParams, ExecParams } from "./backend.js";

export const StreamKind = {
  Exec: "exec",
  Attach: "attach",
  PortForward: "portforward",
} as const;
export type StreamKind = (typeof StreamKind)[keyof typeof StreamKind];

export interface PortForwardParams {
  podSandboxId: string;
  /** Only filled for the legacy WebSocket port-forward; SPDY clients name a port per stream. */
  ports: number[];
}

/** What a token stands for: the kind of session and the request that asked for it. */
export type PendingSession =
  | { kind: typeof StreamKind.Exec; params: ExecParams }
  | { kind: typeof StreamKind.Attach; params: AttachParams }
  | { kind: typeof StreamKind.PortForward; params: PortForwardParams };

export const TOKEN_DEFAULTS = {
  /** The kubelet calls the URL right after the RPC; a minute covers a slow proxy hop. */
  ttlMs: 60_000,
  /** Bounds the memory a caller can pin by asking for URLs it never uses. */
  maxInFlight: 1000,
} as const;

/** 6 random bytes are exactly 8 base64url characters, the token length kubelets are used to. */
const TOKEN_BYTES = 6;
const TOKEN_LENGTH = 8;
const MAX_COLLISION_RETRIES = 10;

export interface TokenCacheOptions {
  ttlMs?: number;
  maxInFlight?: number;
  /** Epoch milliseconds; injectable so tests can expire tokens without waiting. */
  now?: () => number;
}

export class TokenCache {
  private readonly entries = new Map<string, { session: PendingSession; expiresAt: number }>();
  private readonly ttlMs: number;
  private readonly maxInFlight: number;
  private readonly now: () => number;

  constructor(opts: TokenCacheOptions = {}) {
    this.ttlMs = opts.ttlMs ?? TOKEN_DEFAULTS.ttlMs;
    this.maxInFlight = opts.maxInFlight ?? TOKEN_DEFAULTS.maxInFlight;
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Stores a pending session and returns its token. ResourceExhaustedError past the cap. */
  issue(session: PendingSession): string {
    const now = this.now();
    // Expired entries go here rather than on a timer: nothing to unref, nothing to stop.
    for (const [token, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(token);
    if (this.entries.size >= this.maxInFlight) throw new ResourceExhaustedError("maximum number of in-flight requests exceeded");
    for (let attempt = 0; attempt < MAX_COLLISION_RETRIES; attempt++) {
      const token = randomBytes(TOKEN_BYTES).toString("base64url").slice(0, TOKEN_LENGTH);
      if (this.entries.has(token)) continue;
      this.entries.set(token, { session, expiresAt: now + this.ttlMs });
      return token;
    }
    throw new InternalError("could not find an unused streaming token");
  }

  /**
   * The session behind a token, if it is still valid and of the kind the path names. The token
   * is gone after this call whatever the outcome: a URL is good for one attempt only.
   */
  consume(token: string, kind: StreamKind): PendingSession | undefined {
    const entry = this.entries.get(token);
    if (!entry) return undefined;
    this.entries.delete(token);
    if (entry.expiresAt <= this.now() || entry.session.kind !== kind) return undefined;
    return entry.session;
  }
}
