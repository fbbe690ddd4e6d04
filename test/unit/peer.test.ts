// The peer mirror's pure parts (ranges, peers file, in-flight blobs, backoff), and the server
// and sources together over real HTTP on loopback, with an in-memory stand-in for containerd's
// content store (the integration test runs them on the multi-node bed against containerd).
import { afterAll, describe, expect, it } from "vitest";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { parseRange, PeerServer } from "../../src/peer/peer-server.js";
import { parsePeersFile, PeerList } from "../../src/peer/peer-list.js";
import { InFlightBlobs } from "../../src/peer/inflight.js";
import { PeerContent } from "../../src/peer/peer-content.js";
import { PeerClient } from "../../src/peer/peer-client.js";
import { PeerSources } from "../../src/peer/peer-sources.js";
import { manifestTypeOf } from "../../src/peer/protocol.js";
import type { ContentStore } from "../../src/containerd/content.js";
import { registry as metrics } from "../../src/metrics/metrics.js";

const logger = pino({ level: "silent" });
const tmp = mkdtempSync(join(tmpdir(), "peer-unit-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const digestOf = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

describe("parseRange", () => {
  it.each([
    [undefined, 100, undefined],
    ["bytes=0-9", 100, { start: 0, end: 9 }],
    ["bytes=90-", 100, { start: 90, end: 99 }],
    ["bytes=90-500", 100, { start: 90, end: 99 }],
    ["bytes=-10", 100, { start: 90, end: 99 }],
    ["bytes=100-", 100, "unsatisfiable"],
    ["bytes=5-4", 100, "unsatisfiable"],
    ["bytes=0-1,5-6", 100, undefined],
    ["items=0-1", 100, undefined],
  ])("%s of %d bytes", (header, size, want) => {
    expect(parseRange(header, size)).toEqual(want);
  });
});

describe("peers file", () => {
  it("takes HOST:PORT lines, skips comments and blanks, reports the rest", () => {
    const bad: string[] = [];
    expect(parsePeersFile("# nodes\n10.0.0.1:5050\n\n[fd00::2]:5050  # v6\nnode3.local:5050\nnoport\n10.0.0.9:99999\n", (l) => bad.push(l)))
      .toEqual(["10.0.0.1:5050", "[fd00::2]:5050", "node3.local:5050"]);
    expect(bad).toEqual(["noport", "10.0.0.9:99999"]);
  });

  it("is re-read when it changes, never lists this node, and sets failing peers aside with growing backoff", async () => {
    const file = join(tmp, "peers");
    let now = 1_000_000;
    const list = new PeerList({ peers: ["10.0.0.1:5050"], file, self: ["10.0.0.9:5050"], logger, now: () => now });
    expect(await list.all()).toEqual(["10.0.0.1:5050"]);
    writeFileSync(file, "10.0.0.2:5050\n10.0.0.9:5050\n");
    expect(await list.all()).toEqual(["10.0.0.1:5050", "10.0.0.2:5050"]);
    writeFileSync(file, "10.0.0.3:5050\n10.0.0.2:5050\n");
    expect(await list.all()).toEqual(["10.0.0.1:5050", "10.0.0.3:5050", "10.0.0.2:5050"]);
    list.failed("10.0.0.3:5050", "slow");
    expect(await list.available()).toEqual(["10.0.0.1:5050", "10.0.0.2:5050"]);
    now += 5_001;
    expect(await list.available()).toContain("10.0.0.3:5050");
    list.failed("10.0.0.3:5050", "slow");
    now += 5_001;
    expect(await list.available()).not.toContain("10.0.0.3:5050");
    list.failed("10.0.0.1:5050", "corrupt");
    now += 60_000;
    expect(await list.available()).not.toContain("10.0.0.1:5050");
    list.succeeded("10.0.0.3:5050");
    expect(await list.available()).toContain("10.0.0.3:5050");
    rmSync(file);
    expect(await list.all()).toEqual(["10.0.0.1:5050"]);
  });
});

describe("in-flight blobs", () => {
  it("stream to readers as they arrive, from any offset; a restart cuts readers off; a failure fails them", async () => {
    const flights = new InFlightBlobs();
    const data = randomBytes(1000);
    const blob = flights.begin("sha256:x", data.length, "upstream")!;
    expect(flights.begin("sha256:x", data.length, "upstream")).toBeUndefined();
    const whole = collect(blob.read(0));
    const tail = collect(blob.read(250));
    blob.append(data.subarray(0, 300));
    blob.append(data.subarray(300, 1000));
    expect(await whole).toEqual(data);
    expect(await tail).toEqual(data.subarray(250));

    const again = flights.begin("sha256:y", 10, "upstream")!;
    again.append(Buffer.alloc(4, 1));
    const cut = collect(again.read(0));
    again.restart(0);
    await expect(cut).rejects.toThrow(/stopped/);
    const late = collect(again.read(0));
    again.append(Buffer.alloc(4, 2));
    flights.finish(again, false);
    await expect(late).rejects.toThrow(/stopped/);
    expect(flights.get("sha256:y")).toBeUndefined();
  });

  it("does not announce blobs too large to hold in memory, nor more than 1 GiB at once", () => {
    const flights = new InFlightBlobs();
    expect(flights.begin("sha256:z", 4 * 1024 ** 3, "upstream")).toBeUndefined();
    expect(flights.begin("sha256:a", 500 * 1024 ** 2, "upstream")).toBeDefined();
    expect(flights.begin("sha256:b", 500 * 1024 ** 2, "upstream")).toBeDefined();
    expect(flights.begin("sha256:c", 100 * 1024 ** 2, "upstream")).toBeUndefined();
  });
});

describe("manifestTypeOf", () => {
  it("names manifests and indexes, nothing else", () => {
    expect(manifestTypeOf(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json" })))).toBe("application/vnd.oci.image.manifest.v1+json");
    expect(manifestTypeOf(Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] })))).toBe("application/vnd.oci.image.index.v1+json");
    expect(manifestTypeOf(Buffer.from(JSON.stringify({ architecture: "amd64", rootfs: {} })))).toBeUndefined();
    expect(manifestTypeOf(randomBytes(64))).toBeUndefined();
  });
});

/** Blobs in memory, shaped like the ContentStore calls the peer server makes. */
function memoryStore(blobs: Map<string, Buffer>): ContentStore {
  return {
    async info(digest: string) {
      const b = blobs.get(digest);
      return b ? { digest, size: BigInt(b.length), labels: {}, createdAt: undefined, updatedAt: undefined } : undefined;
    },
    async read(digest: string) {
      return blobs.get(digest)!;
    },
    async *readStream(digest: string, offset: number, size: number) {
      const b = blobs.get(digest)!;
      yield b.subarray(offset, size === 0 ? undefined : offset + size);
    },
  } as unknown as ContentStore;
}

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((r) => server.listen({ host: "127.0.0.1", port: 0 }, () => r()));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe("peer server and sources over loopback", () => {
  const layer = randomBytes(3 * 1024 * 1024 + 17);
  const desc = { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: digestOf(layer), size: layer.length };
  const repo = { domain: "registry.test", path: "team/app" };

  it("a good peer serves the layer (no upstream); a lying one is caught at the end and the next attempt goes upstream", async () => {
    const good = new PeerServer({ host: "127.0.0.1", port: 0, instanceId: "good", logger, content: new PeerContent(memoryStore(new Map([[desc.digest, layer]])), new InFlightBlobs()) });
    await good.start();
    // The liar flips one byte of every body and claims to store everything.
    const liar = http.createServer((req, res) => {
      res.setHeader("Content-Length", String(layer.length));
      if (req.method === "HEAD") return res.end();
      const bad = Buffer.from(layer);
      bad[bad.length - 1]! ^= 1;
      res.end(bad);
    });
    const liarAddress = await listen(liar);
    const client = new PeerClient();
    try {
      for (const [peer, wantPeer] of [[good.address, true], [liarAddress, false]] as const) {
        const list = new PeerList({ peers: [peer], logger });
        const sources = new PeerSources({ list, client, instanceId: "me", resolveTags: false, logger });
        const tally = { upstream: 0, peers: {} as Record<string, number> };
        let upstreamCalls = 0;
        const upstream = async (offset: number) => {
          upstreamCalls++;
          return Readable.from([layer.subarray(offset)]);
        };
        // What the puller does: write what open(0) yields, once more after a transient failure.
        const written = await sources.download(repo, desc, upstream, async (open) => {
          for (let attempt = 1; ; attempt++) {
            try {
              return await collect(await open(0));
            } catch (err) {
              if (attempt === 2) throw err;
            }
          }
        }, tally);
        expect(digestOf(written)).toBe(desc.digest);
        expect(upstreamCalls).toBe(wantPeer ? 0 : 1);
        expect(tally.upstream).toBe(wantPeer ? 0 : layer.length);
        if (!wantPeer) expect((await list.describe())[0]).toMatchObject({ state: "backoff", reason: "corrupt" });
      }
      const text = await metrics.metrics();
      expect(text).toContain(`podshim_image_pull_source_bytes_total{source="peer",peer="${good.address}"} ${layer.length}`);
      expect(text).toContain(`podshim_peer_failures_total{peer="${liarAddress}",reason="corrupt"} 1`);
      expect(text).toMatch(/podshim_peer_served_bytes_total\{kind="blobs"\} \d+/);
    } finally {
      client.close();
      await good.stop();
      await new Promise((r) => liar.close(r));
    }
  });

  it("serves a download under way to a peer as it arrives, and answers HEAD with the claim", async () => {
    const flights = new InFlightBlobs();
    const server = new PeerServer({ host: "127.0.0.1", port: 0, instanceId: "srv", logger, content: new PeerContent(memoryStore(new Map()), flights) });
    await server.start();
    const client = new PeerClient();
    try {
      const blob = flights.begin(desc.digest, desc.size, "upstream")!;
      const head = await client.head(server.address, repo.domain, repo.path, "blobs", desc.digest);
      expect(head).toMatchObject({ state: "fetching-upstream", claim: blob.claim, size: desc.size, node: "srv" });
      const { body } = await client.get(server.address, repo.domain, repo.path, "blobs", desc.digest, desc.size, 1000);
      const got = collect(body);
      blob.append(layer.subarray(0, 500_000));
      blob.append(layer.subarray(500_000));
      flights.finish(blob, true);
      // Buffer.equals: vitest's deep equality takes seconds on megabytes.
      expect((await got).equals(layer.subarray(1000))).toBe(true);
      expect(await client.head(server.address, repo.domain, repo.path, "blobs", desc.digest)).toBeUndefined();
      expect(await client.head(server.address, repo.domain, repo.path, "manifests", "latest")).toBeUndefined();
    } finally {
      client.close();
      await server.stop();
    }
  });

  it("answers a tag only when tag serving is on, and sources resolve a tag from peers only when told to", async () => {
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: {}, layers: [] }));
    const m = { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: digestOf(manifest), size: manifest.length };
    const store = memoryStore(new Map([[m.digest, manifest]]));
    const tags = (name: string) => (name === "registry.test/team/app:v1" ? m : undefined);
    const client = new PeerClient();
    const closed = new PeerServer({ host: "127.0.0.1", port: 0, instanceId: "a", logger, content: new PeerContent(store, new InFlightBlobs()) });
    const open = new PeerServer({ host: "127.0.0.1", port: 0, instanceId: "b", logger, content: new PeerContent(store, new InFlightBlobs(), tags) });
    await closed.start();
    await open.start();
    try {
      expect(await client.head(closed.address, repo.domain, repo.path, "manifests", "v1")).toBeUndefined();
      expect(await client.head(open.address, repo.domain, repo.path, "manifests", "v1")).toMatchObject({ digest: m.digest, mediaType: m.mediaType, size: m.size });
      const ask = (resolveTags: boolean) => new PeerSources({ list: new PeerList({ peers: [open.address], logger }), client, instanceId: "me", resolveTags, logger });
      expect(await ask(false).resolve(repo, { tag: "v1" })).toBeUndefined();
      expect(await ask(true).resolve(repo, { tag: "v1" })).toEqual(m);
      expect(await ask(false).resolve(repo, { digest: m.digest })).toEqual(m);
    } finally {
      client.close();
      await closed.stop();
      await open.stop();
    }
  });

  it("three nodes downloading the same blobs at once go upstream about once per blob, and every node gets every byte", async () => {
    const nodes = await Promise.all([0, 1, 2].map(async (i) => {
      const inflight = new InFlightBlobs();
      const server = new PeerServer({ host: "127.0.0.1", port: 0, instanceId: `n${i}`, logger, content: new PeerContent(memoryStore(new Map()), inflight) });
      await server.start();
      return { server, inflight, list: undefined as PeerList | undefined };
    }));
    const client = new PeerClient();
    let upstreamCalls = 0;
    try {
      const sources = nodes.map((n, i) => new PeerSources({
        list: new PeerList({ peers: nodes.filter((_, j) => j !== i).map((m) => m.server.address), logger }),
        client, inflight: n.inflight, instanceId: `n${i}`, resolveTags: false, logger,
      }));
      const blobs = Array.from({ length: 12 }, () => randomBytes(256 * 1024));
      // The registry: a little slow to answer, then a few chunks.
      const upstreamOf = (data: Buffer) => async (offset: number) => {
        upstreamCalls++;
        await sleep(5);
        return Readable.from([data.subarray(offset, offset + 100_000), data.subarray(offset + 100_000)]);
      };
      for (const data of blobs) {
        const d = { mediaType: "application/octet-stream", digest: digestOf(data), size: data.length };
        const got = await Promise.all(sources.map(async (src) => {
          const tally = { upstream: 0, peers: {} as Record<string, number> };
          return src.download(repo, d, upstreamOf(data), async (open) => collect(await open(0)), tally);
        }));
        for (const g of got) expect(g.equals(data)).toBe(true);
      }
      expect(upstreamCalls / blobs.length).toBeLessThanOrEqual(1.5);
    } finally {
      client.close();
      await Promise.all(nodes.map((n) => n.server.stop()));
    }
  });

  it("a peer that does not answer, or stops sending mid-layer, is set aside as slow and the layer comes from upstream", async () => {
    const silent = http.createServer(() => undefined);
    // Answers HEAD, then sends half the layer and goes quiet.
    const staller = http.createServer((req, res) => {
      res.setHeader("Content-Length", String(layer.length));
      if (req.method === "HEAD") return res.end();
      res.write(layer.subarray(0, layer.length >> 1));
    });
    const addresses = [await listen(silent), await listen(staller)];
    const client = new PeerClient({ headersTimeoutMs: 200, stallTimeoutMs: 200 });
    try {
      for (const peer of addresses) {
        const list = new PeerList({ peers: [peer], logger });
        const sources = new PeerSources({ list, client, instanceId: "me", resolveTags: false, logger });
        const tally = { upstream: 0, peers: {} as Record<string, number> };
        const written = await sources.download(repo, desc, async (offset) => Readable.from([layer.subarray(offset)]), async (open) => {
          for (let attempt = 1; ; attempt++) {
            try {
              return await collect(await open(0));
            } catch (err) {
              if (attempt === 2) throw err;
            }
          }
        }, tally);
        expect(written.equals(layer)).toBe(true);
        expect(tally.upstream).toBe(layer.length);
        expect((await list.describe())[0]).toMatchObject({ state: "backoff", reason: "slow" });
        expect(await list.available()).toEqual([]);
      }
    } finally {
      client.close();
      silent.closeAllConnections();
      staller.closeAllConnections();
      await Promise.all([silent, staller].map((s) => new Promise((r) => s.close(r))));
    }
  });
});
