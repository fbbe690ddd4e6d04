// The peer mirror's parts, built from the config: the server (with --peer-address), the peer
// list and the sources the puller asks before the registry (with peers or a peers file).
import { randomBytes } from "node:crypto";
import type { Config } from "../config/options.js";
import type { ContentStore } from "../containerd/content.js";
import type { Logger } from "../logger/logger.js";
import { InFlightBlobs } from "./inflight.js";
import { PeerClient } from "./peer-client.js";
import { PeerContent, type TagLookup } from "./peer-content.js";
import { PeerList } from "./peer-list.js";
import { PeerServer } from "./peer-server.js";
import { PeerSources } from "./peer-sources.js";

export class Peering {
  readonly sources: PeerSources;
  readonly server: PeerServer | undefined;
  private readonly list: PeerList;
  private readonly client = new PeerClient();
  private readonly inflight = new InFlightBlobs();

  constructor(private readonly config: Config, content: ContentStore, tags: TagLookup, logger: Logger) {
    const instanceId = randomBytes(12).toString("hex");
    const self = config.peerAddress ? [`${config.peerAddress.host.includes(":") ? `[${config.peerAddress.host}]` : config.peerAddress.host}:${config.peerAddress.port}`] : [];
    this.list = new PeerList({ peers: config.peers, ...(config.peersFile ? { file: config.peersFile } : {}), self, logger });
    this.server = config.peerAddress
      ? new PeerServer({ ...config.peerAddress, instanceId, logger, content: new PeerContent(content, this.inflight, config.peerResolveTags ? tags : undefined) })
      : undefined;
    this.sources = new PeerSources({
      list: this.list, client: this.client, instanceId, resolveTags: config.peerResolveTags, logger,
      ...(this.server ? { inflight: this.inflight } : {}),
    });
  }

  /** Peering is on when this node serves or has peers to ask. */
  static wanted(config: Config): boolean {
    return config.peerAddress !== undefined || config.peers.length > 0 || config.peersFile !== "";
  }

  async start(): Promise<void> {
    await this.server?.start();
  }

  async stop(): Promise<void> {
    await this.server?.stop();
    this.client.close();
  }

  /** For Status verbose. */
  async describe(): Promise<object> {
    return {
      serving: this.server ? this.server.address || "starting" : "off",
      peersFile: this.config.peersFile,
      resolveTags: this.config.peerResolveTags,
      // Downloads under way that peers may read, and configs kept briefly for them.
      heldForPeers: this.inflight.size,
      peers: await this.list.describe(),
    };
  }
}
