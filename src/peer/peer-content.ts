// What this node can give its peers: a blob or manifest by digest, from the downloads under way
// (in memory, as they arrive) or from containerd's content store in podshim's namespace. Never
// by tag unless the operator turned tag resolution from peers on: a tag is a name, not content,
// and answering it would let one node decide what image another runs.
import { isKind, ErrorKind } from "../errors/errors.js";
import type { ContentStore } from "../containerd/content.js";
import type { InFlightBlobs } from "./inflight.js";
import { MAX_PEER_MANIFEST_BYTES, manifestTypeOf, type PeerDescriptor, type PeerKind, type PeerState } from "./protocol.js";

export interface Found {
  state: PeerState;
  digest: string;
  size: number;
  mediaType: string;
  claim?: string;
  /** The bytes from offset to offset+length. */
  open(offset: number, length: number): AsyncIterable<Buffer>;
}

/** A tag's target by image name ("registry/repo:tag"), when tag serving is on. */
export type TagLookup = (name: string) => PeerDescriptor | undefined;

const DIGEST = /^sha(256:[a-f0-9]{64}|384:[a-f0-9]{96}|512:[a-f0-9]{128})$/;

export function isDigest(s: string): boolean {
  return DIGEST.test(s);
}

export class PeerContent {
  constructor(
    private readonly content: ContentStore,
    private readonly inflight: InFlightBlobs,
    private readonly tags?: TagLookup,
  ) {}

  /** The digest a tag names here, or undefined (always, unless tag serving is on). */
  tag(registry: string | undefined, repository: string, tag: string): PeerDescriptor | undefined {
    if (!this.tags || !registry) return undefined;
    return this.tags(`${registry}/${repository}:${tag}`);
  }

  async find(kind: PeerKind, digest: string): Promise<Found | undefined> {
    const flying = this.inflight.get(digest);
    if (flying && kind === "blobs") {
      return {
        state: flying.complete ? "stored" : flying.source === "claiming" ? "claiming" : flying.source === "upstream" ? "fetching-upstream" : "fetching-peer",
        digest, size: flying.size, mediaType: "application/octet-stream", claim: flying.claim,
        open: (offset, length) => limit(flying.read(offset), length),
      };
    }
    const info = await this.content.info(digest);
    if (!info) return undefined;
    const size = Number(info.size);
    if (kind === "blobs") {
      return { state: "stored", digest, size, mediaType: "application/octet-stream", open: (offset, length) => this.content.readStream(digest, offset, length) };
    }
    // A manifest is served only as what it is: small JSON of a manifest or index type.
    if (size > MAX_PEER_MANIFEST_BYTES) return undefined;
    let body: Buffer;
    try {
      body = await this.content.read(digest);
    } catch (err) {
      if (isKind(err, ErrorKind.NotFound)) return undefined;
      throw err;
    }
    const mediaType = manifestTypeOf(body);
    if (!mediaType) return undefined;
    return {
      state: "stored", digest, size: body.length, mediaType,
      open: async function* (offset, length) {
        yield body.subarray(offset, offset + length);
      },
    };
  }
}

async function* limit(source: AsyncIterable<Buffer>, length: number): AsyncIterable<Buffer> {
  let left = length;
  if (left <= 0) return;
  for await (const chunk of source) {
    if (chunk.length >= left) {
      yield chunk.subarray(0, left);
      return;
    }
    left -= chunk.length;
    yield chunk;
  }
}
