// HTTP to peers: HEAD to find out who holds a blob, GET to stream it, with short deadlines so a
// slow peer costs a second, not a pull. Peers speak plain HTTP on the node network; nothing
// they send is trusted: the caller verifies every byte against the digest.
import http from "node:http";
import type { IncomingMessage } from "node:http";
import { DeadlineExceededError, NotFoundError, UnavailableError, PodshimError, InternalError } from "../errors/errors.js";
import { PeerHeader, type PeerKind, type PeerState } from "./protocol.js";

export interface PeerClientOptions {
  /** Connect plus response headers; a peer slower than this is skipped. */
  headersTimeoutMs?: number;
  /** How long a body may send nothing before the peer counts as stalled. */
  stallTimeoutMs?: number;
}

export interface PeerHead {
  peer: string;
  state: PeerState;
  claim?: string;
  node?: string;
  size?: number;
  mediaType?: string;
  digest?: string;
}

export class PeerClient {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  private readonly headersTimeoutMs: number;
  readonly stallTimeoutMs: number;

  constructor(opts: PeerClientOptions = {}) {
    this.headersTimeoutMs = opts.headersTimeoutMs ?? 2_000;
    this.stallTimeoutMs = opts.stallTimeoutMs ?? 10_000;
  }

  close(): void {
    this.agent.destroy();
  }

  /** What the peer says about a digest: undefined for 404, throws when it cannot be asked. */
  /** `ns` is the registry the repository belongs to (?ns=, as containerd asks mirrors). */
  async head(peer: string, ns: string, repository: string, kind: PeerKind, reference: string, signal?: AbortSignal): Promise<PeerHead | undefined> {
    const res = await this.request(peer, "HEAD", path(ns, repository, kind, reference), {}, signal);
    res.resume();
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) throw new UnavailableError(`peer ${peer}: HEAD ${kind}/${reference}: HTTP ${res.statusCode}`);
    const state = res.headers[PeerHeader.state];
    const claim = res.headers[PeerHeader.claim];
    const node = res.headers[PeerHeader.node];
    const length = res.headers["content-length"];
    const type = res.headers["content-type"];
    const digest = res.headers["docker-content-digest"];
    return {
      peer,
      // A peer that is not podshim (a plain mirror) holds what it answers 200 for.
      state: state === "fetching-upstream" || state === "fetching-peer" || state === "claiming" ? state : "stored",
      ...(typeof claim === "string" ? { claim } : {}),
      ...(typeof node === "string" ? { node } : {}),
      ...(length !== undefined && /^\d+$/.test(length) ? { size: Number(length) } : {}),
      ...(typeof type === "string" ? { mediaType: type.split(";")[0]!.trim() } : {}),
      ...(typeof digest === "string" ? { digest } : {}),
    };
  }

  /** Streams content from `offset`; the response's status and range are checked, the bytes are not. */
  async get(peer: string, ns: string, repository: string, kind: PeerKind, digest: string, size: number, offset: number, signal?: AbortSignal): Promise<{ body: AsyncIterable<Buffer>; node?: string }> {
    const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-` } : {};
    const res = await this.request(peer, "GET", path(ns, repository, kind, digest), headers, signal);
    const what = `peer ${peer}: GET ${kind}/${digest}`;
    if (res.statusCode === 404) {
      res.resume();
      throw new NotFoundError(`${what}: not there`);
    }
    const ok = offset === 0 ? res.statusCode === 200 : res.statusCode === 206 && (res.headers["content-range"] ?? "").startsWith(`bytes ${offset}-`);
    if (!ok) {
      res.resume();
      throw new UnavailableError(`${what}: HTTP ${res.statusCode}${offset > 0 ? ` for a range from ${offset}` : ""}`);
    }
    const node = res.headers[PeerHeader.node];
    return { body: this.guarded(res, what, size - offset, signal), ...(typeof node === "string" ? { node } : {}) };
  }

  /** The body with a stall timer and a byte count: more or fewer bytes than expected fail. */
  private async *guarded(res: IncomingMessage, what: string, expected: number, signal?: AbortSignal): AsyncIterable<Buffer> {
    let received = 0;
    let timer: NodeJS.Timeout | undefined;
    const stall = () => {
      timer = setTimeout(() => res.destroy(new DeadlineExceededError(`${what}: stalled, no data for ${this.stallTimeoutMs / 1000} s`)), this.stallTimeoutMs);
      timer.unref();
    };
    const onAbort = () => res.destroy(new UnavailableError(`${what}: canceled`));
    signal?.addEventListener("abort", onAbort, { once: true });
    stall();
    try {
      for await (const chunk of res) {
        timer?.refresh();
        received += (chunk as Buffer).length;
        if (received > expected) throw new InternalError(`${what}: more than the ${expected} bytes expected`);
        yield chunk as Buffer;
      }
      if (received !== expected) throw new UnavailableError(`${what}: the peer sent ${received} of ${expected} bytes`);
    } catch (err) {
      if (err instanceof PodshimError) throw err;
      throw new UnavailableError(`${what}: ${(err as Error).message}`, { cause: err });
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      res.destroy();
    }
  }

  private request(peer: string, method: "GET" | "HEAD", path: string, headers: Record<string, string>, signal?: AbortSignal): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const url = new URL(`http://${peer}${path}`);
      const req = http.request(url, { method, headers, agent: this.agent });
      const timer = setTimeout(() => req.destroy(new DeadlineExceededError(`peer ${peer}: no answer within ${this.headersTimeoutMs} ms`)), this.headersTimeoutMs);
      timer.unref();
      const onAbort = () => req.destroy(new UnavailableError(`peer ${peer}: canceled`));
      signal?.addEventListener("abort", onAbort, { once: true });
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      req.on("error", (err) => {
        done();
        reject(err instanceof PodshimError ? err : new UnavailableError(`peer ${peer}: ${err.message}`, { cause: err }));
      });
      req.on("response", (res) => {
        done();
        resolve(res);
      });
      req.end();
    });
  }
}

function path(ns: string, repository: string, kind: PeerKind, reference: string): string {
  return `/v2/${repository}/${kind}/${reference}?ns=${encodeURIComponent(ns)}`;
}
