// Registry authentication: the credentials a pull carries, the WWW-Authenticate challenges a
// registry answers with, and the Bearer token dance of the Docker token spec (GET with Basic
// credentials) and its OAuth2 variant (POST with a refresh token). Tokens are cached per
// realm, service, scopes and credentials, so one pull asks the token server once.
import { createHash } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { InvalidArgumentError, UnauthenticatedError, UnavailableError } from "../errors/errors.js";
import type { PodshimError } from "../errors/errors.js";

export interface RegistryCredentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (docker login's "identitytoken"). */
  identityToken?: string;
  /** A bearer token to send to the registry as is. */
  registryToken?: string;
}

/** The CRI AuthConfig fields, as ts-proto decodes them (empty strings when unset). */
export interface AuthConfigFields {
  username: string;
  password: string;
  auth: string;
  serverAddress: string;
  identityToken: string;
  registryToken: string;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;

/**
 * The credentials in a CRI AuthConfig. Explicit username/password win over `auth` (base64 of
 * "user:password"), as in containerd. serverAddress is not checked: the kubelet already picked
 * these credentials for the image. Undefined when the config carries nothing.
 */
export function credentialsFromAuthConfig(a: AuthConfigFields | undefined): RegistryCredentials | undefined {
  if (!a) return undefined;
  const creds: RegistryCredentials = {};
  if (a.username !== "") {
    creds.username = a.username;
    if (a.password !== "") creds.password = a.password;
  } else if (a.auth !== "") {
    // Never quote the value: it is a secret.
    if (!BASE64.test(a.auth)) throw new InvalidArgumentError("AuthConfig.auth is not valid base64");
    const decoded = Buffer.from(a.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon === -1) throw new InvalidArgumentError(`AuthConfig.auth does not decode to "user:password"`);
    creds.username = decoded.slice(0, colon);
    // Some tools pad the password with NULs; containerd trims them too.
    const password = decoded.slice(colon + 1).replace(/^\0+|\0+$/g, "");
    if (password !== "") creds.password = password;
  }
  if (a.identityToken !== "") creds.identityToken = a.identityToken;
  if (a.registryToken !== "") creds.registryToken = a.registryToken;
  return Object.keys(creds).length > 0 ? creds : undefined;
}

export interface Challenge {
  /** Lowercase: "basic", "bearer", ... */
  scheme: string;
  /** Parameter names lowercase, values unquoted. */
  params: Record<string, string>;
}

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/**
 * Parses a WWW-Authenticate value (RFC 7235): one or more challenges, each a scheme and
 * comma-separated name=value parameters whose values may be quoted strings containing commas.
 * Node joins repeated headers with ", ", which this grammar reads back apart.
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let pos = 0;
  const n = header.length;
  const skipSpaces = (): void => {
    while (pos < n && (header[pos] === " " || header[pos] === "\t")) pos++;
  };
  const readToken = (): string => {
    const start = pos;
    while (pos < n && TOKEN_CHAR.test(header[pos]!)) pos++;
    return header.slice(start, pos);
  };
  const readQuoted = (): string => {
    pos++; // opening quote
    let value = "";
    while (pos < n && header[pos] !== '"') {
      if (header[pos] === "\\" && pos + 1 < n) pos++;
      value += header[pos];
      pos++;
    }
    pos++; // closing quote (or past the end of a truncated value)
    return value;
  };

  while (pos < n) {
    while (pos < n && (header[pos] === "," || header[pos] === " " || header[pos] === "\t")) pos++;
    if (pos >= n) break;
    const scheme = readToken();
    if (scheme === "") {
      // Not a challenge: skip to the next comma and try again.
      while (pos < n && header[pos] !== ",") pos++;
      continue;
    }
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(challenge);
    for (;;) {
      const mark = pos;
      while (pos < n && (header[pos] === "," || header[pos] === " " || header[pos] === "\t")) pos++;
      const name = readToken();
      skipSpaces();
      if (name === "" || header[pos] !== "=") {
        // The next challenge's scheme (or the end): leave it for the outer loop.
        pos = mark;
        break;
      }
      pos++;
      skipSpaces();
      let value: string;
      if (header[pos] === '"') value = readQuoted();
      else {
        const start = pos;
        while (pos < n && header[pos] !== "," && header[pos] !== " " && header[pos] !== "\t") pos++;
        value = header.slice(start, pos);
      }
      challenge.params[name.toLowerCase()] = value;
    }
    // Whatever does not fit the grammar (a token68, stray text) is skipped up to the next comma.
    while (pos < n && header[pos] !== ",") pos++;
  }
  return out;
}

/** repository:<name>:pull, the scope a pull needs. */
export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

export interface AuthHttpRequest {
  method: "GET" | "POST";
  url: URL;
  headers: Record<string, string | string[]>;
  body?: Buffer;
  signal?: AbortSignal;
}

export interface AuthHttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** How the authorizer reaches a token server: the client's transport, with the registry
 * host's TLS settings and configured headers. Rejects with typed errors (Unavailable, ...). */
export type AuthHttp = (req: AuthHttpRequest) => Promise<AuthHttpResponse>;

export interface AuthContext {
  /** The registry endpoint asked (origin and API path); challenges are remembered per endpoint. */
  endpoint: string;
  scopes: readonly string[];
  creds?: RegistryCredentials;
  http: AuthHttp;
  signal?: AbortSignal;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** The Docker token spec: a token without expires_in lives 60 s. */
const DEFAULT_TOKEN_LIFETIME_S = 60;
/** Past this many cached tokens, expired ones are dropped: a long-lived daemon pulls for many
 * repositories and credentials. */
const TOKEN_CACHE_SWEEP_SIZE = 256;
/** Statuses with which token servers refuse the OAuth2 POST they do not implement
 * (GCR 404, Artifactory 401, ACR 400, others 405); the GET form is tried next. */
const OAUTH_FALLBACK_STATUSES = new Set([400, 401, 404, 405]);

function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, "utf8").toString("base64")}`;
}

/** Who is asking, for the cache key; a hash, so the key never holds a secret. */
function identity(creds: RegistryCredentials | undefined): string {
  if (!creds || (creds.username === undefined && creds.password === undefined && creds.identityToken === undefined)) {
    return "anonymous";
  }
  return createHash("sha256")
    .update(JSON.stringify([creds.username ?? null, creds.password ?? null, creds.identityToken ?? null]))
    .digest("hex");
}

function tokenFromBody(body: Buffer, realm: string, now: number): CachedToken {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch (err) {
    throw new UnauthenticatedError(`token server ${realm} answered with something other than JSON`, { cause: err });
  }
  const r = (typeof parsed === "object" && parsed !== null ? parsed : {}) as Record<string, unknown>;
  const token = typeof r.token === "string" && r.token !== "" ? r.token : r.access_token;
  if (typeof token !== "string" || token === "") throw new UnauthenticatedError(`token server ${realm} answered without a token`);
  const expiresIn = typeof r.expires_in === "number" && r.expires_in > 0 ? r.expires_in : DEFAULT_TOKEN_LIFETIME_S;
  const ttl = expiresIn * 1000;
  // Renew a little early so a token does not expire between the check and the request.
  return { token, expiresAt: now + ttl - Math.min(30_000, ttl / 10) };
}

function errorSummary(body: Buffer): string {
  const text = body.toString("utf8").trim().replace(/\s+/g, " ");
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

/**
 * Authorizes registry requests. It remembers the challenge each endpoint answered with last,
 * so later requests to it carry credentials up front instead of collecting a 401 first.
 */
export class RegistryAuth {
  private readonly challenges = new Map<string, Challenge>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly inflight = new Map<string, Promise<CachedToken>>();
  private readonly clientId: string;
  private readonly now: () => number;

  constructor(opts: { clientId?: string; now?: () => number } = {}) {
    this.clientId = opts.clientId ?? "podshim";
    this.now = opts.now ?? Date.now;
  }

  /** The Authorization header for a request to ctx.endpoint, before any answer from it. */
  async authorize(ctx: AuthContext): Promise<string | undefined> {
    if (ctx.creds?.registryToken) return `Bearer ${ctx.creds.registryToken}`;
    const challenge = this.challenges.get(ctx.endpoint);
    return challenge ? this.answer(ctx, challenge) : undefined;
  }

  /**
   * After a 401: remembers the challenge and returns the Authorization to retry with, or
   * undefined when nothing podshim has can answer it (no credentials for Basic, an unknown
   * scheme, or a registry token that was already refused).
   */
  async challenged(ctx: AuthContext, wwwAuthenticate: readonly string[], sent: string | undefined): Promise<string | undefined> {
    if (sent?.startsWith("Bearer ")) this.forget(sent.slice("Bearer ".length));
    if (ctx.creds?.registryToken) return undefined;
    const all = wwwAuthenticate.flatMap((h) => parseChallenges(h));
    // Bearer first: a registry offering both grants finer access through tokens.
    const challenge = all.find((c) => c.scheme === "bearer") ?? all.find((c) => c.scheme === "basic");
    if (!challenge) return undefined;
    this.challenges.set(ctx.endpoint, challenge);
    const answer = await this.answer(ctx, challenge);
    // The same Basic credentials again would only be refused again.
    return answer !== undefined && answer === sent ? undefined : answer;
  }

  /** Drops what is cached, for tests and for a credentials change. */
  clear(): void {
    this.challenges.clear();
    this.tokens.clear();
  }

  private forget(token: string): void {
    for (const [key, cached] of this.tokens) if (cached.token === token) this.tokens.delete(key);
  }

  private async answer(ctx: AuthContext, challenge: Challenge): Promise<string | undefined> {
    const creds = ctx.creds;
    if (challenge.scheme === "basic") {
      if (creds?.username !== undefined) return basic(creds.username, creds.password ?? "");
      if (creds?.identityToken !== undefined) return basic("", creds.identityToken);
      return undefined;
    }
    if (challenge.scheme !== "bearer") return undefined;
    const token = await this.token(ctx, challenge);
    return `Bearer ${token}`;
  }

  private async token(ctx: AuthContext, challenge: Challenge): Promise<string> {
    const realm = challenge.params.realm ?? "";
    const service = challenge.params.service;
    const fromChallenge = (challenge.params.scope ?? "").split(" ").filter((s) => s !== "");
    const scopes = [...new Set([...ctx.scopes, ...fromChallenge])].sort();
    const key = JSON.stringify([realm, service ?? null, scopes, identity(ctx.creds)]);

    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > this.now()) return cached.token;
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.fetchToken(ctx, realm, service, scopes).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    const fresh = await pending;
    this.tokens.set(key, fresh);
    if (this.tokens.size > TOKEN_CACHE_SWEEP_SIZE) {
      const now = this.now();
      for (const [k, t] of this.tokens) if (t.expiresAt <= now) this.tokens.delete(k);
    }
    return fresh.token;
  }

  private async fetchToken(ctx: AuthContext, realm: string, service: string | undefined, scopes: string[]): Promise<CachedToken> {
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm);
    } catch (err) {
      throw new UnauthenticatedError(`registry ${ctx.endpoint} asks for a token from an invalid realm ${JSON.stringify(realm)}`, { cause: err });
    }
    if (realmUrl.protocol !== "https:" && realmUrl.protocol !== "http:") {
      throw new UnauthenticatedError(`registry ${ctx.endpoint} asks for a token from a non-HTTP realm ${JSON.stringify(realm)}`);
    }
    const creds = ctx.creds;
    const where = `${realmUrl.origin}${realmUrl.pathname}`;

    if (creds?.identityToken !== undefined) {
      const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: creds.identityToken });
      if (service !== undefined) form.set("service", service);
      if (scopes.length > 0) form.set("scope", scopes.join(" "));
      form.set("client_id", this.clientId);
      const res = await ctx.http({
        method: "POST",
        url: realmUrl,
        headers: { "Content-Type": "application/x-www-form-urlencoded; charset=utf-8" },
        body: Buffer.from(form.toString(), "utf8"),
        ...(ctx.signal ? { signal: ctx.signal } : {}),
      });
      if (res.status === 200) return tokenFromBody(res.body, where, this.now());
      if (!OAUTH_FALLBACK_STATUSES.has(res.status)) throw this.refused(res, where, scopes, true);
    }

    const url = new URL(realmUrl);
    if (service !== undefined) url.searchParams.set("service", service);
    for (const s of scopes) url.searchParams.append("scope", s);
    const headers: Record<string, string> = {};
    if (creds?.username !== undefined) headers.Authorization = basic(creds.username, creds.password ?? "");
    else if (creds?.identityToken !== undefined) headers.Authorization = basic("", creds.identityToken);
    const res = await ctx.http({ method: "GET", url, headers, ...(ctx.signal ? { signal: ctx.signal } : {}) });
    if (res.status === 200) return tokenFromBody(res.body, where, this.now());
    throw this.refused(res, where, scopes, headers.Authorization !== undefined);
  }

  private refused(res: AuthHttpResponse, where: string, scopes: string[], withCreds: boolean): PodshimError {
    const detail = `${res.status}${res.body.length > 0 ? `: ${errorSummary(res.body)}` : ""}`;
    const scope = scopes.join(" ") || "(no scope)";
    if (res.status === 401 || res.status === 403) {
      return new UnauthenticatedError(
        `token server ${where} refused ${withCreds ? "the credentials given" : "an anonymous request (no credentials were given)"} for ${scope}: ${detail}`,
      );
    }
    if (res.status >= 500 || res.status === 429) return new UnavailableError(`token server ${where} failed for ${scope}: ${detail}`);
    return new UnauthenticatedError(`token server ${where} gave no token for ${scope}: ${detail}`);
  }
}
