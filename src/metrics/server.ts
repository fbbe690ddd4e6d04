// The operator's HTTP port: Prometheus text on /metrics, liveness on /healthz (the process
// answers), readiness on /readyz (the same predicate as the gRPC health service). Plain HTTP,
// meant for loopback or a node-local scraper; it carries nothing secret and accepts nothing.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "../logger/logger.js";
import { registry } from "./metrics.js";

export interface MetricsServerOptions {
  host: string;
  port: number;
  logger: Logger;
  /** Ready to serve pods: containerd answers and podshim's state is loaded. */
  ready: () => Promise<boolean>;
}

export class MetricsServer {
  private server: Server | undefined;

  constructor(private readonly opts: MetricsServerOptions) {}

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { allow: "GET, HEAD" }).end();
        return;
      }
      if (path === "/metrics") {
        registry.metrics().then(
          (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
          (err: unknown) => {
            this.opts.logger.warn({ err }, "metrics collection failed");
            res.writeHead(500, { "content-type": "text/plain" }).end("metrics collection failed\n");
          },
        );
      } else if (path === "/healthz") {
        res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      } else if (path === "/readyz") {
        this.opts.ready().then(
          (ok) => res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(ok ? "ok\n" : "not ready: containerd unreachable or state not loaded\n"),
          () => res.writeHead(503, { "content-type": "text/plain" }).end("not ready\n"),
        );
      } else {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found: try /metrics, /healthz or /readyz\n");
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
    this.opts.logger.info({ url: this.url }, "serving metrics");
  }

  get url(): string {
    const a = this.server?.address() as AddressInfo | null | undefined;
    if (!a) return "";
    return `http://${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
