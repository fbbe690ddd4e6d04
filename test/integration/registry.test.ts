// The registry client against real docker-registry instances: the bed's, one behind htpasswd,
// one behind distribution's token auth with a token server of our own, plus small node servers
// for what a well-behaved registry never does (stall, ignore Range, redirect elsewhere).
import { createHash, createPrivateKey, randomUUID, sign, X509Certificate } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { readFile, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  CanceledError, DeadlineExceededError, InternalError, NotFoundError, UnauthenticatedError, UnavailableError,
} from "../../src/errors/errors.js";
import { parseImageRef } from "../../src/distribution/reference.js";
import type { ImageRef } from "../../src/distribution/reference.js";
import { MediaType } from "../../src/distribution/descriptor.js";
import type { Descriptor } from "../../src/distribution/descriptor.js";
import { createLogger } from "../../src/logger/logger.js";
import { credentialsFromAuthConfig } from "../../src/registry/auth.js";
import type { RegistryCredentials } from "../../src/registry/auth.js";
import { RegistryClient, verifyingStream } from "../../src/registry/client.js";
import type { RegistrySource } from "../../src/registry/client.js";
import { loadRegistryHosts } from "../../src/registry/hosts.js";
import { busyboxLayer } from "../bed/images.js";
import { buildImage, pushImage, sha256 } from "../bed/oci.js";
import type { BuiltImage } from "../bed/oci.js";
import { runOk } from "../bed/proc.js";
import { startRegistry } from "../bed/registry.js";
import type { RegistryHandle } from "../bed/registry.js";
import "../bed/types.js";

const bed = inject("bed");
const base = mkdtempSync(join(bed.tmpDir, "registry-client-"));
const logger = createLogger("silent");
const clients: RegistryClient[] = [];
const servers: Server[] = [];
const registries: RegistryHandle[] = [];

afterAll(async () => {
  for (const c of clients) c.close();
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
  for (const r of registries) await r.cleanup();
  rmSync(base, { recursive: true, force: true });
});

let dirs = 0;
function freshDir(prefix: string): string {
  const dir = join(base, `${prefix}-${dirs++}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function client(opts: { configDir?: string; stallTimeoutMs?: number; requestTimeoutMs?: number } = {}): RegistryClient {
  const c = new RegistryClient({ configDir: opts.configDir ?? freshDir("certs"), logger, ...opts });
  clients.push(c);
  return c;
}

const ACCEPT = [MediaType.OciIndex, MediaType.OciManifest, MediaType.DockerManifestList, MediaType.DockerManifest].join(", ");

/** What the registry holds, read without the code under test. */
async function oracle(registryHost: string, repo: string, reference: string): Promise<Descriptor & { body: Buffer }> {
  const res = await fetch(`http://${registryHost}/v2/${repo}/manifests/${reference}`, { headers: { Accept: ACCEPT } });
  expect(res.status).toBe(200);
  const body = Buffer.from(await res.arrayBuffer());
  return { mediaType: res.headers.get("content-type") ?? "", digest: sha256(body), size: body.length, body };
}

async function errorOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection");
}

async function drain(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<number> {
  const server = createServer(handler);
  servers.push(server);
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
}

/** A loopback port nobody listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  const port = await new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

let busybox: BuiltImage;
beforeAll(async () => {
  // The same spec as the bed's busybox image, so the same digests.
  busybox = await buildImage({ layers: [await busyboxLayer()], config: { Cmd: ["sh"] } });
});

describe("the bed's registry", () => {
  const repo = "podshim-test/busybox";

  it("resolves by tag and by digest", async () => {
    const c = client();
    const want = await oracle(bed.registryHost, repo, "latest");
    const byTag = await c.resolve(parseImageRef(bed.images.busybox));
    expect(byTag.descriptor).toEqual({ mediaType: MediaType.OciManifest, digest: want.digest, size: want.size });
    expect(byTag.source.host.url.href).toBe(`http://${bed.registryHost}/v2`);
    expect(byTag.source.repository).toBe(repo);
    expect(want.digest).toBe(busybox.manifest.digest);

    const byDigest = await c.resolve(parseImageRef(`${bed.registryHost}/${repo}@${want.digest}`));
    expect(byDigest.descriptor).toEqual(byTag.descriptor);
  });

  it("resolves an index by tag and by digest, and fetches index, manifest and config verified", async () => {
    const c = client();
    const want = await oracle(bed.registryHost, "podshim-test/multi", "latest");
    const { descriptor, source } = await c.resolve(parseImageRef(bed.images.multi));
    expect(descriptor).toEqual({ mediaType: MediaType.OciIndex, digest: want.digest, size: want.size });
    const again = await c.resolve(parseImageRef(`${bed.registryHost}/podshim-test/multi:latest@${want.digest}`));
    expect(again.descriptor).toEqual(descriptor);

    const index = await c.fetchBytes(source, descriptor);
    expect(index.equals(want.body)).toBe(true);
    const manifests = (JSON.parse(index.toString()) as { manifests: Descriptor[] }).manifests;
    expect(manifests).toHaveLength(2);
    const mine = manifests.find((m) => m.digest === busybox.manifest.digest)!;
    expect(mine).toBeDefined();

    const manifestBytes = await c.fetchBytes(source, mine);
    expect(sha256(manifestBytes)).toBe(mine.digest);
    const manifest = JSON.parse(manifestBytes.toString()) as { config: Descriptor; layers: Descriptor[] };
    const config = await c.fetchBytes(source, manifest.config);
    expect(config.equals(busybox.config.data)).toBe(true);
    expect(JSON.parse(config.toString()).rootfs.diff_ids).toEqual(busybox.diffIds);
  });

  it("streams a layer whole and from an offset", async () => {
    const c = client();
    const { source } = await c.resolve(parseImageRef(bed.images.busybox));
    const layer = busybox.layers[0]!;
    const desc: Descriptor = { mediaType: layer.mediaType, digest: layer.digest, size: layer.size };
    const whole = await drain(await c.fetchBlob(source, desc));
    expect(whole.length).toBe(layer.size);
    expect(sha256(whole)).toBe(layer.digest);

    const offset = Math.floor(layer.size / 2) + 7;
    const tail = await drain(await c.fetchBlob(source, desc, { offset }));
    expect(tail.equals(whole.subarray(offset))).toBe(true);

    expect((await drain(await c.fetchBlob(source, desc, { offset: layer.size }))).length).toBe(0);
    await expect(c.fetchBlob(source, desc, { offset: layer.size + 1 })).rejects.toThrow(/outside blob/);

    // The verifying pass-through accepts the real bytes.
    await pipeline(await c.fetchBlob(source, desc), verifyingStream(desc), async (src: AsyncIterable<Buffer>) => {
      for await (const _ of src) void _;
    });
  });

  it("answers NotFound for a missing tag, a missing repository and a missing blob", async () => {
    const c = client();
    const missingTag = await errorOf(c.resolve(parseImageRef(`${bed.registryHost}/${repo}:nope`)));
    expect(missingTag).toBeInstanceOf(NotFoundError);
    expect(missingTag.message).toBe(`image "${bed.registryHost}/${repo}:nope" not found in http://${bed.registryHost}`);

    const missingRepo = await errorOf(c.resolve(parseImageRef(`${bed.registryHost}/podshim-test/nothing-here`)));
    expect(missingRepo).toBeInstanceOf(NotFoundError);
    expect(missingRepo.message).toContain(`image "${bed.registryHost}/podshim-test/nothing-here:latest" not found`);

    const { source } = await c.resolve(parseImageRef(bed.images.busybox));
    const ghost: Descriptor = { mediaType: MediaType.OciConfig, digest: sha256(Buffer.from("ghost")), size: 5 };
    expect(await errorOf(c.fetchBytes(source, ghost))).toBeInstanceOf(NotFoundError);
  });
});

describe("a registry behind htpasswd", () => {
  const user = "puller";
  const password = "s3cret-pw";
  let reg: RegistryHandle;
  let ref: ImageRef;

  beforeAll(async () => {
    reg = await startRegistry({ dir: freshDir("htpasswd-registry"), htpasswd: { user, password } });
    registries.push(reg);
    await pushImage(reg.host, "private/busybox", "v1", busybox, { auth: { user, password } });
    ref = parseImageRef(`${reg.host}/private/busybox:v1`);
  });

  it("refuses without credentials and with wrong ones, saying which", async () => {
    const c = client();
    const anonymous = await errorOf(c.resolve(ref));
    expect(anonymous).toBeInstanceOf(UnauthenticatedError);
    expect(anonymous.message).toContain("no credentials were given");

    const wrong = await errorOf(c.resolve(ref, { username: user, password: "wrong" }));
    expect(wrong).toBeInstanceOf(UnauthenticatedError);
    expect(wrong.message).toContain("the credentials given were not accepted");
    expect(wrong.message).not.toContain("wrong");
  });

  it.each<[string, RegistryCredentials | undefined]>([
    ["username/password", { username: user, password }],
    [
      "auth (base64)",
      credentialsFromAuthConfig({
        username: "", password: "", serverAddress: "", identityToken: "", registryToken: "",
        auth: Buffer.from(`${user}:${password}`).toString("base64"),
      }),
    ],
  ])("works with %s", async (_how, creds) => {
    const c = client();
    const { descriptor, source } = await c.resolve(ref, creds);
    expect(descriptor.digest).toBe(busybox.manifest.digest);
    const manifest = await c.fetchBytes(source, descriptor);
    expect(manifest.equals(busybox.manifest.data)).toBe(true);
  });
});

describe("hosts.toml", () => {
  it("resolves through a mirror and fetches from it", async () => {
    const certs = freshDir("certs");
    mkdirSync(join(certs, "example.invalid"));
    writeFileSync(
      join(certs, "example.invalid/hosts.toml"),
      `server = "https://example.invalid"\n\n[host."http://${bed.registryHost}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    const c = client({ configDir: certs });
    const { descriptor, source } = await c.resolve(parseImageRef("example.invalid/podshim-test/busybox:latest"));
    expect(descriptor.digest).toBe(busybox.manifest.digest);
    expect(source.host.url.href).toBe(`http://${bed.registryHost}/v2`);
    expect(source.fallbacks?.map((h) => h.url.href)).toEqual(["https://example.invalid/v2"]);
    expect((await c.fetchBytes(source, descriptor)).equals(busybox.manifest.data)).toBe(true);
  });

  it("falls back from a mirror that is down to the next host", async () => {
    const down = await closedPort();
    const certs = freshDir("certs");
    mkdirSync(join(certs, "down.invalid"));
    writeFileSync(
      join(certs, "down.invalid/hosts.toml"),
      `server = "http://${bed.registryHost}"\n\n[host."http://127.0.0.1:${down}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    const c = client({ configDir: certs });
    const { descriptor, source } = await c.resolve(parseImageRef("down.invalid/podshim-test/busybox"));
    expect(descriptor.digest).toBe(busybox.manifest.digest);
    expect(source.host.url.href).toBe(`http://${bed.registryHost}/v2`);

    // Fetching falls back the same way when the source host is the one down.
    const viaDown: RegistrySource = { ...source, host: source.fallbacks![0]!, fallbacks: [source.host] };
    expect(viaDown.host.url.port).toBe(String(down));
    expect((await c.fetchBytes(viaDown, descriptor)).equals(busybox.manifest.data)).toBe(true);
  });

  it("when every host is down, the error is Unavailable and names the host", async () => {
    const down = await closedPort();
    const c = client();
    const err = await errorOf(c.resolve(parseImageRef(`127.0.0.1:${down}/podshim-test/busybox`)));
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.message).toContain(`cannot reach http://127.0.0.1:${down}`);
    expect(err.message).toContain("ECONNREFUSED");
  });

  it("a host that says 404 hands over to the next; NotFound lists every host that said so", async () => {
    const certs = freshDir("certs");
    mkdirSync(join(certs, "twice.invalid"));
    writeFileSync(
      join(certs, "twice.invalid/hosts.toml"),
      `server = "http://${bed.registryHost}"\n\n[host."http://${bed.registryHost}/"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    const c = client({ configDir: certs });
    const err = await errorOf(c.resolve(parseImageRef("twice.invalid/podshim-test/none:x")));
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toBe(`image "twice.invalid/podshim-test/none:x" not found in http://${bed.registryHost}, http://${bed.registryHost}`);
  });
});

describe("content that does not match its digest", () => {
  let reg: RegistryHandle;

  beforeAll(async () => {
    reg = await startRegistry({ dir: freshDir("corrupt-registry") });
    registries.push(reg);
    await pushImage(reg.host, "fresh/busybox", "latest", busybox);
  });

  /** Replaces a blob's bytes in the registry's filesystem storage with others of the same size. */
  async function corrupt(digest: string): Promise<void> {
    const hex = digest.slice("sha256:".length);
    const path = join(reg.dir, "storage/docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
    const original = await readFile(path);
    const bad = Buffer.from(original);
    for (let i = 0; i < bad.length; i++) bad[i] = bad[i]! ^ 0x5a;
    await writeFile(path, bad);
    expect((await stat(path)).size).toBe(original.length);
  }

  it("fetchBytes rejects a config whose bytes changed", async () => {
    const c = client();
    const { source } = await c.resolve(parseImageRef(`${reg.host}/fresh/busybox`));
    const config: Descriptor = { mediaType: busybox.config.mediaType, digest: busybox.config.digest, size: busybox.config.size };
    await corrupt(config.digest);
    const err = await errorOf(c.fetchBytes(source, config));
    expect(err).toBeInstanceOf(InternalError);
    expect(err.message).toMatch(new RegExp(`^digest mismatch for ${config.digest} from http://${reg.host}: got sha256:[0-9a-f]{64}$`));
  });

  it("fetchBlob streams what it gets; verifyingStream catches it", async () => {
    const c = client();
    const { source } = await c.resolve(parseImageRef(`${reg.host}/fresh/busybox`));
    const layer = busybox.layers[0]!;
    const desc: Descriptor = { mediaType: layer.mediaType, digest: layer.digest, size: layer.size };
    await corrupt(desc.digest);
    const err = await errorOf(
      pipeline(await c.fetchBlob(source, desc), verifyingStream(desc, reg.host), async (src: AsyncIterable<Buffer>) => {
        for await (const _ of src) void _;
      }),
    );
    expect(err).toBeInstanceOf(InternalError);
    expect(err.message).toContain(`digest mismatch for ${desc.digest} from ${reg.host}`);
  });
});

describe("misbehaving servers", () => {
  const payload = Buffer.from("0123456789".repeat(100));
  const desc: Descriptor = { mediaType: MediaType.OciLayerGzip, digest: sha256(payload), size: payload.length };
  const big = Buffer.alloc(8 * 1024 * 1024, 7);
  let port = 0;
  let otherPort = 0;
  const seenAtOther: (string | undefined)[] = [];
  const seenUrls: { url: string; team: unknown; agent: unknown }[] = [];

  beforeAll(async () => {
    otherPort = await listen((req, res) => {
      seenAtOther.push(req.headers.authorization);
      res.writeHead(200, { "Content-Length": String(payload.length) }).end(payload);
    });
    port = await listen((req, res) => {
      const [, , repo] = (req.url ?? "").split("/");
      switch (repo) {
        case "stall":
          res.writeHead(200, { "Content-Length": String(payload.length) });
          res.write(payload.subarray(0, 10));
          return; // and nothing more, ever
        case "silent":
          return; // no headers at all
        case "norange":
          res.writeHead(200, { "Content-Length": String(payload.length) }).end(payload);
          return;
        case "echo":
          seenUrls.push({ url: req.url ?? "", team: req.headers["x-team"], agent: req.headers["user-agent"] });
          res.writeHead(404).end();
          return;
        case "big":
          res.writeHead(200, { "Content-Length": String(big.length) }).end(big);
          return;
        case "redirect":
          if (req.headers.authorization !== "Bearer registry-token") {
            res.writeHead(401, { "WWW-Authenticate": 'Bearer realm="http://127.0.0.1:1/token"' }).end();
            return;
          }
          // localhost is another origin than 127.0.0.1: the token must not follow.
          res.writeHead(307, { Location: `http://localhost:${otherPort}/signed/blob?sig=abc` }).end();
          return;
        default:
          res.writeHead(404).end();
      }
    });
  });

  async function sourceFor(repo: string): Promise<RegistrySource> {
    const [host] = await loadRegistryHosts(freshDir("certs"), `127.0.0.1:${port}`);
    return { host: host!, repository: repo, ref: parseImageRef(`127.0.0.1:${port}/${repo}:latest`) };
  }

  it("a download that stops sending fails with DeadlineExceeded after the stall timeout", async () => {
    const c = client({ stallTimeoutMs: 300 });
    const started = Date.now();
    const err = await errorOf(drain(await c.fetchBlob(await sourceFor("stall"), desc)));
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect(err.message).toBe(`download of ${desc.digest} from http://127.0.0.1:${port} stalled: no data for 0.3 s`);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("a reader that stops reading for a while is not a stall", async () => {
    const c = client({ stallTimeoutMs: 200 });
    // Far more than the stream buffers hold, so the reader's pause holds back the server.
    const bigDesc: Descriptor = { mediaType: MediaType.OciLayerGzip, digest: sha256(big), size: big.length };
    const stream = await c.fetchBlob(await sourceFor("big"), bigDesc);
    const chunks: Buffer[] = [];
    let paused = false;
    for await (const chunk of stream) {
      chunks.push(chunk as Buffer);
      if (!paused) {
        paused = true;
        await new Promise((r) => setTimeout(r, 600));
      }
    }
    expect(Buffer.concat(chunks).equals(big)).toBe(true);
  });

  it("a server that never answers fails with DeadlineExceeded after the request timeout", async () => {
    const c = client({ requestTimeoutMs: 300 });
    const err = await errorOf(c.resolve(parseImageRef(`127.0.0.1:${port}/silent:latest`)));
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect(err.message).toContain(`no response from http://127.0.0.1:${port} within 0.3 s`);
  });

  it("an abort cancels a download in flight", async () => {
    const c = client({ stallTimeoutMs: 10_000 });
    const ac = new AbortController();
    const stream = await c.fetchBlob(await sourceFor("stall"), desc, { signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    expect(await errorOf(drain(stream))).toBeInstanceOf(CanceledError);
  });

  it("skips the prefix itself when the server ignores Range", async () => {
    const c = client();
    const tail = await drain(await c.fetchBlob(await sourceFor("norange"), desc, { offset: 123 }));
    expect(tail.equals(payload.subarray(123))).toBe(true);
  });

  it("tells a mirror which registry is meant (?ns=) and sends hosts.toml headers", async () => {
    const certs = freshDir("certs");
    mkdirSync(join(certs, "mirrored.invalid"));
    writeFileSync(
      join(certs, "mirrored.invalid/hosts.toml"),
      `server = "http://127.0.0.1:${port}/"\n[header]\n  x-team = "blue"\n`,
    );
    seenUrls.length = 0;
    await expect(client({ configDir: certs }).resolve(parseImageRef("mirrored.invalid/echo:1"))).rejects.toBeInstanceOf(NotFoundError);
    await expect(client().resolve(parseImageRef(`127.0.0.1:${port}/echo:2`))).rejects.toBeInstanceOf(NotFoundError);
    expect(seenUrls).toEqual([
      { url: "/v2/echo/manifests/1?ns=mirrored.invalid", team: "blue", agent: expect.stringMatching(/^podshim\//) },
      { url: "/v2/echo/manifests/2", team: undefined, agent: expect.stringMatching(/^podshim\//) },
    ]);
  });

  it("follows a redirect to another origin without the Authorization header", async () => {
    const c = client();
    const source = { ...(await sourceFor("redirect")), creds: { registryToken: "registry-token" } };
    const body = await drain(await c.fetchBlob(source, desc));
    expect(body.equals(payload)).toBe(true);
    expect(seenAtOther).toEqual([undefined]);
  });
});

// ---------------------------------------------------------------------------------------------
// Token auth: docker-registry 2.8 with `auth: token`, and a token server written here.

const ISSUER = "podshim-test-issuer";
const SERVICE = "podshim-test-registry";
const TOKEN_USER = "token-user";
const TOKEN_PASSWORD = "token-pw";
const REFRESH_TOKEN = "refresh-0123";

/** docker/libtrust's key id, which docker-registry 2.8 matches a JWT `kid` against: the
 * SHA-256 of the DER public key, first 240 bits, base32 without padding, in groups of four. */
function libtrustKeyId(spkiDer: Buffer): string {
  const bytes = createHash("sha256").update(spkiDer).digest().subarray(0, 30);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out.match(/.{4}/g)!.join(":");
}

interface TokenServer {
  port: number;
  requests: { method: string; scopes: string[]; authorization?: string }[];
  /** How tokens name their signing key: the certificate chain, or the libtrust key id. */
  keyHeader: "x5c" | "kid";
  /** Whether the OAuth2 POST form is implemented. */
  oauth: boolean;
}

async function startTokenServer(dir: string): Promise<TokenServer & { certPath: string }> {
  const keyPath = join(dir, "token.key");
  const certPath = join(dir, "token.crt");
  await runOk(
    "openssl",
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyPath, "-out", certPath, "-days", "2", "-subj", "/CN=podshim-test-token-issuer"],
    { timeoutMs: 60_000 },
  );
  const key: KeyObject = createPrivateKey(readFileSync(keyPath));
  const cert = new X509Certificate(readFileSync(certPath));
  const x5c = [cert.raw.toString("base64")];
  const kid = libtrustKeyId(cert.publicKey.export({ type: "spki", format: "der" }));

  const state: TokenServer = { port: 0, requests: [], keyHeader: "x5c", oauth: true };

  const jwt = (subject: string, service: string, access: { type: string; name: string; actions: string[] }[]): string => {
    const now = Math.floor(Date.now() / 1000);
    const header = state.keyHeader === "x5c" ? { typ: "JWT", alg: "RS256", x5c } : { typ: "JWT", alg: "RS256", kid };
    // docker-registry 2.8 reads `aud` as a single string and checks iss, aud, exp and nbf.
    const claims = { iss: ISSUER, sub: subject, aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomUUID(), access };
    const input = `${Buffer.from(JSON.stringify(header)).toString("base64url")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
    return `${input}.${sign("sha256", Buffer.from(input), key).toString("base64url")}`;
  };

  /** Anonymous callers may pull podshim-test/public only; the user may pull anything. */
  const grant = (subject: string, scopes: string[]) =>
    scopes.flatMap((s) => {
      const [type, name, actions] = s.split(":") as [string, string, string];
      if (type !== "repository") return [];
      if (subject === "" && name !== "podshim-test/public") return [];
      return [{ type, name, actions: actions.split(",").filter((a) => a === "pull") }];
    });

  const reply = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify(body));
  };

  state.port = await listen((req, res) => {
    const url = new URL(req.url ?? "/", "http://token");
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (url.pathname !== "/token") return reply(res, 404, {});
      if (req.method === "POST") {
        state.requests.push({ method: "POST", scopes: [] });
        if (!state.oauth) return reply(res, 404, {});
        const form = new URLSearchParams(Buffer.concat(chunks).toString());
        const scopes = (form.get("scope") ?? "").split(" ").filter((s) => s !== "");
        state.requests.at(-1)!.scopes = scopes;
        if (form.get("grant_type") !== "refresh_token" || form.get("refresh_token") !== REFRESH_TOKEN) return reply(res, 401, {});
        return reply(res, 200, { access_token: jwt(TOKEN_USER, form.get("service") ?? "", grant(TOKEN_USER, scopes)), expires_in: 300 });
      }
      const scopes = url.searchParams.getAll("scope");
      const authorization = req.headers.authorization;
      state.requests.push({ method: "GET", scopes, ...(authorization ? { authorization } : {}) });
      let subject = "";
      if (authorization) {
        const [user, pass] = Buffer.from(authorization.replace(/^Basic /, ""), "base64").toString().split(":");
        const ok = (user === TOKEN_USER && pass === TOKEN_PASSWORD) || (user === "" && pass === REFRESH_TOKEN);
        if (!ok) return reply(res, 401, { details: "bad credentials" });
        subject = TOKEN_USER;
      }
      const token = jwt(subject, url.searchParams.get("service") ?? "", grant(subject, scopes));
      return reply(res, 200, { token, expires_in: 300, issued_at: new Date().toISOString() });
    });
  });
  return Object.assign(state, { certPath });
}

describe("a registry with distribution token auth", () => {
  let tokens: TokenServer;
  let reg: RegistryHandle;

  beforeAll(async () => {
    const dir = freshDir("token");
    const server = await startTokenServer(dir);
    tokens = server;
    // Push while the registry is open, then restart it on the same storage with token auth.
    const open = await startRegistry({ dir: join(dir, "registry") });
    try {
      await pushImage(open.host, "podshim-test/public", "latest", busybox);
      await pushImage(open.host, "podshim-test/private", "latest", busybox);
    } finally {
      await open.stop();
    }
    reg = await startRegistry({
      dir: join(dir, "registry"),
      token: { realm: `http://127.0.0.1:${server.port}/token`, service: SERVICE, issuer: ISSUER, rootCertBundle: server.certPath },
    });
    registries.push(reg);
  });

  it("challenges an anonymous request with Bearer", async () => {
    const res = await fetch(`${reg.url}/v2/podshim-test/public/manifests/latest`, { method: "HEAD", headers: { Accept: ACCEPT } });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe(
      `Bearer realm="http://127.0.0.1:${tokens.port}/token",service="${SERVICE}",scope="repository:podshim-test/public:pull"`,
    );
  });

  it("gets an anonymous token, resolves and fetches; the cached token saves a second request", async () => {
    tokens.requests.length = 0;
    const c = client();
    const ref = parseImageRef(`${reg.host}/podshim-test/public`);
    const { descriptor, source } = await c.resolve(ref);
    expect(descriptor.digest).toBe(busybox.manifest.digest);
    expect(tokens.requests).toEqual([{ method: "GET", scopes: ["repository:podshim-test/public:pull"] }]);

    await c.resolve(ref);
    expect((await c.fetchBytes(source, descriptor)).equals(busybox.manifest.data)).toBe(true);
    const config: Descriptor = { mediaType: busybox.config.mediaType, digest: busybox.config.digest, size: busybox.config.size };
    expect((await c.fetchBytes(source, config)).equals(busybox.config.data)).toBe(true);
    expect(tokens.requests).toHaveLength(1);
  });

  it("an anonymous token without access to the repository ends in Unauthenticated", async () => {
    tokens.requests.length = 0;
    const err = await errorOf(client().resolve(parseImageRef(`${reg.host}/podshim-test/private`)));
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect(err.message).toContain("no credentials were given");
    expect(tokens.requests).toHaveLength(1);
  });

  it("sends username/password to the token server as Basic", async () => {
    tokens.requests.length = 0;
    const c = client();
    const creds = { username: TOKEN_USER, password: TOKEN_PASSWORD };
    const { descriptor } = await c.resolve(parseImageRef(`${reg.host}/podshim-test/private`), creds);
    expect(descriptor.digest).toBe(busybox.manifest.digest);
    expect(tokens.requests).toEqual([
      {
        method: "GET",
        scopes: ["repository:podshim-test/private:pull"],
        authorization: `Basic ${Buffer.from(`${TOKEN_USER}:${TOKEN_PASSWORD}`).toString("base64")}`,
      },
    ]);
  });

  it("wrong credentials: the token server's refusal is Unauthenticated", async () => {
    const err = await errorOf(client().resolve(parseImageRef(`${reg.host}/podshim-test/private`), { username: TOKEN_USER, password: "nope" }));
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect(err.message).toContain("refused the credentials given");
  });

  it("an identity token goes by OAuth2 POST, or by GET when the server has no POST", async () => {
    tokens.requests.length = 0;
    const ref = parseImageRef(`${reg.host}/podshim-test/private`);
    const creds = { identityToken: REFRESH_TOKEN };
    expect((await client().resolve(ref, creds)).descriptor.digest).toBe(busybox.manifest.digest);
    expect(tokens.requests).toEqual([{ method: "POST", scopes: ["repository:podshim-test/private:pull"] }]);

    tokens.requests.length = 0;
    tokens.oauth = false;
    try {
      expect((await client().resolve(ref, creds)).descriptor.digest).toBe(busybox.manifest.digest);
    } finally {
      tokens.oauth = true;
    }
    expect(tokens.requests.map((r) => r.method)).toEqual(["POST", "GET"]);
  });

  it("docker-registry also accepts tokens that name their key by libtrust kid", async () => {
    tokens.keyHeader = "kid";
    try {
      const { descriptor } = await client().resolve(parseImageRef(`${reg.host}/podshim-test/public`));
      expect(descriptor.digest).toBe(busybox.manifest.digest);
    } finally {
      tokens.keyHeader = "x5c";
    }
  });
});
