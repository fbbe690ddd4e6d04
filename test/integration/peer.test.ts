// The peer mirror on a 3-node bed (each node serves on PEER_PORT and lists the others in its
// peers file): a ~100 MB image pulled by node 1 reaches node 2 with no blob request to the
// registry; with the registry stopped node 2 still pulls by digest what only node 1 has; a peer
// that corrupts every body costs time but never the image; three nodes pulling one new image at
// once share its layers. The registry's blob GETs are counted from its access log. Figures are
// printed and written to .tmp/bench/peer.json.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { criClient, statusOf, type CriClient } from "../support/cri-client.js";
import { PODSHIM_MAIN } from "../support/podshim.js";
import { buildImage, pushImage, type BuiltImage } from "../bed/oci.js";
import { mountsUnder, run, runOk, shimsReferencing } from "../bed/proc.js";
import {
  FABRIC_ADDRESS, REGISTRY, multinodeDown, multinodeUp, podshimRestart, registryBlobGets, registryDown, registryLogMark, registryLogOffset, registryUp, setPeers,
  type BedNode, type MultinodeBed,
} from "../bed/multinode.js";

const bed = inject("bed");
const dir = mkdtempSync(join(bed.tmpDir, "mn-"));
const figures: Record<string, unknown> = {};
const clients = new Map<number, CriClient>();
const CORRUPT_PEER = `${FABRIC_ADDRESS}:5051`;
let mn: MultinodeBed;
let corrupt: ChildProcess | undefined;

interface TestImage {
  name: string;
  img: BuiltImage;
  digest: string;
  /** The reference the nodes pull (the fabric registry). */
  ref: string;
}

const cri = (node: BedNode): CriClient => {
  let c = clients.get(node.index);
  if (!c) clients.set(node.index, (c = criClient(node.podshimSocket)));
  return c;
};

/** An image of `layers` random layers of `mb` MB each (random bytes do not compress), pushed
 * through the bed's loopback registry into the storage the fabric's registry serves. */
async function randomImage(name: string, layers: number, mb: number): Promise<TestImage> {
  const spec = Array.from({ length: layers }, (_, i) => [{ type: "file" as const, path: `/data/${name}-${i}`, content: randomBytes(mb * 1024 * 1024) }]);
  const img = await buildImage({ layers: spec, config: { Cmd: ["/data"] } });
  const { digest } = await pushImage(bed.registryHost, `peer-test/${name}`, "latest", img);
  return { name, img, digest, ref: `${REGISTRY}/peer-test/${name}:latest` };
}

async function pull(node: BedNode, ref: string): Promise<{ ms: number; id: string }> {
  const t = performance.now();
  const res = await cri(node).image("PullImage", { image: { image: ref } }, 300_000);
  return { ms: Math.round(performance.now() - t), id: res.image_ref };
}

/** Registry blob GETs since `offset`: per layer of the image, and for its config. */
async function getsFor(offset: number, image: TestImage, from?: string): Promise<{ layers: number[]; config: number; total: number }> {
  const gets = await registryBlobGets(mn, offset, from);
  const layers = image.img.layers.map((l) => gets.get(l.digest) ?? 0);
  const config = gets.get(image.img.config.digest) ?? 0;
  return { layers, config, total: layers.reduce((a, b) => a + b, 0) + config };
}


/** The node's "pulled" log line for an image (the last one). */
async function pulledLine(node: BedNode, ref: string): Promise<Record<string, unknown>> {
  const lines = (await readFile(node.podshimLog, "utf8")).split("\n").filter((l) => l.includes('"msg":"pulled"') && l.includes(ref));
  expect(lines.length).toBeGreaterThan(0);
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}

/**
 * Waits until `node` has every other bed node among its peers and none of them set aside: a
 * peer that was not serving yet when this node first asked it (at the bed's start) stays in
 * backoff for a while, and a pull meanwhile rightly goes upstream.
 */
async function peersUsable(node: BedNode): Promise<void> {
  const others = mn.nodes.filter((n) => n !== node).map((n) => n.peerAddress);
  const deadline = Date.now() + 90_000;
  let last = "";
  for (;;) {
    const info = JSON.parse((await cri(node).runtime("Status", { verbose: true })).info.peering) as { peers: { peer: string; state: string }[] };
    const states = new Map(info.peers.map((p) => [p.peer, p.state]));
    last = JSON.stringify(info.peers);
    if (others.every((o) => states.get(o) === "ok")) return;
    if (Date.now() > deadline) throw new Error(`peers of node ${node.index} not usable within 90 s: ${last}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function ctr(node: BedNode, args: string[]): Promise<{ stdout: string }> {
  return runOk("ctr", ["--address", node.containerdSocket, "-n", "podshim", ...args], { timeoutMs: 60_000 });
}

let big: TestImage;
let solo: TestImage;
let lied: TestImage;
let burst: TestImage;

beforeAll(async () => {
  const t = performance.now();
  [big, solo, lied, burst] = [
    await randomImage("big", 5, 20),
    await randomImage("solo", 2, 2),
    await randomImage("lied", 2, 4),
    await randomImage("burst", 6, 5),
  ];
  figures.imagesBuiltMs = Math.round(performance.now() - t);
  mn = await multinodeUp({ dir, nodes: 3, registryStorage: bed.registryStorage, podshimMain: PODSHIM_MAIN, restrictOomScoreAdj: true, pauseImage: REGISTRY + "/podshim-test/pause:3.10", logLevel: "debug" });
}, 240_000);

async function stopCorruptPeer(): Promise<void> {
  const proc = corrupt;
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise((r) => proc.once("exit", r));
  proc.kill("SIGKILL");
  await gone;
}

afterAll(async () => {
  for (const c of clients.values()) c.close();
  await stopCorruptPeer();
  await multinodeDown(dir);
  const out = fileURLToPath(new URL("../../.tmp/bench/", import.meta.url));
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "peer.json"), JSON.stringify({ at: new Date().toISOString(), ...figures }, null, 2));
  console.log("peer mirror:", JSON.stringify(figures, null, 2));
}, 180_000);

describe("the peer mirror on a 3-node bed", () => {
  it("serves by digest only: /v2/ answers, a blob by digest with ranges, a tag is 404", async () => {
    const [n1] = mn.nodes as [BedNode];
    await pull(n1, solo.ref);
    const layer = solo.img.layers[0]!;
    // The test runs in the host's namespace; curl runs in node 2's, where node 1 is reachable.
    const n2 = mn.nodes[1]!;
    const curl = (args: string[]) => run("nsenter", [`--net=/run/netns/${n2.netns}`, "curl", "-s", ...args], { timeoutMs: 30_000 });
    const base = `http://${n1.peerAddress}/v2`;
    expect((await curl(["-o", "/dev/null", "-w", "%{http_code}", `${base}/`])).stdout).toBe("200");
    const full = await run("nsenter", [`--net=/run/netns/${n2.netns}`, "sh", "-c", `curl -s ${base}/peer-test/solo/blobs/${layer.digest} | sha256sum`], { timeoutMs: 30_000 });
    expect(`sha256:${full.stdout.split(" ")[0]}`).toBe(layer.digest);
    const part = await run("nsenter", [`--net=/run/netns/${n2.netns}`, "sh", "-c", `curl -s -r 100-1099 ${base}/peer-test/solo/blobs/${layer.digest} | sha256sum`], { timeoutMs: 30_000 });
    expect(part.stdout.split(" ")[0]).toBe(createHash("sha256").update(layer.data.subarray(100, 1100)).digest("hex"));
    const head = await curl(["-I", `${base}/peer-test/solo/manifests/${solo.digest}`]);
    expect(head.stdout).toMatch(/^HTTP\/1.1 200/);
    expect(head.stdout.toLowerCase()).toContain("content-type: application/vnd.oci.image.manifest.v1+json");
    expect((await curl(["-o", "/dev/null", "-w", "%{http_code}", `${base}/peer-test/solo/manifests/latest`])).stdout).toBe("404");
    expect((await curl(["-o", "/dev/null", "-w", "%{http_code}", `${base}/peer-test/solo/blobs/sha256:${"0".repeat(64)}`])).stdout).toBe("404");
    expect((await curl(["-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE", `${base}/peer-test/solo/blobs/${layer.digest}`])).stdout).toBe("405");
  });

  it("node 2 pulls a ~100 MB image node 1 has without one blob request to the registry", async () => {
    const [n1, n2, n3] = mn.nodes as [BedNode, BedNode, BedNode];
    const blobs = big.img.layers.length + 1;
    const mb = Math.round(big.img.layers.reduce((n, l) => n + l.size, 0) / 1e6);

    let offset = await registryLogOffset(mn);
    const first = await pull(n1, big.ref);
    await registryLogMark(mn);
    const node1 = await getsFor(offset, big);
    expect(node1.layers).toEqual(big.img.layers.map(() => 1));

    // Without peering, for comparison: node 3 with an empty peer list.
    await setPeers(n3, []);
    offset = await registryLogOffset(mn);
    const alone = await pull(n3, big.ref);
    await registryLogMark(mn);
    const node3 = await getsFor(offset, big);
    expect(node3.total).toBe(blobs);
    await setPeers(n3, [n1.peerAddress, n2.peerAddress]);

    await peersUsable(n2);
    offset = await registryLogOffset(mn);
    const peered = await pull(n2, big.ref);
    expect(peered.id).toBe(big.img.config.digest);
    const status = await cri(n2).image("ImageStatus", { image: { image: big.ref } });
    expect(status.image.repo_digests).toContain(`${REGISTRY}/peer-test/big@${big.digest}`);
    await registryLogMark(mn);
    const node2 = await getsFor(offset, big);
    expect(node2.total).toBe(0);
    // crictl info shows the mirror and its peers.
    const info = JSON.parse((await cri(n2).runtime("Status", { verbose: true })).info.peering) as { serving: string; peers: { peer: string; state: string }[] };
    expect(info.serving).toBe(n2.peerAddress);
    expect(info.peers.map((p) => p.peer).sort()).toEqual([n1.peerAddress, n3.peerAddress].sort());
    const line = await pulledLine(n2, big.ref);
    const fromPeers = line.fromPeers as Record<string, number>;
    const peerBytes = Object.values(fromPeers).reduce((a, b) => a + b, 0);
    expect(peerBytes).toBeGreaterThanOrEqual(big.img.layers.reduce((n, l) => n + l.size, 0));
    // The serving side alone: one 20 MB layer from node 1's mirror to /dev/null, from node 2's namespace.
    const layer = big.img.layers[0]!;
    const raw = await runOk("nsenter", [`--net=/run/netns/${n2.netns}`, "curl", "-s", "-o", "/dev/null", "-w", "%{time_total}", `http://${n1.peerAddress}/v2/peer-test/big/blobs/${layer.digest}`], { timeoutMs: 60_000 });
    const rawMs = Math.round(Number(raw.stdout) * 1000);
    figures.big = {
      serveOneLayer: { mb: Math.round(layer.size / 1e6), ms: rawMs },
      imageMB: mb, layers: big.img.layers.length,
      node1FromRegistry: { ms: first.ms, registryBlobGets: node1.total },
      node3WithoutPeering: { ms: alone.ms, registryBlobGets: node3.total },
      node2WithPeering: { ms: peered.ms, registryBlobGets: node2.total, bytesFromPeers: fromPeers, bytesFromUpstream: line.fromUpstream },
    };
  });

  it("with the registry stopped, node 2 pulls by digest an image only node 1 has; by tag it cannot", async () => {
    const [, n2] = mn.nodes as [BedNode, BedNode];
    await peersUsable(n2);
    await registryDown(mn);
    try {
      const byDigest = `${REGISTRY}/peer-test/solo@${solo.digest}`;
      const t = performance.now();
      const res = await cri(n2).image("PullImage", { image: { image: byDigest } }, 120_000);
      const ms = Math.round(performance.now() - t);
      expect(res.image_ref).toBe(solo.img.config.digest);
      const status = await cri(n2).image("ImageStatus", { image: { image: byDigest } });
      expect(status.image.id).toBe(solo.img.config.digest);
      // Tags are not content: without peer_resolve_tags the registry's answer is the only one.
      const byTag = await statusOf(cri(n2).image("PullImage", { image: { image: solo.ref } }, 60_000));
      expect(byTag.code).toBe(14); // UNAVAILABLE
      expect(byTag.details).toMatch(/cannot reach/);
      figures.registryDown = { pullByDigestMs: ms, byTag: `refused: ${byTag.details.slice(0, 120)}` };
    } finally {
      await registryUp(mn);
    }
  });

  it("with --peer-resolve-tags on both sides, a tag the registry cannot resolve is resolved by a peer", async () => {
    const [n1, n2] = mn.nodes as [BedNode, BedNode];
    const restart = async (on: boolean) => {
      mn.options.nodeArgs = on ? { "1": ["--peer-resolve-tags"], "2": ["--peer-resolve-tags"] } : {};
      for (const n of [n1, n2]) {
        clients.get(n.index)?.close();
        clients.delete(n.index);
        await podshimRestart(mn, n);
      }
    };
    await restart(true);
    await peersUsable(n2);
    await registryDown(mn);
    try {
      const res = await cri(n2).image("PullImage", { image: { image: solo.ref } }, 120_000);
      expect(res.image_ref).toBe(solo.img.config.digest);
      const status = await cri(n2).image("ImageStatus", { image: { image: solo.ref } });
      expect(status.image.repo_tags).toContain(solo.ref);
      expect(await readFile(n2.podshimLog, "utf8")).toMatch(/"msg":"tag resolved by a peer \(peer_resolve_tags is on\)"/);
    } finally {
      await registryUp(mn);
      await restart(false);
    }
  });

  it("a peer that corrupts what it sends costs time, never the image: the pull completes from the registry and only good content is committed", async () => {
    const [, n2] = mn.nodes as [BedNode, BedNode];
    const script = fileURLToPath(new URL("../bed/corrupt-peer.mjs", import.meta.url));
    corrupt = spawn("nsenter", [`--net=/run/netns/${mn.fabricNetns}`, process.execPath, script, FABRIC_ADDRESS, "5051", `http://${REGISTRY}`], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve, reject) => {
      corrupt!.once("exit", (code) => reject(new Error(`corrupt peer exited ${code}`)));
      corrupt!.stdout!.on("data", (d: Buffer) => {
        if (d.toString().includes("listening")) resolve();
      });
    });
    const stats = async () => JSON.parse((await run("nsenter", [`--net=/run/netns/${n2.netns}`, "curl", "-s", `http://${CORRUPT_PEER}/stats`], { timeoutMs: 10_000 })).stdout) as { head: number; get: number; corrupted: number };
    await setPeers(n2, [CORRUPT_PEER]);
    try {
      const offset = await registryLogOffset(mn);
      const t = performance.now();
      const res = await cri(n2).image("PullImage", { image: { image: lied.ref } }, 120_000);
      const ms = Math.round(performance.now() - t);
      expect(res.image_ref).toBe(lied.img.config.digest);
      const served = await stats();
      expect(served.corrupted).toBeGreaterThan(0);
      await registryLogMark(mn);
      // Node 2's own requests (the lying peer proxies the registry too).
      const gets = await getsFor(offset, lied, n2.address);
      // Every layer came from the registry in the end (the peer is set aside after its first lie).
      for (const n of gets.layers) expect(n).toBe(1);
      // What containerd holds is exactly the image's bytes, and no write is left half done.
      for (const layer of lied.img.layers) {
        const bytes = await run("sh", ["-c", `ctr --address ${n2.containerdSocket} -n podshim content get ${layer.digest} | sha256sum`], { timeoutMs: 60_000 });
        expect(`sha256:${bytes.stdout.split(" ")[0]}`).toBe(layer.digest);
      }
      expect((await ctr(n2, ["content", "active"])).stdout.trim().split("\n").slice(1).filter((l) => l.trim() !== "")).toEqual([]);
      const log = await readFile(n2.podshimLog, "utf8");
      expect(log).toMatch(/"reason":"corrupt".*"msg":"peer set aside"/);
      figures.corruptPeer = { pullMs: ms, peerRequests: served, registryBlobGets: gets };
    } finally {
      await setPeers(n2, mn.nodes.filter((n) => n !== n2).map((n) => n.peerAddress));
      await stopCorruptPeer();
    }
  });

  it("three nodes pulling one new image at once send at most 1.5 blob GETs per layer to the registry", async () => {
    for (const n of mn.nodes) await peersUsable(n);
    const offset = await registryLogOffset(mn);
    const t = performance.now();
    const results = await Promise.all(mn.nodes.map((n) => pull(n, burst.ref)));
    const ms = Math.round(performance.now() - t);
    for (const r of results) expect(r.id).toBe(burst.img.config.digest);
    await registryLogMark(mn);
    const gets = await getsFor(offset, burst);
    const perLayer = gets.layers.reduce((a, b) => a + b, 0) / gets.layers.length;
    figures.concurrent = {
      nodes: 3, layers: burst.img.layers.length, layerMB: 5, wallMs: ms, perNodeMs: results.map((r) => r.ms),
      registryGetsPerLayer: gets.layers, averagePerLayer: Math.round(perLayer * 100) / 100, configGets: gets.config,
    };
    expect(perLayer).toBeLessThanOrEqual(1.5);
  });

  it("comes down without leftovers", async () => {
    for (const c of clients.values()) c.close();
    clients.clear();
    await multinodeDown(dir);
    expect(await shimsReferencing(`${dir}/`)).toEqual([]);
    expect(await mountsUnder(dir)).toEqual([]);
    expect((await run("pgrep", ["-f", dir])).stdout.trim()).toBe("");
  });
});
