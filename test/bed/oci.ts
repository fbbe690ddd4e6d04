// A small OCI image writer and pusher for test images: layers from entry lists, image config,
// manifest and index, pushed with the Distribution v2 HTTP API. Output is deterministic (fixed
// mtimes and owners), so the same spec always yields the same digests.
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { pack } from "tar-stream";

export const MEDIA_TYPES = {
  manifest: "application/vnd.oci.image.manifest.v1+json",
  index: "application/vnd.oci.image.index.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
} as const;

export type LayerEntry =
  | { type: "dir"; path: string; mode?: number }
  | { type: "file"; path: string; mode?: number; content: string | Uint8Array }
  /** target is an absolute path inside the image, to an entry earlier in the same layer. */
  | { type: "hardlink"; path: string; target: string }
  | { type: "symlink"; path: string; target: string };

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface ImageSpec {
  layers: LayerEntry[][];
  platform?: Platform;
  config?: {
    Env?: string[];
    Entrypoint?: string[];
    Cmd?: string[];
    User?: string;
    WorkingDir?: string;
    StopSignal?: string;
    ExposedPorts?: string[];
    Labels?: Record<string, string>;
  };
}

export interface Blob {
  mediaType: string;
  digest: string;
  size: number;
  data: Buffer;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
}

export interface BuiltImage {
  platform: Platform;
  config: Blob;
  layers: Blob[];
  /** sha256 of each uncompressed layer tar, as listed in the config's rootfs. */
  diffIds: string[];
  manifest: Blob;
}

export interface Credentials {
  user: string;
  password: string;
}

export interface PushOptions {
  auth?: Credentials;
  /** "http" unless given: the test registry runs without TLS. */
  scheme?: "http" | "https";
}

const GOARCH: Partial<Record<NodeJS.Architecture, string>> = {
  x64: "amd64",
  arm64: "arm64",
  arm: "arm",
  ia32: "386",
  ppc64: "ppc64le",
  s390x: "s390x",
  riscv64: "riscv64",
  loong64: "loong64",
};

export function hostPlatform(): Platform {
  const architecture = GOARCH[process.arch];
  if (!architecture) throw new Error(`no GOARCH for node arch ${process.arch}`);
  return { architecture, os: "linux" };
}

export function sha256(data: Uint8Array): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

function blob(mediaType: string, data: Buffer): Blob {
  return { mediaType, digest: sha256(data), size: data.length, data };
}

function jsonBlob(mediaType: string, value: unknown): Blob {
  return blob(mediaType, Buffer.from(JSON.stringify(value)));
}

export function descriptor(b: Blob, platform?: Platform): Descriptor {
  return platform
    ? { mediaType: b.mediaType, digest: b.digest, size: b.size, platform }
    : { mediaType: b.mediaType, digest: b.digest, size: b.size };
}

/** Tar member names are relative; directories end in a slash. */
function tarName(path: string, isDir: boolean): string {
  const rel = path.replace(/^\/+/, "").replace(/\/+$/, "");
  if (rel === "") throw new Error(`bad layer path ${JSON.stringify(path)}`);
  return isDir ? `${rel}/` : rel;
}

/** The uncompressed tar of one layer. */
export async function layerTar(entries: readonly LayerEntry[]): Promise<Buffer> {
  const tar = pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const chunk of tar) chunks.push(chunk as Buffer);
  })();
  const common = { uid: 0, gid: 0, uname: "root", gname: "root", mtime: new Date(0) };
  const add = (header: Parameters<typeof tar.entry>[0], body?: Buffer): Promise<void> =>
    new Promise((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (body) tar.entry(header, body, cb);
      else tar.entry(header, cb);
    });
  const fileModes = new Map<string, number>();
  for (const e of entries) {
    switch (e.type) {
      case "dir":
        await add({ ...common, name: tarName(e.path, true), type: "directory", mode: e.mode ?? 0o755 });
        break;
      case "file": {
        const body = typeof e.content === "string" ? Buffer.from(e.content) : Buffer.from(e.content);
        const mode = e.mode ?? 0o644;
        fileModes.set(tarName(e.path, false), mode);
        await add({ ...common, name: tarName(e.path, false), type: "file", mode, size: body.length }, body);
        break;
      }
      case "hardlink": {
        // containerd (like docker) chmods the link target to the link header's mode after
        // linking, so the header must repeat the target's mode or it changes the file itself.
        const target = tarName(e.target, false);
        const mode = fileModes.get(target);
        if (mode === undefined) {
          throw new Error(`hardlink ${e.path}: target ${e.target} is not a file earlier in the layer`);
        }
        await add({ ...common, name: tarName(e.path, false), type: "link", linkname: target, mode });
        break;
      }
      case "symlink":
        await add({ ...common, name: tarName(e.path, false), type: "symlink", linkname: e.target, mode: 0o777 });
        break;
    }
  }
  tar.finalize();
  await collected;
  return Buffer.concat(chunks);
}

function imageConfig(spec: ImageSpec, platform: Platform, diffIds: string[]): unknown {
  const c = spec.config ?? {};
  const config: Record<string, unknown> = {};
  if (c.User !== undefined) config.User = c.User;
  if (c.ExposedPorts) config.ExposedPorts = Object.fromEntries(c.ExposedPorts.map((p) => [p, {}]));
  config.Env = c.Env ?? ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];
  if (c.Entrypoint) config.Entrypoint = c.Entrypoint;
  if (c.Cmd) config.Cmd = c.Cmd;
  if (c.WorkingDir !== undefined) config.WorkingDir = c.WorkingDir;
  if (c.Labels) config.Labels = c.Labels;
  if (c.StopSignal !== undefined) config.StopSignal = c.StopSignal;
  return {
    created: "1970-01-01T00:00:00Z",
    architecture: platform.architecture,
    ...(platform.variant ? { variant: platform.variant } : {}),
    os: platform.os,
    config,
    rootfs: { type: "layers", diff_ids: diffIds },
  };
}

export async function buildImage(spec: ImageSpec): Promise<BuiltImage> {
  const platform = spec.platform ?? hostPlatform();
  const layers: Blob[] = [];
  const diffIds: string[] = [];
  for (const entries of spec.layers) {
    const tar = await layerTar(entries);
    diffIds.push(sha256(tar));
    layers.push(blob(MEDIA_TYPES.layerGzip, gzipSync(tar, { level: 6 })));
  }
  const config = jsonBlob(MEDIA_TYPES.config, imageConfig(spec, platform, diffIds));
  const manifest = jsonBlob(MEDIA_TYPES.manifest, {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.manifest,
    config: descriptor(config),
    layers: layers.map((l) => descriptor(l)),
  });
  return { platform, config, layers, diffIds, manifest };
}

/** An image index over images of different platforms; push it with pushIndex. */
export function buildIndex(images: readonly BuiltImage[]): Blob {
  return jsonBlob(MEDIA_TYPES.index, {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.index,
    manifests: images.map((img) => descriptor(img.manifest, img.platform)),
  });
}

class Registry {
  private readonly base: string;
  private readonly name: string;
  private readonly headers: Record<string, string>;

  constructor(host: string, name: string, opts: PushOptions) {
    this.name = name;
    this.base = `${opts.scheme ?? "http"}://${host}`;
    this.headers = opts.auth
      ? { Authorization: `Basic ${Buffer.from(`${opts.auth.user}:${opts.auth.password}`).toString("base64")}` }
      : {};
  }

  private async request(method: string, url: string, body?: Buffer, contentType?: string): Promise<Response> {
    const headers: Record<string, string> = { ...this.headers };
    if (contentType) headers["Content-Type"] = contentType;
    return fetch(url, { method, headers, body, redirect: "follow" });
  }

  private async expect(res: Response, ok: number[], what: string): Promise<void> {
    if (ok.includes(res.status)) return;
    throw new Error(`${what}: HTTP ${res.status} ${await res.text()}`);
  }

  async pushBlob(b: Blob): Promise<void> {
    const head = await this.request("HEAD", `${this.base}/v2/${this.name}/blobs/${b.digest}`);
    if (head.status === 200) return;
    const start = await this.request("POST", `${this.base}/v2/${this.name}/blobs/uploads/`);
    await this.expect(start, [202], `start upload to ${this.name}`);
    await start.arrayBuffer();
    const location = start.headers.get("location");
    if (!location) throw new Error(`no upload location from ${this.base} for ${this.name}`);
    // The location may be relative and already carries the upload state as query parameters.
    const url = new URL(location, this.base);
    url.searchParams.set("digest", b.digest);
    const put = await this.request("PUT", url.toString(), b.data, "application/octet-stream");
    await this.expect(put, [201], `upload ${b.digest} to ${this.name}`);
    await put.arrayBuffer();
  }

  async pushManifest(reference: string, m: Blob): Promise<string> {
    const res = await this.request("PUT", `${this.base}/v2/${this.name}/manifests/${reference}`, m.data, m.mediaType);
    await this.expect(res, [201], `put manifest ${this.name}:${reference}`);
    await res.arrayBuffer();
    const digest = res.headers.get("docker-content-digest") ?? m.digest;
    if (digest !== m.digest) {
      throw new Error(`registry stored ${this.name}:${reference} as ${digest}, expected ${m.digest}`);
    }
    return digest;
  }

  async pushImageBlobs(img: BuiltImage): Promise<void> {
    for (const layer of img.layers) await this.pushBlob(layer);
    await this.pushBlob(img.config);
  }
}

/** Pushes one image as name:tag. name is the repository path without the host. */
export async function pushImage(
  registryHost: string,
  name: string,
  tag: string,
  img: BuiltImage,
  opts: PushOptions = {},
): Promise<{ digest: string }> {
  const reg = new Registry(registryHost, name, opts);
  await reg.pushImageBlobs(img);
  return { digest: await reg.pushManifest(tag, img.manifest) };
}

/** Pushes each image's manifest by digest, then an index over them as name:tag. */
export async function pushIndex(
  registryHost: string,
  name: string,
  tag: string,
  images: readonly BuiltImage[],
  opts: PushOptions = {},
): Promise<{ digest: string; index: Blob }> {
  const reg = new Registry(registryHost, name, opts);
  for (const img of images) {
    await reg.pushImageBlobs(img);
    await reg.pushManifest(img.manifest.digest, img.manifest);
  }
  const index = buildIndex(images);
  return { digest: await reg.pushManifest(tag, index), index };
}
