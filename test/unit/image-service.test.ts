// The image service against small fakes of its adapters: what it records in containerd, what
// its index answers, and how it reads images back at start. The integration tests keep the
// real daemon and registry.
import { createHash } from "node:crypto";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import type { ImageRecord } from "../../src/containerd/images.js";
import { MediaType, type Descriptor } from "../../src/distribution/descriptor.js";
import type { ImageAdapters } from "../../src/image/image-adapters.js";
import { ImageLabel, ImageService } from "../../src/image/image-service.js";
import type { PulledImage } from "../../src/image/pull.js";
import { createLogger } from "../../src/logger/logger.js";

const quiet = createLogger("silent", new Writable({ write: (_c, _e, done) => done() }));
const digestOf = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** A tiny image in a fake content store: config, one layer, manifest. */
function makeImage(content: Map<string, Buffer>, name: string) {
  const diffId = `sha256:${createHash("sha256").update(name).digest("hex")}`;
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", config: { Cmd: ["sh"] }, rootfs: { type: "layers", diff_ids: [diffId] } }));
  const configDesc: Descriptor = { mediaType: MediaType.OciConfig, digest: digestOf(config), size: config.length };
  const layer: Descriptor = { mediaType: MediaType.OciLayerGzip, digest: `sha256:${"1".repeat(64)}`, size: 100 };
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: configDesc, layers: [layer] }));
  const manifestDesc: Descriptor = { mediaType: MediaType.OciManifest, digest: digestOf(manifest), size: manifest.length };
  content.set(configDesc.digest, config);
  content.set(manifestDesc.digest, manifest);
  return { configDesc, manifestDesc, layer, diffId, config: JSON.parse(config.toString()) };
}

function fakes() {
  const records = new Map<string, ImageRecord>();
  const content = new Map<string, Buffer>();
  const pulls: string[] = [];
  let release: (() => void) | undefined;
  const gate = { hold: false };
  const adapters: ImageAdapters = {
    records: {
      async list() {
        return [...records.values()];
      },
      async put(rec) {
        records.set(rec.name, rec);
      },
      async delete(name) {
        records.delete(name);
      },
    },
    content: {
      async read(digest) {
        const b = content.get(digest);
        if (!b) throw new Error(`content ${digest} not found`);
        return b;
      },
    },
    snapshots: {
      snapshotter: "overlayfs",
      async list() {
        return [{ name: "a" }, { name: "b" }] as never;
      },
      async usage(key) {
        return key === "a" ? { size: 10n, inodes: 2n } : { size: 5n, inodes: 1n };
      },
    },
    puller: {
      async pull(ref, _creds, register) {
        pulls.push(`${ref.domain}/${ref.path}:${ref.tag}`);
        if (gate.hold) await new Promise<void>((r) => (release = r));
        const img = makeImage(content, ref.path);
        const pulled: PulledImage = {
          ref, target: img.manifestDesc, manifest: img.manifestDesc, layers: [img.layer], config: img.config,
          configDescriptor: img.configDesc, chainId: img.diffId, size: img.manifestDesc.size + img.configDesc.size + img.layer.size,
        };
        return register(pulled);
      },
      async importImage() {
        throw new Error("not in these tests");
      },
    },
    async snapshotterRoot(snapshotter) {
      return `/var/lib/containerd/io.containerd.snapshotter.v1.${snapshotter}`;
    },
  };
  return { adapters, records, content, pulls, gate, release: () => release?.() };
}

const service = (f: ReturnType<typeof fakes>) => new ImageService({ adapters: f.adapters, logger: quiet, pauseImage: "registry.k8s.io/pause:3.10" });

describe("ImageService against fakes", () => {
  it("records a pulled image under its tag, repo@digest and ID, and answers status from its index", async () => {
    const f = fakes();
    const images = service(f);
    const img = await images.pull("busybox");
    expect([...f.records.keys()].sort()).toEqual([`docker.io/library/busybox:latest`, `docker.io/library/busybox@${img.target.digest}`, img.id].sort());
    expect(f.records.get("docker.io/library/busybox:latest")!.labels[ImageLabel.managed]).toBe("managed");
    expect(images.status("busybox:latest")?.id).toBe(img.id);
    expect(images.status(img.id)?.id).toBe(img.id);
    expect(images.list().map((i) => i.id)).toEqual([img.id]);
  });

  it("shares one download between concurrent pulls of one reference", async () => {
    const f = fakes();
    const images = service(f);
    f.gate.hold = true;
    const both = Promise.all([images.pull("busybox"), images.pull("docker.io/library/busybox:latest")]);
    await new Promise((r) => setImmediate(r));
    f.release();
    const [a, b] = await both;
    expect(a.id).toBe(b.id);
    expect(f.pulls).toEqual(["docker.io/library/busybox:latest"]);
  });

  it("pins the configured pause image", async () => {
    const f = fakes();
    const images = service(f);
    await images.pull("registry.k8s.io/pause:3.10");
    expect(f.records.get("registry.k8s.io/pause:3.10")!.labels[ImageLabel.pinned]).toBe("pinned");
    expect(images.status("registry.k8s.io/pause:3.10")?.pinned).toBe(true);
  });

  it("removes one of several tags alone, and the last name with the image", async () => {
    const f = fakes();
    const images = service(f);
    const img = await images.pull("busybox:1");
    await images.pull("busybox:2");
    await images.remove("busybox:1");
    expect(f.records.has("docker.io/library/busybox:1")).toBe(false);
    expect(images.status("busybox:2")?.id).toBe(img.id);
    await images.remove("busybox:2");
    expect(f.records.size).toBe(0);
    expect(images.list()).toEqual([]);
    await images.remove("busybox:3"); // unknown: not an error
  });

  it("rebuilds its index from containerd's records at start, skipping an image whose content is gone", async () => {
    const f = fakes();
    const first = service(f);
    const img = await first.pull("busybox");
    f.records.set("docker.io/library/broken:latest", { name: "docker.io/library/broken:latest", target: { mediaType: MediaType.OciManifest, digest: `sha256:${"9".repeat(64)}`, size: 10 }, labels: {} });
    const again = service(f);
    await again.load();
    expect(again.list().map((i) => i.id)).toEqual([img.id]);
    expect([...again.status("busybox")!.names].sort()).toEqual([...img.names].sort());
  });

  it("reports the snapshotter's usage and where it keeps its data", async () => {
    const f = fakes();
    const fs = await service(f).fsInfo();
    expect([fs.usedBytes, fs.inodesUsed, fs.mountpoint]).toEqual([15n, 3n, "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs"]);
  });
});
