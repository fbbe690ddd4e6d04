// A registry's TLS settings (client certificate, skip_verify) stay with that host: a redirect
// to another host gets neither. Real HTTPS servers in this process, certificates from openssl.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseImageRef } from "../../src/distribution/reference.js";
import { MediaType } from "../../src/distribution/descriptor.js";
import { createLogger } from "../../src/logger/logger.js";
import { RegistryClient } from "../../src/registry/client.js";
import type { RegistryHost } from "../../src/registry/hosts.js";

const dir = mkdtempSync(join(tmpdir(), "podshim-redirect-"));
const payload = Buffer.from("blob ".repeat(50));
const desc = { mediaType: MediaType.OciLayerGzip, digest: `sha256:${createHash("sha256").update(payload).digest("hex")}`, size: payload.length };

function cert(name: string): { cert: Buffer; key: Buffer } {
  const key = join(dir, `${name}.key`);
  const crt = join(dir, `${name}.crt`);
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "2",
    "-subj", `/CN=${name}`, "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], { stdio: "ignore" });
  return { cert: readFileSync(crt), key: readFileSync(key) };
}

const servers: Server[] = [];
const clients: RegistryClient[] = [];
let origin: ReturnType<typeof cert>;
let other: ReturnType<typeof cert>;
let clientId: ReturnType<typeof cert>;
let otherPort = 0;
let originPort = 0;
const certsAtOther: boolean[] = [];
const certsAtOrigin: boolean[] = [];

async function listen(s: Server): Promise<number> {
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return (s.address() as AddressInfo).port;
}

beforeAll(async () => {
  origin = cert("origin");
  other = cert("other");
  clientId = cert("client");
  otherPort = await listen(createServer({ ...other, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    certsAtOther.push(Object.keys((req.socket as TLSSocket).getPeerCertificate()).length > 0);
    res.writeHead(200, { "Content-Length": String(payload.length) }).end(payload);
  }));
  originPort = await listen(createServer({ ...origin, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    certsAtOrigin.push(Object.keys((req.socket as TLSSocket).getPeerCertificate()).length > 0);
    // localhost is another host than 127.0.0.1.
    res.writeHead(307, { Location: `https://localhost:${otherPort}/signed?sig=1` }).end();
  }));
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
  rmSync(dir, { recursive: true, force: true });
});

function host(over: Partial<RegistryHost>): RegistryHost {
  return { url: new URL(`https://127.0.0.1:${originPort}/v2`), capabilities: { pull: true, resolve: true, push: false }, skipVerify: false, ca: [], header: {}, overridePath: false, ...over };
}

async function fetchVia(h: RegistryHost): Promise<Buffer> {
  const c = new RegistryClient({ configDir: dir, logger: createLogger("silent") });
  clients.push(c);
  const stream = await c.fetchBlob({ host: h, repository: "app", ref: parseImageRef(`127.0.0.1:${originPort}/app:1`) }, desc);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe("registry redirects and TLS settings", () => {
  it("sends the client certificate to the registry, not to the host it redirects to", async () => {
    const body = await fetchVia(host({ ca: [origin.cert, other.cert], clientCert: [clientId] }));
    expect(body.equals(payload)).toBe(true);
    expect(certsAtOrigin.at(-1)).toBe(true);
    expect(certsAtOther).toEqual([false]);
  });

  it("does not carry skip_verify to the host it redirects to", async () => {
    const before = certsAtOther.length;
    await expect(fetchVia(host({ skipVerify: true }))).rejects.toThrow(/certificate/i);
    expect(certsAtOther.length).toBe(before);
  });
});
