// The ImageService through the CRI socket, pulling from real docker-registry instances.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { status as Status } from "@grpc/grpc-js";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startRegistry, type RegistryHandle } from "../bed/registry.js";
import { buildImage, pushImage } from "../bed/oci.js";
import { busyboxLayer } from "../bed/images.js";
import { run } from "../bed/proc.js";
import { startPodshim, type PodshimHandle } from "../support/podshim.js";
import { statusOf } from "../support/cri-client.js";

const bed = inject("bed");
const base = mkdtempSync(join(bed.tmpDir, "images-"));
let podshim: PodshimHandle;
const extraRegistries: RegistryHandle[] = [];

beforeAll(async () => {
  podshim = await startPodshim({ containerdSocket: bed.containerdSocket, baseDir: base, extraArgs: ["--pause-image", bed.images.pause] });
});
afterAll(async () => {
  await podshim?.cleanup();
  for (const r of extraRegistries) await r.cleanup();
  rmSync(base, { recursive: true, force: true });
});

const pull = (image: string, auth?: object) => podshim.cri.image("PullImage", { image: { image }, ...(auth ? { auth } : {}) }, 120_000);
const status = (image: string, verbose = false) => podshim.cri.image("ImageStatus", { image: { image }, verbose });

async function ctrContent(): Promise<string[]> {
  const res = await run("ctr", ["--address", bed.containerdSocket, "-n", podshim.namespace, "content", "ls", "-q"]);
  return res.stdout.split("\n").filter(Boolean);
}

async function ctrSnapshots(): Promise<string[]> {
  const res = await run("ctr", ["--address", bed.containerdSocket, "-n", podshim.namespace, "snapshots", "ls"]);
  return res.stdout.split("\n").slice(1).map((l) => l.split(/\s+/)[0]!).filter(Boolean);
}

async function busyboxIn(registry: RegistryHandle, repo: string, auth?: { user: string; password: string }): Promise<string> {
  const img = await buildImage({ layers: [await busyboxLayer()], config: { Cmd: ["sh"] } });
  await pushImage(registry.host, repo, "latest", img, auth ? { auth } : {});
  return `${registry.host}/${repo}:latest`;
}

describe("PullImage and ImageStatus", () => {
  it("pulls by tag and reports ID, tags, digests, size and the image user", async () => {
    const res = await pull(bed.images.busybox);
    expect(res.image_ref).toMatch(/^sha256:[0-9a-f]{64}$/);
    const st = await status(bed.images.busybox);
    expect(st.image.id).toBe(res.image_ref);
    expect(st.image.repo_tags).toEqual([bed.images.busybox]);
    expect(st.image.repo_digests).toHaveLength(1);
    expect(st.image.repo_digests[0]).toMatch(new RegExp(`^${bed.registryHost}/podshim-test/busybox@sha256:[0-9a-f]{64}$`));
    expect(Number(st.image.size)).toBeGreaterThan(500_000);
    expect(st.image.pinned).toBe(false);
    // By ID, by bare hex ID and by ID prefix.
    expect((await status(res.image_ref)).image.id).toBe(res.image_ref);
    expect((await status(res.image_ref.slice(7))).image.id).toBe(res.image_ref);
    expect((await status(res.image_ref.slice(0, 19))).image.id).toBe(res.image_ref);
  });

  it("pulls by digest", async () => {
    const digestRef = (await status(bed.images.busybox)).image.repo_digests[0];
    const res = await pull(digestRef);
    const st = await status(digestRef);
    expect(st.image.id).toBe(res.image_ref);
    expect(st.image.repo_digests).toContain(digestRef);
  });

  it("pulls this platform's image from a multi-platform index; the repo digest is the index's", async () => {
    const res = await pull(bed.images.multi);
    const st = await status(bed.images.multi, true);
    expect(st.image.id).toBe(res.image_ref);
    const info = JSON.parse(st.info.info);
    expect(info.target.mediaType).toBe("application/vnd.oci.image.index.v1+json");
    // The index holds the busybox manifest, so this is the busybox image under one more name.
    expect(st.image.repo_digests).toContain(`${bed.registryHost}/podshim-test/multi@${info.target.digest}`);
    expect(info.imageSpec.rootfs.diff_ids.length).toBeGreaterThan(0);
    expect(info.chainID).toMatch(/^sha256:/);
  });

  it.each([
    ["userUid", { uid: { value: "1000" }, username: "" }],
    ["userName", { uid: null, username: "test" }],
    ["userGroup", { uid: null, username: "test" }],
  ] as const)("reports the user of %s", async (key, want) => {
    await pull(bed.images[key]);
    const st = await status(bed.images[key]);
    expect(st.image.uid).toEqual(want.uid);
    expect(st.image.username).toBe(want.username);
  });

  it("answers ImageStatus of an unknown image with no image, not an error", async () => {
    const st = await status(`${bed.registryHost}/podshim-test/never:pulled`);
    expect(st.image).toBeNull();
  });

  it("refuses a missing image with NOT_FOUND and a malformed reference with INVALID_ARGUMENT", async () => {
    const missing = await statusOf(pull(`${bed.registryHost}/podshim-test/busybox:no-such-tag`));
    expect(missing.code).toBe(Status.NOT_FOUND);
    expect(missing.details).toContain("no-such-tag");
    const missingRepo = await statusOf(pull(`${bed.registryHost}/podshim-test/no-such-repo:latest`));
    expect(missingRepo.code).toBe(Status.NOT_FOUND);
    for (const bad of ["Busybox:UPPER", "busybox:tag with space", "busybox@sha256:short", ""]) {
      const res = await statusOf(pull(bad));
      expect(res.code, bad).toBe(Status.INVALID_ARGUMENT);
    }
  });

  it("shares one download between concurrent pulls of the same image", async () => {
    const before = podshim.output().split("\n").filter((l) => l.includes('"msg":"pulled"') && l.includes("podshim-test/web")).length;
    const results = await Promise.all(Array.from({ length: 5 }, () => pull(bed.images.web)));
    expect(new Set(results.map((r) => r.image_ref)).size).toBe(1);
    const after = podshim.output().split("\n").filter((l) => l.includes('"msg":"pulled"') && l.includes("podshim-test/web")).length;
    expect(after - before).toBe(1);
  });

  it("lists images, and filters by reference", async () => {
    const all = (await podshim.cri.image("ListImages", {})).images;
    const ids = all.map((i: any) => i.id);
    expect(ids).toContain((await status(bed.images.busybox)).image.id);
    expect(ids).toContain((await status(bed.images.web)).image.id);
    const one = (await podshim.cri.image("ListImages", { filter: { image: { image: bed.images.web } } })).images;
    expect(one.map((i: any) => i.repo_tags[0])).toEqual([bed.images.web]);
  });

  it("reports ImageFsInfo for the snapshotter", async () => {
    const res = await podshim.cri.image("ImageFsInfo", {});
    const fs = res.image_filesystems[0];
    expect(fs.fs_id.mountpoint).toContain("overlayfs");
    expect(Number(fs.used_bytes.value)).toBeGreaterThan(500_000);
    expect(Number(fs.inodes_used.value)).toBeGreaterThan(10);
  });
});

describe("the pause image", () => {
  it("is pulled at start and pinned", async () => {
    const deadline = Date.now() + 20_000;
    let st = await status(bed.images.pause);
    while (!st.image && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      st = await status(bed.images.pause);
    }
    expect(st.image.pinned).toBe(true);
    expect(st.image.repo_tags).toEqual([bed.images.pause]);
  });

  it("is podshim's built-in one when the configured image cannot be pulled", async () => {
    const offline = await startPodshim({ containerdSocket: bed.containerdSocket, baseDir: base, extraArgs: ["--pause-image", "127.0.0.1:1/airgapped/pause:3.10"] });
    try {
      const deadline = Date.now() + 20_000;
      let st = await offline.cri.image("ImageStatus", { image: { image: "127.0.0.1:1/airgapped/pause:3.10" } });
      while (!st.image && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        st = await offline.cri.image("ImageStatus", { image: { image: "127.0.0.1:1/airgapped/pause:3.10" } });
      }
      expect(st.image.pinned).toBe(true);
      expect(offline.output()).toContain("loading podshim's built-in pause image");
    } finally {
      await offline.cleanup();
    }
  });
});

describe("registries", () => {
  it("pulls with basic auth credentials and refuses without them", async () => {
    const reg = await startRegistry({ dir: join(base, "auth-registry"), htpasswd: { user: "alice", password: "s3cret" } });
    extraRegistries.push(reg);
    const ref = await busyboxIn(reg, "private/busybox", { user: "alice", password: "s3cret" });
    const anonymous = await statusOf(pull(ref));
    expect(anonymous.code).toBe(Status.UNAUTHENTICATED);
    const wrong = await statusOf(pull(ref, { username: "alice", password: "wrong" }));
    expect(wrong.code).toBe(Status.UNAUTHENTICATED);
    expect((await pull(ref, { username: "alice", password: "s3cret" })).image_ref).toMatch(/^sha256:/);
    await podshim.cri.image("RemoveImage", { image: { image: ref } });
    const auth = Buffer.from("alice:s3cret").toString("base64");
    expect((await pull(ref, { auth })).image_ref).toMatch(/^sha256:/);
  });

  it("pulls a name of another registry through a mirror in hosts.toml", async () => {
    const hostDir = join(podshim.dir, "certs.d", "mirror.example.invalid");
    mkdirSync(hostDir, { recursive: true });
    writeFileSync(join(hostDir, "hosts.toml"), [
      'server = "https://mirror.example.invalid"',
      "",
      `[host."http://127.0.0.1:1"]`,
      '  capabilities = ["pull", "resolve"]',
      "",
      `[host."http://${bed.registryHost}"]`,
      '  capabilities = ["pull", "resolve"]',
      "",
    ].join("\n"));
    const res = await pull("mirror.example.invalid/podshim-test/busybox:latest");
    const st = await status("mirror.example.invalid/podshim-test/busybox:latest");
    expect(st.image.id).toBe(res.image_ref);
    expect(st.image.repo_tags).toContain("mirror.example.invalid/podshim-test/busybox:latest");
  });

  it("fails a pull whose blob has the wrong digest and leaves no content behind", async () => {
    const reg = await startRegistry({ dir: join(base, "bad-registry") });
    extraRegistries.push(reg);
    // A layer nobody else has, so nothing of it can already be in the content store.
    const img = await buildImage({ layers: [[{ type: "file", path: "/only-here", content: `unique ${Date.now()} ${Math.random()}` }]], config: { Cmd: ["sh"] } });
    await pushImage(reg.host, "broken/img", "latest", img);
    const layerHex = img.layers[0]!.digest.slice("sha256:".length);
    const blobFile = join(reg.dir, "storage/docker/registry/v2/blobs/sha256", layerHex.slice(0, 2), layerHex, "data");
    const size = statSync(blobFile).size;
    writeFileSync(blobFile, Buffer.alloc(size, 0x41));
    const before = await ctrContent();

    const res = await statusOf(pull(`${reg.host}/broken/img:latest`));
    expect(res.code).not.toBe(Status.OK);
    expect(res.details).toMatch(/digest/i);
    expect((await status(`${reg.host}/broken/img:latest`)).image).toBeNull();
    const after = await ctrContent();
    expect(after.filter((d) => !before.includes(d))).toEqual([]);
    expect(after).not.toContain(img.layers[0]!.digest);
  });

  it("fails a pull whose config is corrupt while its layers download, and leaves no content or snapshot behind", async () => {
    const reg = await startRegistry({ dir: join(base, "bad-config-registry") });
    extraRegistries.push(reg);
    // Layers nobody else has, large enough to be downloading when the config is refused.
    const img = await buildImage({ layers: [0, 1].map((i) => [{ type: "file" as const, path: `/blob${i}`, content: randomBytes(2 * 1024 * 1024) }]), config: { Cmd: ["sh"] } });
    await pushImage(reg.host, "broken/config", "latest", img);
    const configHex = img.config.digest.slice("sha256:".length);
    const configFile = join(reg.dir, "storage/docker/registry/v2/blobs/sha256", configHex.slice(0, 2), configHex, "data");
    writeFileSync(configFile, Buffer.alloc(statSync(configFile).size, 0x20));
    const before = { content: await ctrContent(), snapshots: await ctrSnapshots() };

    const res = await statusOf(pull(`${reg.host}/broken/config:latest`));
    expect(res.code).not.toBe(Status.OK);
    expect(res.details).toMatch(/digest/i);
    expect((await status(`${reg.host}/broken/config:latest`)).image).toBeNull();
    const after = { content: await ctrContent(), snapshots: await ctrSnapshots() };
    expect(after.content.filter((d) => !before.content.includes(d))).toEqual([]);
    expect(after.snapshots.filter((d) => !before.snapshots.includes(d))).toEqual([]);
    for (const layer of img.layers) expect(after.content).not.toContain(layer.digest);
  });
});

describe("RemoveImage", () => {
  it("untags one of several tags, and removes by tag, digest and ID", async () => {
    const reg = await startRegistry({ dir: join(base, "rm-registry") });
    extraRegistries.push(reg);
    // An image of its own: the other tests' images must not share its ID.
    const img = await buildImage({ layers: [[{ type: "file", path: "/rm-test", content: `rm ${Date.now()}` }]], config: { Cmd: ["sh"] } });
    await pushImage(reg.host, "rm/a", "latest", img);
    await pushImage(reg.host, "rm/a", "second", img);
    const a = `${reg.host}/rm/a:latest`;
    const b = `${reg.host}/rm/a:second`;
    const id = (await pull(a)).image_ref;
    expect((await pull(b)).image_ref).toBe(id);
    expect((await status(id)).image.repo_tags.sort()).toEqual([a, b].sort());

    await podshim.cri.image("RemoveImage", { image: { image: b } });
    expect((await status(id)).image.repo_tags).toEqual([a]);

    await podshim.cri.image("RemoveImage", { image: { image: a } });
    expect((await status(id)).image).toBeNull();

    const digestRef = (await status(a).then(() => pull(a)).then(() => status(a))).image.repo_digests[0];
    await podshim.cri.image("RemoveImage", { image: { image: digestRef } });
    expect((await status(a)).image).toBeNull();

    await pull(a);
    await podshim.cri.image("RemoveImage", { image: { image: id } });
    expect((await status(a)).image).toBeNull();

    // Removing what is not there succeeds.
    await podshim.cri.image("RemoveImage", { image: { image: id } });
  });
});

describe("a restarted podshim", () => {
  it("reports the images it had", async () => {
    const before = (await podshim.cri.image("ListImages", {})).images.map((i: any) => i.id).sort();
    await podshim.stop();
    podshim.cri.close();
    podshim = await startPodshim({ containerdSocket: bed.containerdSocket, baseDir: base, dir: podshim.dir, extraArgs: ["--pause-image", bed.images.pause] });
    const after = (await podshim.cri.image("ListImages", {})).images.map((i: any) => i.id).sort();
    expect(after).toEqual(before);
    expect(readdirSync(podshim.dir)).toContain("podshim.sock");
  });
});
