// Peers as a source of content for pulls: the puller asks here before the registry for every
// blob and manifest by digest (the tag was resolved upstream as always). Nothing a peer sends
// is trusted: documents are hashed before they are used, layers are hashed as they stream and a
// mismatch fails the attempt before containerd commits anything (containerd checks the digest
// at commit too), and the pull goes on from the registry. A peer that is slow, unreachable or
// wrong is set aside for a while (PeerList).
//
// Nodes pulling the same new image at once: a node that finds no peer holding a blob announces
// a claim on it (InFlightBlobs: the peer server answers HEAD with state "claiming" and a random
// token) and asks the peers once more. It then reads from a peer that has decided to fetch it
// upstream, or from a claimant with a lower token; a claimant with a higher token is asked again
// until it has decided, and read from if it went upstream. Otherwise it goes upstream itself.
// Nobody defers to a node that defers, and waiting only goes towards higher tokens, so no two
// nodes wait on each other; late nodes find a download in round one and stream it as it arrives.
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { ErrorKind, InternalError, UnavailableError, isKind, messageOf } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import { countPeerFailure, countPullSourceBytes } from "../metrics/metrics.js";
import type { InFlightBlob, InFlightBlobs, InFlightSource } from "./inflight.js";
import type { PeerClient, PeerHead } from "./peer-client.js";
import type { PeerFailure, PeerList } from "./peer-list.js";
import { MAX_PEER_MANIFEST_BYTES, isManifestType, type PeerDescriptor, type PeerKind, type SourceTally } from "./protocol.js";
import { isDigest } from "./peer-content.js";

export interface PeerSourcesOptions {
  list: PeerList;
  client: PeerClient;
  /** Downloads announced to peers; undefined when this node does not serve (no --peer-address). */
  inflight?: InFlightBlobs;
  instanceId: string;
  /** Ask peers for a tag the registry could not resolve (off by default). */
  resolveTags: boolean;
  logger: Logger;
}

/** The repository a pull names, as peers are asked for it. */
export interface PeerRepo {
  /** The registry host: "docker.io", "10.250.0.1:5000". */
  domain: string;
  path: string;
}

interface Plan {
  peer?: string;
  blob?: InFlightBlob;
}

/** How long a fetched config stays answerable from memory (its pull commits it at the end). */
const DOCUMENT_LINGER_MS = 60_000;

const RANK: Record<PeerHead["state"], number> = { stored: 0, "fetching-upstream": 1, claiming: 2, "fetching-peer": 3 };
/** How long a claimant with a higher token may take to decide, and how often it is asked. */
const DECIDE_WAIT_MS = 2_000;
const DECIDE_POLL_MS = 20;

function failureOf(err: unknown): PeerFailure {
  if (isKind(err, ErrorKind.DeadlineExceeded)) return "slow";
  if (isKind(err, ErrorKind.Unavailable)) return "unreachable";
  return "error";
}

export class PeerSources {
  constructor(private readonly opts: PeerSourcesOptions) {}

  /**
   * A descriptor for a reference the registry could not resolve: by digest from any peer that
   * stores that manifest; by tag only when tag resolution from peers is on.
   */
  async resolve(repo: PeerRepo, reference: { digest?: string; tag?: string }, signal?: AbortSignal): Promise<PeerDescriptor | undefined> {
    const ref = reference.digest ?? (this.opts.resolveTags ? reference.tag : undefined);
    if (!ref) return undefined;
    const heads = await this.ask(repo, "manifests", ref, signal);
    for (const h of heads) {
      if (h.state !== "stored" || h.size === undefined || !h.mediaType || !isManifestType(h.mediaType)) continue;
      const digest = reference.digest ?? h.digest;
      if (!digest || !isDigest(digest) || (reference.digest && h.digest && h.digest !== reference.digest)) continue;
      if (!reference.digest) this.opts.logger.warn({ repository: repo.path, tag: reference.tag, digest, peer: h.peer }, "tag resolved by a peer (peer_resolve_tags is on)");
      return { mediaType: h.mediaType, digest, size: h.size };
    }
    return undefined;
  }

  /** A manifest, index or config: from a peer when one has it (verified), else from `upstream`. */
  async fetchBytes(repo: PeerRepo, desc: PeerDescriptor, upstream: () => Promise<Buffer>, tally: SourceTally, signal?: AbortSignal): Promise<Buffer> {
    const kind: PeerKind = isManifestType(desc.mediaType) ? "manifests" : "blobs";
    const plan = desc.size <= MAX_PEER_MANIFEST_BYTES ? await this.plan(repo, kind, desc, signal) : {};
    let ok = false;
    try {
      if (plan.peer) {
        try {
          const { body } = await this.opts.client.get(plan.peer, repo.domain, repo.path, kind, desc.digest, desc.size, 0, signal);
          const parts: Buffer[] = [];
          for await (const c of this.verified(plan.peer, desc, body, tally, signal)) parts.push(c);
          const bytes = Buffer.concat(parts);
          plan.blob?.append(bytes);
          ok = true;
          return bytes;
        } catch (err) {
          if (signal?.aborted) throw err;
          this.opts.logger.info({ digest: desc.digest, peer: plan.peer, err: messageOf(err) }, "peer could not serve; fetching from the registry");
          if (plan.blob) plan.blob.source = "upstream";
        }
      }
      const bytes = await upstream();
      tally.upstream += bytes.length;
      countPullSourceBytes("upstream", "", bytes.length);
      plan.blob?.append(bytes);
      ok = true;
      return bytes;
    } finally {
      if (plan.blob && ok) this.opts.inflight?.linger(plan.blob, DOCUMENT_LINGER_MS);
      else if (plan.blob) this.opts.inflight?.finish(plan.blob, false);
    }
  }

  /**
   * One layer's download. `write` streams what `open(offset)` yields into the content store and
   * calls open again for a retry; the first open reads from the chosen peer, a retry after the
   * peer failed reads from the registry.
   */
  async download<T>(
    repo: PeerRepo,
    desc: PeerDescriptor,
    upstream: (offset: number) => Promise<Readable>,
    write: (open: (offset: number) => Promise<AsyncIterable<Uint8Array>>) => Promise<T>,
    tally: SourceTally,
    signal?: AbortSignal,
  ): Promise<T> {
    const plan = await this.plan(repo, "blobs", desc, signal);
    let peer = plan.peer;
    const blob = plan.blob;
    let ok = false;
    try {
      const result = await write(async (offset) => {
        blob?.restart(offset);
        if (peer) {
          const from = peer;
          try {
            const { body } = await this.opts.client.get(from, repo.domain, repo.path, "blobs", desc.digest, desc.size, offset, signal);
            const verified = offset === 0 ? this.verified(from, desc, body, tally, signal) : this.counted(from, body, tally, signal);
            return tee(failOver(verified, () => (peer = undefined)), blob);
          } catch (err) {
            if (signal?.aborted) throw err;
            peer = undefined;
            this.opts.logger.info({ digest: desc.digest, peer: from, err: messageOf(err) }, "peer could not serve the layer; fetching from the registry");
          }
        }
        if (blob) blob.source = "upstream";
        return tee(upstreamBytes(await upstream(offset), tally), blob);
      });
      ok = true;
      return result;
    } finally {
      if (blob) this.opts.inflight?.finish(blob, ok);
    }
  }

  /** Who to read a digest from: a peer holding it, or none (the registry), announcing the download. */
  private async plan(repo: PeerRepo, kind: PeerKind, desc: PeerDescriptor, signal?: AbortSignal): Promise<Plan> {
    const announce = (source: InFlightSource) => (kind === "blobs" ? this.opts.inflight?.begin(desc.digest, desc.size, source) : undefined);
    if ((await this.opts.list.all()).length === 0) return { ...optional("blob", announce("upstream")) };
    const holder = best(await this.ask(repo, kind, desc.digest, signal), desc.size);
    if (holder) return { peer: holder.peer, ...optional("blob", announce("peer")) };
    const blob = announce("claiming");
    if (!blob) return {};
    // Round two, now that this node's claim is visible.
    const again = await this.ask(repo, kind, desc.digest, signal);
    const same = again.filter((h) => h.size === undefined || h.size === desc.size);
    const lower = same.filter((h) => h.state === "claiming" && h.claim !== undefined && h.claim < blob.claim).sort((a, b) => (a.claim! < b.claim! ? -1 : 1));
    let pick: PeerHead | undefined = same.find((h) => h.state === "stored") ?? same.find((h) => h.state === "fetching-upstream") ?? lower[0];
    if (!pick) {
      // A claimant with a higher token may not have seen this claim: whether it defers to us or
      // goes upstream is known once it has decided.
      const higher = same.filter((h) => h.state === "claiming" && h.claim !== undefined && h.claim > blob.claim);
      const decided = await Promise.all(higher.map((h) => this.decision(repo, kind, desc.digest, h.peer, signal)));
      pick = decided.find((h) => h?.state === "fetching-upstream" || h?.state === "stored");
    }
    if (pick) {
      blob.source = "peer";
      return { peer: pick.peer, blob };
    }
    blob.source = "upstream";
    return { blob };
  }

  /** Asks a claiming peer again until it has decided (or stops answering for the digest). */
  private async decision(repo: PeerRepo, kind: PeerKind, digest: string, peer: string, signal?: AbortSignal): Promise<PeerHead | undefined> {
    const deadline = Date.now() + DECIDE_WAIT_MS;
    while (Date.now() < deadline && !signal?.aborted) {
      await new Promise((r) => setTimeout(r, DECIDE_POLL_MS));
      let h: PeerHead | undefined;
      try {
        h = await this.opts.client.head(peer, repo.domain, repo.path, kind, digest, signal);
      } catch {
        return undefined;
      }
      if (h?.state !== "claiming") return h;
    }
    return undefined;
  }

  /** HEAD on every available peer at once; a peer that cannot answer is set aside. */
  private async ask(repo: PeerRepo, kind: PeerKind, reference: string, signal?: AbortSignal): Promise<PeerHead[]> {
    const peers = await this.opts.list.available();
    const heads = await Promise.all(peers.map(async (peer) => {
      try {
        const h = await this.opts.client.head(peer, repo.domain, repo.path, kind, reference, signal);
        if (h?.node === this.opts.instanceId) {
          this.opts.list.isSelf(peer);
          return undefined;
        }
        return h;
      } catch (err) {
        if (!signal?.aborted) this.failed(peer, failureOf(err), err);
        return undefined;
      }
    }));
    return heads.filter((h): h is PeerHead => h !== undefined);
  }

  private failed(peer: string, why: PeerFailure, err: unknown): void {
    this.opts.logger.debug({ peer, reason: why, err: messageOf(err) }, "peer failed");
    countPeerFailure(peer, why);
    this.opts.list.failed(peer, why);
  }

  /** A peer's bytes from 0, hashed as they pass: a mismatch fails before the last byte is handed on. */
  private async *verified(peer: string, desc: PeerDescriptor, body: AsyncIterable<Buffer>, tally: SourceTally, signal?: AbortSignal): AsyncIterable<Buffer> {
    const algorithm = desc.digest.slice(0, desc.digest.indexOf(":"));
    const hash = createHash(algorithm);
    let size = 0;
    let held: Buffer | undefined;
    try {
      for await (const chunk of body) {
        hash.update(chunk);
        size += chunk.length;
        count(tally, peer, chunk.length);
        // One chunk is held back, so the bytes that complete the blob are only handed on once
        // they are known to be right.
        if (held) yield held;
        held = chunk;
      }
    } catch (err) {
      if (!signal?.aborted) this.failed(peer, failureOf(err), err);
      throw err instanceof InternalError ? new UnavailableError(messageOf(err), { cause: err }) : err;
    }
    const actual = `${algorithm}:${hash.digest("hex")}`;
    if (size !== desc.size || actual !== desc.digest) {
      this.failed(peer, "corrupt", new InternalError(`sent ${actual}`));
      // Unavailable: the puller retries, and the retry goes to the registry.
      throw new UnavailableError(`peer ${peer} sent ${size} bytes that are ${actual}, not ${desc.digest}; trying the registry`);
    }
    this.opts.list.succeeded(peer);
    if (held) yield held;
  }

  /** A resumed read from a peer (no prefix to hash): containerd checks the digest at commit. */
  private async *counted(peer: string, body: AsyncIterable<Buffer>, tally: SourceTally, signal?: AbortSignal): AsyncIterable<Buffer> {
    try {
      for await (const chunk of body) {
        count(tally, peer, chunk.length);
        yield chunk;
      }
    } catch (err) {
      if (!signal?.aborted) this.failed(peer, failureOf(err), err);
      throw err;
    }
  }
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/** Stored before in flight, upstream downloads before ones relayed from another peer. */
function best(heads: PeerHead[], size: number): PeerHead | undefined {
  const usable = heads.filter((h) => h.size === undefined || h.size === size);
  if (usable.length === 0) return undefined;
  const top = Math.min(...usable.map((h) => RANK[h.state]));
  const ties = usable.filter((h) => RANK[h.state] === top);
  // Spread readers over the peers that are equally good.
  return ties[Math.floor(Math.random() * ties.length)];
}

function count(tally: SourceTally, peer: string, n: number): void {
  tally.peers[peer] = (tally.peers[peer] ?? 0) + n;
  countPullSourceBytes("peer", peer, n);
}

async function* upstreamBytes(body: Readable, tally: SourceTally): AsyncIterable<Buffer> {
  for await (const chunk of body) {
    tally.upstream += (chunk as Buffer).length;
    countPullSourceBytes("upstream", "", (chunk as Buffer).length);
    yield chunk as Buffer;
  }
}

/** After a peer's stream failed, the next open goes to the registry. */
async function* failOver(body: AsyncIterable<Buffer>, onFail: () => void): AsyncIterable<Buffer> {
  try {
    yield* body;
  } catch (err) {
    onFail();
    // Whatever went wrong with the peer, the attempt is worth a retry: it goes to the registry.
    throw isKind(err, ErrorKind.Canceled) ? err : new UnavailableError(messageOf(err), { cause: err });
  }
}

/** Passes the bytes on and into the in-flight record, so peers can read them as they come. */
async function* tee(body: AsyncIterable<Buffer>, blob: InFlightBlob | undefined): AsyncIterable<Buffer> {
  for await (const chunk of body) {
    blob?.append(chunk);
    yield chunk;
  }
}
