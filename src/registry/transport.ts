// HTTP(S) exchanges with registry hosts: an agent per host TLS setup (per-host CAs,
// skip_verify and client certificates need an https.Agent of their own, hence node:http/https
// rather than fetch), request and dial timeouts, one retry on a stale keep-alive connection,
// and redirects.
import { createHash } from "node:crypto";
import http from "node:http";
import type { IncomingMessage } from "node:http";
import https from "node:https";
import { rootCertificates } from "node:tls";
import { DeadlineExceededError, PodshimError, UnavailableError } from "../errors/errors.js";
import { abortError } from "./abort.js";
import type { RegistryHost } from "./hosts.js";

const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

export interface Exchange {
  method: "GET" | "HEAD" | "POST";
  url: URL;
  headers: Record<string, string | string[]>;
  body?: Buffer;
  signal?: AbortSignal;
  /** What is being done, for error messages: "resolve of docker.io/library/busybox:latest". */
  what: string;
}

function networkError(err: unknown, url: URL, what: string): PodshimError {
  if (err instanceof PodshimError) return err;
  const e = err as NodeJS.ErrnoException;
  return new UnavailableError(`${what}: cannot reach ${url.origin}: ${e.message ?? String(err)}`, { cause: err });
}

export class HttpTransport {
  private readonly httpAgent = new http.Agent({ keepAlive: true });
  private readonly httpsAgents = new Map<string, https.Agent>();

  /** requestTimeoutMs: connecting plus waiting for response headers, per request. */
  constructor(private readonly requestTimeoutMs: number) {}

  /** One exchange up to the response headers, redirects followed (blob stores hand out signed
   * URLs elsewhere). Authorization is dropped once a redirect leaves the registry's origin: it
   * is for the registry only. */
  async request(host: RegistryHost, ex: Exchange): Promise<IncomingMessage> {
    let url = ex.url;
    let headers = ex.headers;
    // The host's client certificate and skip_verify hold for the address first asked, never for
    // another host it redirects to; its extra CAs stay (they only add trust roots).
    const elsewhere: RegistryHost = { ...host, skipVerify: false, clientCert: [] };
    for (let hops = 0; ; hops++) {
      const res = await this.rawRequest(url.host === ex.url.host ? host : elsewhere, { ...ex, url, headers });
      const location = res.headers.location;
      if (!REDIRECT_STATUSES.has(res.statusCode ?? 0) || location === undefined) return res;
      res.resume();
      if (hops === MAX_REDIRECTS) throw new UnavailableError(`${ex.what}: more than ${MAX_REDIRECTS} redirects (last to ${new URL(location, url).origin})`);
      let next: URL;
      try {
        next = new URL(location, url);
      } catch (err) {
        throw new UnavailableError(`${ex.what}: ${url.origin} redirects to an invalid location`, { cause: err });
      }
      if (next.protocol !== "http:" && next.protocol !== "https:") {
        throw new UnavailableError(`${ex.what}: ${url.origin} redirects to a non-HTTP location`);
      }
      if (next.origin !== url.origin) {
        headers = Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== "authorization"));
      }
      url = next;
    }
  }

  /** Closes pooled connections. */
  close(): void {
    this.httpAgent.destroy();
    for (const agent of this.httpsAgents.values()) agent.destroy();
    this.httpsAgents.clear();
  }

  private agentFor(protocol: string, host: RegistryHost): http.Agent {
    if (protocol === "http:") return this.httpAgent;
    const key = createHash("sha256");
    key.update(host.skipVerify ? "insecure" : "verify");
    for (const ca of host.ca) key.update("\0ca\0").update(ca);
    for (const c of host.clientCert ?? []) key.update("\0cert\0").update(c.cert).update("\0key\0").update(c.key ?? "");
    const id = key.digest("hex");
    let agent = this.httpsAgents.get(id);
    if (!agent) {
      const opts: https.AgentOptions = { keepAlive: true, rejectUnauthorized: !host.skipVerify };
      // Node's `ca` replaces the default roots; hosts.toml's CAs are meant to add to them.
      if (host.ca.length > 0) opts.ca = [...rootCertificates, ...host.ca.map((b) => b.toString("utf8"))];
      if (host.clientCert && host.clientCert.length > 0) {
        opts.cert = host.clientCert.map((c) => c.cert);
        opts.key = host.clientCert.map((c) => c.key ?? c.cert);
      }
      agent = new https.Agent(opts);
      this.httpsAgents.set(id, agent);
    }
    return agent;
  }

  /** One HTTP exchange up to the response headers, within requestTimeoutMs (and the host's
   * dial_timeout for the connect). A reused keep-alive connection that the server had already
   * closed is retried once on a fresh one, as Go's transport does for idempotent requests. */
  private rawRequest(host: RegistryHost, ex: Exchange, retried = false): Promise<IncomingMessage> {
    return new Promise<IncomingMessage>((resolve, reject) => {
      const { signal, url, what } = ex;
      if (signal?.aborted) {
        reject(abortError(signal, what));
        return;
      }
      const mod = url.protocol === "https:" ? https : http;
      const headers = { ...ex.headers };
      if (ex.body) headers["Content-Length"] = String(ex.body.length);
      const req = mod.request(url, { method: ex.method, headers, agent: this.agentFor(url.protocol, host) });
      let settled = false;
      let dialTimer: NodeJS.Timeout | undefined;
      const cleanup = (): void => {
        clearTimeout(timer);
        clearTimeout(dialTimer);
        signal?.removeEventListener("abort", onAbort);
      };
      const fail = (err: unknown): void => {
        if (settled) return;
        settled = true;
        cleanup();
        req.destroy();
        reject(err);
      };
      const timer = setTimeout(() => {
        fail(new DeadlineExceededError(`${what}: no response from ${url.origin} within ${this.requestTimeoutMs / 1000} s`));
      }, this.requestTimeoutMs);
      timer.unref();
      const onAbort = (): void => fail(abortError(signal!, what));
      signal?.addEventListener("abort", onAbort, { once: true });

      const dialMs = host.dialTimeoutMs;
      if (dialMs !== undefined && dialMs > 0) {
        req.once("socket", (socket) => {
          if (!socket.connecting) return;
          dialTimer = setTimeout(() => {
            fail(new UnavailableError(`${what}: cannot connect to ${url.origin} within ${dialMs} ms (dial_timeout)`));
          }, dialMs);
          dialTimer.unref();
          socket.once("connect", () => clearTimeout(dialTimer));
        });
      }
      req.on("error", (err: NodeJS.ErrnoException) => {
        if (settled) return;
        const stale = req.reusedSocket && (err.code === "ECONNRESET" || err.code === "EPIPE");
        if (stale && !retried && ex.method !== "POST") {
          settled = true;
          cleanup();
          this.rawRequest(host, ex, true).then(resolve, reject);
          return;
        }
        fail(networkError(err, url, what));
      });
      req.on("response", (res) => {
        if (settled) {
          res.destroy();
          return;
        }
        settled = true;
        cleanup();
        resolve(res);
      });
      req.end(ex.body);
    });
  }
}
