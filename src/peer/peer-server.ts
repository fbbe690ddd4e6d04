// The peer mirror's HTTP side: the read half of the OCI distribution API, by digest only.
//   GET|HEAD /v2/                                   200 (the API version check clients make)
//   GET|HEAD /v2/<name>/blobs/<digest>              the blob, Range honoured (206), 404 when absent
//   GET|HEAD /v2/<name>/manifests/<digest>          a manifest or index with its media type
// Anything else is 404 (a tag, unless tag serving is on), 405 (a write) or 400 (a malformed
// name or digest). Plain HTTP, like a node-local registry mirror: everything served is
// content-addressed and verified by whoever receives it, but anyone who can reach the port can
// read any layer this node holds, so keep it on the node network.
import http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "../logger/logger.js";
import { messageOf } from "../errors/errors.js";
import { countPeerServed } from "../metrics/metrics.js";
import { isDigest, type Found, type PeerContent } from "./peer-content.js";
import { PeerHeader, type PeerKind } from "./protocol.js";

const NAME = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export interface PeerServerOptions {
  host: string;
  port: number;
  content: PeerContent;
  /** This podshim's instance id, sent with every answer so a node never reads from itself. */
  instanceId: string;
  logger: Logger;
}

type Range = { start: number; end: number } | "unsatisfiable" | undefined;

/** One `bytes=` range (RFC 9110): a-b, a- or -suffix. Several ranges are answered in full. */
export function parseRange(header: string | undefined, size: number): Range {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0) return "unsatisfiable";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return "unsatisfiable";
  return { start, end };
}

export class PeerServer {
  private readonly server: http.Server;
  private bound: string = "";

  constructor(private readonly opts: PeerServerOptions) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err) => {
        opts.logger.warn({ url: req.url, err: messageOf(err) }, "peer request failed");
        if (!res.headersSent) this.error(res, 500, "UNKNOWN", "internal error");
        else res.destroy();
      });
    });
    this.server.keepAliveTimeout = 30_000;
  }

  get address(): string {
    return this.bound;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen({ host: this.opts.host, port: this.opts.port }, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    const a = this.server.address() as AddressInfo;
    this.bound = a.family === "IPv6" ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
    this.opts.logger.info({ address: this.bound }, "peer mirror serving content by digest");
  }

  async stop(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader(PeerHeader.node, this.opts.instanceId);
    res.setHeader("Docker-Distribution-Api-Version", "registry/2.0");
    const url = new URL(req.url ?? "/", "http://peer");
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("Allow", "GET, HEAD");
      return this.error(res, 405, "UNSUPPORTED", "this peer mirror is read-only");
    }
    if (url.pathname === "/v2/" || url.pathname === "/v2") {
      res.setHeader("Content-Type", "application/json");
      res.end(req.method === "HEAD" ? undefined : "{}");
      return;
    }
    const m = /^\/v2\/(.+)\/(blobs|manifests)\/([^/]+)$/.exec(url.pathname);
    if (!m) return this.error(res, 404, "NAME_UNKNOWN", "not a distribution API path");
    const [, name, kind, reference] = m as unknown as [string, string, PeerKind, string];
    if (!NAME.test(name)) return this.error(res, 400, "NAME_INVALID", `invalid repository name ${JSON.stringify(name)}`);
    let digest = reference;
    if (!isDigest(reference)) {
      const tagged = kind === "manifests" && TAG.test(reference) ? this.opts.content.tag(url.searchParams.get("ns") ?? undefined, name, reference) : undefined;
      if (!tagged) {
        if (kind === "manifests" && TAG.test(reference)) return this.error(res, 404, "MANIFEST_UNKNOWN", "this peer serves content by digest only");
        return this.error(res, 400, "DIGEST_INVALID", `invalid digest ${JSON.stringify(reference)}`);
      }
      digest = tagged.digest;
    }
    const found = await this.opts.content.find(kind, digest);
    if (!found) return this.error(res, 404, kind === "blobs" ? "BLOB_UNKNOWN" : "MANIFEST_UNKNOWN", `${digest} is not on this node`);
    await this.send(req, res, kind, found);
  }

  private async send(req: IncomingMessage, res: ServerResponse, kind: PeerKind, found: Found): Promise<void> {
    res.setHeader("Docker-Content-Digest", found.digest);
    res.setHeader("Content-Type", found.mediaType);
    res.setHeader("Accept-Ranges", "bytes");
    res.setHeader(PeerHeader.state, found.state);
    if (found.claim) res.setHeader(PeerHeader.claim, found.claim);
    const range = parseRange(req.headers.range, found.size);
    if (range === "unsatisfiable") {
      res.setHeader("Content-Range", `bytes */${found.size}`);
      return this.error(res, 416, "RANGE_INVALID", "range not satisfiable");
    }
    const start = range?.start ?? 0;
    const length = range ? range.end - range.start + 1 : found.size;
    res.setHeader("Content-Length", String(length));
    if (range) {
      res.statusCode = 206;
      res.setHeader("Content-Range", `bytes ${range.start}-${range.end}/${found.size}`);
    }
    if (req.method === "HEAD" || length === 0) {
      res.end();
      return;
    }
    // A blob still downloading may take a moment to send its first byte: the headers go now.
    res.flushHeaders();
    let sent = 0;
    try {
      for await (const chunk of found.open(start, length)) {
        if (res.destroyed) return;
        sent += chunk.length;
        if (!res.write(chunk)) await new Promise<void>((resolve) => {
          const go = () => {
            res.off("drain", go);
            res.off("close", go);
            resolve();
          };
          res.once("drain", go);
          res.once("close", go);
        });
      }
      res.end();
    } catch (err) {
      // The length is promised already: a cut connection is the only honest answer now.
      this.opts.logger.debug({ digest: found.digest, sent, err: messageOf(err) }, "peer stream cut off");
      res.destroy();
    } finally {
      countPeerServed(kind, sent);
    }
  }

  private error(res: ServerResponse, status: number, code: string, message: string): void {
    res.statusCode = status;
    res.setHeader("Content-Type", "application/json");
    res.end(JSON.stringify({ errors: [{ code, message }] }));
  }
}
