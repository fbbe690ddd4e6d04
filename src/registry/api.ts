// Requests to a host's distribution API on top of the transport: endpoint URLs, the headers
// hosts.toml adds, authorization (the auth.ts challenge and token dance, with the host's TLS
// settings for the token server), and the errors that failed statuses stand for.
import type { IncomingMessage } from "node:http";
import { posix } from "node:path";
import { InternalError, NotFoundError, ResourceExhaustedError, UnauthenticatedError, UnavailableError } from "../errors/errors.js";
import type { PodshimError } from "../errors/errors.js";
import type { ImageRef } from "../distribution/reference.js";
import type { Descriptor } from "../distribution/descriptor.js";
import { RegistryAuth, pullScope } from "./auth.js";
import type { AuthContext, AuthHttp, AuthHttpRequest, RegistryCredentials } from "./auth.js";
import { GuardedBody, readBody, readVerified } from "./body.js";
import type { GuardedBodyOptions, ReadBodyOptions, ReadVerifiedOptions } from "./body.js";
import type { RegistryHost } from "./hosts.js";
import type { Exchange, HttpTransport } from "./transport.js";

const MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024;
const MAX_ERROR_BODY_BYTES = 16 * 1024;

/** The repository a request is about, and the credentials for it. */
export interface Repository {
  /** The repository path as sent to the host. */
  repository: string;
  ref: ImageRef;
  creds?: RegistryCredentials;
}

/** The registry's error body in a line: "CODE: message" for distribution's JSON errors. */
function errorSummary(body: Buffer): string {
  const text = body.toString("utf8").trim();
  try {
    const doc = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
    if (Array.isArray(doc.errors) && doc.errors.length > 0) {
      return doc.errors.map((e) => [e.code, e.message].filter((s) => typeof s === "string" && s !== "").join(": ")).join("; ");
    }
  } catch {
    // not JSON
  }
  const line = text.replace(/\s+/g, " ");
  return line.length > 200 ? `${line.slice(0, 200)}...` : line;
}

export class RegistryApi {
  private readonly auth = new RegistryAuth();

  constructor(private readonly o: {
    transport: HttpTransport;
    /** How long a response body may send nothing while we want data. */
    stallMs: number;
    userAgent: string;
  }) {}

  headers(host: RegistryHost): Record<string, string | string[]> {
    const h: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(host.header)) h[k] = Array.isArray(v) ? [...v] : v;
    // A User-Agent set in hosts.toml wins, as in containerd.
    if (!Object.keys(h).some((k) => k.toLowerCase() === "user-agent")) h["User-Agent"] = this.o.userAgent;
    return h;
  }

  /** <api root>/<repository>/<kind>/<reference>, with ?ns=<registry> when the host is a mirror,
   * as containerd does, so a mirror serving several registries knows which one is meant. */
  endpoint(host: RegistryHost, target: Pick<Repository, "repository" | "ref">, kind: "manifests" | "blobs", reference: string): URL {
    const url = new URL(host.url.href);
    url.pathname = posix.join(host.url.pathname, target.repository, kind, reference);
    const registry = target.ref.domain;
    const isUpstream = url.host === registry || (registry === "docker.io" && url.host === "registry-1.docker.io");
    if (!isUpstream) url.searchParams.set("ns", registry);
    return url;
  }

  /**
   * A registry request with authorization: credentials up front when this endpoint challenged
   * before, otherwise after its first 401, and one retry only. 401 or 403 at the end is
   * Unauthenticated; every other status is the caller's to judge.
   */
  async send(host: RegistryHost, ex: Exchange, target: Repository): Promise<IncomingMessage> {
    const ctx: AuthContext = {
      endpoint: `${host.url.origin}${host.url.pathname}`,
      scopes: [pullScope(target.repository)],
      http: this.authHttp(host),
    };
    if (target.creds) ctx.creds = target.creds;
    if (ex.signal) ctx.signal = ex.signal;
    let authorization = await this.auth.authorize(ctx);
    for (let attempt = 0; ; attempt++) {
      const headers = { ...ex.headers };
      if (authorization !== undefined) headers.Authorization = authorization;
      const res = await this.o.transport.request(host, { ...ex, headers });
      if (res.statusCode !== 401 && res.statusCode !== 403) return res;
      const summary = await this.errorBody(res, ex);
      if (res.statusCode === 401 && attempt === 0) {
        const challenges = res.headersDistinct["www-authenticate"] ?? [];
        const next = await this.auth.challenged(ctx, challenges, authorization);
        if (next !== undefined) {
          authorization = next;
          continue;
        }
      }
      const given = target.creds !== undefined && Object.values(target.creds).some((v) => v !== undefined && v !== "");
      throw new UnauthenticatedError(
        `${ex.what}: ${res.statusCode === 403 ? "access denied" : "authentication required"} to ${target.repository}` +
          `${summary ? ` (${summary})` : ""}; ` +
          (given ? "the credentials given were not accepted" : "no credentials were given; the repository may also not exist"),
      );
    }
  }

  /** A whole response body in memory, with the client's stall timeout. */
  readBody(res: IncomingMessage, o: Omit<ReadBodyOptions, "stallMs">): Promise<Buffer> {
    return readBody(res, { ...o, stallMs: this.o.stallMs });
  }

  /** A body that must be exactly `desc` (body.ts readVerified), with the client's stall timeout. */
  readVerified(res: IncomingMessage, desc: Pick<Descriptor, "digest" | "size">, o: Omit<ReadVerifiedOptions, "stallMs">): Promise<Buffer> {
    return readVerified(res, desc, { ...o, stallMs: this.o.stallMs });
  }

  /** A response body as a stream, with the client's stall timeout. */
  streamBody(res: IncomingMessage, o: Omit<GuardedBodyOptions, "stallMs">): GuardedBody {
    return new GuardedBody(res, { ...o, stallMs: this.o.stallMs });
  }

  async statusError(res: IncomingMessage, method: Exchange["method"], what: string, subject: string): Promise<PodshimError> {
    const status = res.statusCode ?? 0;
    const summary = await this.errorBody(res, { what, method });
    const detail = `HTTP ${status}${summary ? `: ${summary}` : ""}`;
    if (status === 404) return new NotFoundError(`${what}: ${subject} not found (${detail})`);
    if (status === 429) return new ResourceExhaustedError(`${what}: the registry is rate-limiting (${detail})`);
    if (status >= 500) return new UnavailableError(`${what}: the registry failed (${detail})`);
    return new InternalError(`${what}: unexpected ${detail}`);
  }

  /** The token-server transport for a host: its TLS settings and configured headers. */
  private authHttp(host: RegistryHost): AuthHttp {
    return async (req: AuthHttpRequest) => {
      const what = `token request to ${req.url.origin}`;
      const headers = { ...this.headers(host), ...req.headers };
      const ex: Exchange = { method: req.method, url: req.url, headers, what };
      if (req.body) ex.body = req.body;
      if (req.signal) ex.signal = req.signal;
      const res = await this.o.transport.request(host, ex);
      const body = await this.readBody(res, { what, limit: MAX_TOKEN_RESPONSE_BYTES, ...(req.signal ? { signal: req.signal } : {}) });
      return { status: res.statusCode ?? 0, headers: res.headers, body };
    };
  }

  /** The registry's explanation of a failed request, or "" when it gave none. */
  private async errorBody(res: IncomingMessage, ex: Pick<Exchange, "what" | "signal" | "method">): Promise<string> {
    if (ex.method === "HEAD") {
      res.resume();
      return "";
    }
    try {
      return errorSummary(await this.readBody(res, { what: ex.what, limit: MAX_ERROR_BODY_BYTES, ...(ex.signal ? { signal: ex.signal } : {}) }));
    } catch {
      res.destroy();
      return "";
    }
  }
}
