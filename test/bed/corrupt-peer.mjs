#!/usr/bin/env node
// A lying peer for the peer-mirror tests: it answers the distribution read API like a podshim
// peer that stores everything, proxying the registry, but flips a byte in every chunk of each
// body over 1 MiB it sends (same length, wrong digest): the layers. Manifests and configs pass
// unchanged, so the lie is found where it is hardest, in a layer streaming into containerd.
// GET /stats tells what it served.
//   node corrupt-peer.mjs LISTEN_HOST LISTEN_PORT REGISTRY_URL
// Plain JavaScript: it runs with nsenter inside the bed's fabric namespace, outside vitest.
import http from "node:http";

const [host, port, upstream] = process.argv.slice(2);
const stats = { head: 0, get: 0, corrupted: 0 };

const server = http.createServer((req, res) => {
  if (req.url === "/stats") {
    res.setHeader("Content-Type", "application/json");
    res.end(JSON.stringify(stats));
    return;
  }
  const url = new URL(req.url ?? "/", "http://x");
  if (!/^\/v2\/.+\/(blobs|manifests)\/sha256:[a-f0-9]{64}$/.test(url.pathname)) {
    res.statusCode = 404;
    res.end();
    return;
  }
  if (req.method === "HEAD") stats.head++;
  else stats.get++;
  const headers = { Accept: req.headers.accept ?? "*/*", ...(req.headers.range ? { Range: req.headers.range } : {}) };
  const up = http.request(`${upstream}${url.pathname}`, { method: req.method, headers }, (r) => {
    const out = { ...r.headers };
    // Claims to hold it, as a podshim peer would.
    out["podshim-peer-state"] = "stored";
    res.writeHead(r.statusCode ?? 502, out);
    if (req.method === "HEAD") {
      r.resume();
      res.end();
      return;
    }
    const lie = Number(r.headers["content-length"] ?? 0) > 1024 * 1024;
    if (lie) stats.corrupted++;
    r.on("data", (chunk) => {
      const out = Buffer.from(chunk);
      if (lie) out[0] ^= 0xff;
      res.write(out);
    });
    r.on("end", () => res.end());
  });
  up.on("error", () => {
    res.statusCode = 502;
    res.end();
  });
  up.end();
});
server.listen({ host, port: Number(port) }, () => console.log(`corrupt peer listening on ${host}:${port}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
