// The built-in pause image from a freshly compiled pause program: digests and sizes agree with
// the bytes, the layer holds exactly /pause, the config runs it, and the output is reproducible.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestContext } from "vitest";
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { builtinPauseImage, findPauseBinary } from "../../src/image/builtin-pause.js";
import type { BuiltinImage } from "../../src/image/builtin-pause.js";
import { hostPlatform, MediaType } from "../../src/distribution/descriptor.js";
import { runOk, which } from "../bed/proc.js";

const PAUSE_SOURCE = resolve(dirname(fileURLToPath(import.meta.url)), "../../scripts/pause/pause.c");
const gcc = await which("gcc");
const root = mkdtempSync(join(tmpdir(), "podshim-builtin-pause-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const sha256 = (b: Uint8Array): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

let pauseBinary = "";
let dynamicPause = "";
let image: BuiltinImage;

beforeAll(async () => {
  if (!gcc) return;
  pauseBinary = join(root, "pause");
  await runOk(gcc, ["-static", "-Os", "-s", "-Wall", "-o", pauseBinary, PAUSE_SOURCE], { timeoutMs: 120_000 });
  dynamicPause = join(root, "pause-dynamic");
  await runOk(gcc, ["-Os", "-o", dynamicPause, PAUSE_SOURCE], { timeoutMs: 120_000 });
  image = await builtinPauseImage(pauseBinary, hostPlatform());
}, 250_000);

function needGcc(ctx: TestContext): void {
  if (!gcc) ctx.skip("gcc not found: cannot compile scripts/pause/pause.c for the built-in pause image");
}

interface Config {
  architecture: string;
  os: string;
  variant?: string;
  config: { Entrypoint?: string[]; Cmd?: string[]; User?: string; WorkingDir?: string };
  rootfs: { type: string; diff_ids: string[] };
}

describe("builtinPauseImage", () => {
  it("describes every blob by its own sha256 and size", (ctx) => {
    needGcc(ctx);
    for (const b of [image.manifest, image.config, ...image.layers]) {
      expect(b.descriptor.digest).toBe(sha256(b.bytes));
      expect(b.descriptor.size).toBe(b.bytes.length);
    }
    expect(image.manifest.descriptor.mediaType).toBe(MediaType.OciManifest);
    expect(image.config.descriptor.mediaType).toBe(MediaType.OciConfig);
    expect(image.layers).toHaveLength(1);
    expect(image.layers[0]!.descriptor.mediaType).toBe(MediaType.OciLayerGzip);
  });

  it("links manifest, config and layer together", (ctx) => {
    needGcc(ctx);
    const manifest = JSON.parse(image.manifest.bytes.toString("utf8")) as Record<string, unknown>;
    expect(manifest).toEqual({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: image.config.descriptor,
      layers: [image.layers[0]!.descriptor],
      annotations: { "org.opencontainers.image.title": "podshim-pause" },
    });
    const config = JSON.parse(image.config.bytes.toString("utf8")) as Config;
    const layer = image.layers[0]!;
    expect(layer.diffId).toBe(sha256(gunzipSync(layer.bytes)));
    expect(config.rootfs).toEqual({ type: "layers", diff_ids: [layer.diffId] });
  });

  it("writes a gzip header without mtime or file name", (ctx) => {
    needGcc(ctx);
    const gz = image.layers[0]!.bytes;
    expect([gz[0], gz[1], gz[2]]).toEqual([0x1f, 0x8b, 8]);
    expect(gz[3]).toBe(0); // FLG: no FNAME, FCOMMENT, FEXTRA
    expect(gz.readUInt32LE(4)).toBe(0); // MTIME
  });

  it("runs /pause as root in / on the host platform", (ctx) => {
    needGcc(ctx);
    const config = JSON.parse(image.config.bytes.toString("utf8")) as Config;
    const host = hostPlatform();
    expect(config.architecture).toBe(host.architecture);
    expect(config.os).toBe(host.os);
    expect(config.variant).toBe(host.variant);
    expect(config.config).toEqual({ Entrypoint: ["/pause"], WorkingDir: "/" });
    expect(image.manifest.descriptor.platform).toEqual(host);
  });

  it("has a layer that extracts to a single executable pause", async (ctx) => {
    needGcc(ctx);
    const dir = mkdtempSync(join(root, "layer-"));
    const gz = join(dir, "layer.tar.gz");
    writeFileSync(gz, image.layers[0]!.bytes);
    const listed = await runOk("tar", ["--numeric-owner", "-tvzf", gz], { timeoutMs: 10_000 });
    expect(listed.stdout.trim()).toMatch(/^-rwxr-xr-x 0\/0\s+\d+ 1970-01-01 00:00 pause$/);
    const dest = join(dir, "x");
    mkdirSync(dest);
    await runOk("tar", ["-xpzf", gz, "-C", dest], { timeoutMs: 10_000 });
    expect(readdirSync(dest)).toEqual(["pause"]);
    const st = statSync(join(dest, "pause"));
    expect(st.isFile()).toBe(true);
    expect(st.mode & 0o7777).toBe(0o755);
    expect(st.size).toBe(statSync(pauseBinary).size);
    const v = await runOk(join(dest, "pause"), ["-v"], { timeoutMs: 10_000 });
    expect(v.stdout).toBe("podshim-pause\n");
  });

  it("gives identical digests when built again", async (ctx) => {
    needGcc(ctx);
    const again = await builtinPauseImage(pauseBinary, hostPlatform());
    expect(again.manifest.descriptor.digest).toBe(image.manifest.descriptor.digest);
    expect(again.config.descriptor.digest).toBe(image.config.descriptor.digest);
    expect(again.layers.map((l) => [l.descriptor.digest, l.diffId])).toEqual(
      image.layers.map((l) => [l.descriptor.digest, l.diffId]),
    );
  });

  it("records a platform variant in the config and the manifest descriptor", async (ctx) => {
    needGcc(ctx);
    const arm = await builtinPauseImage(pauseBinary, { os: "linux", architecture: "arm64", variant: "v8" });
    const config = JSON.parse(arm.config.bytes.toString("utf8")) as Config;
    expect(Object.keys(config)).toEqual(["architecture", "os", "variant", "config", "rootfs"]);
    expect(config).toMatchObject({ architecture: "arm64", os: "linux", variant: "v8" });
    expect(arm.manifest.descriptor.platform).toEqual({ architecture: "arm64", os: "linux", variant: "v8" });
    // Same file, so the same layer; only config and manifest differ.
    expect(arm.layers[0]!.diffId).toBe(image.layers[0]!.diffId);
    expect(arm.manifest.descriptor.digest).not.toBe(image.manifest.descriptor.digest);
  });

  it("refuses a binary that cannot run in an image without libc", async (ctx) => {
    needGcc(ctx);
    await expect(builtinPauseImage(dynamicPause, hostPlatform())).rejects.toThrow(/dynamically linked/);
    const text = join(root, "not-elf");
    writeFileSync(text, "#!/bin/sh\nexit 0\n");
    await expect(builtinPauseImage(text, hostPlatform())).rejects.toThrow(/not an ELF file/);
  });
});

describe("findPauseBinary", () => {
  const saved = process.env.PODSHIM_PAUSE_BINARY;
  afterAll(() => {
    if (saved === undefined) delete process.env.PODSHIM_PAUSE_BINARY;
    else process.env.PODSHIM_PAUSE_BINARY = saved;
  });

  it("prefers an executable $PODSHIM_PAUSE_BINARY", () => {
    const bin = join(root, "env-pause");
    writeFileSync(bin, "");
    chmodSync(bin, 0o755);
    process.env.PODSHIM_PAUSE_BINARY = bin;
    expect(findPauseBinary()).toBe(bin);
  });

  it("passes over a $PODSHIM_PAUSE_BINARY that is not an executable file", () => {
    const plain = join(root, "plain-pause");
    writeFileSync(plain, "");
    chmodSync(plain, 0o644);
    for (const p of [plain, root, join(root, "absent")]) {
      process.env.PODSHIM_PAUSE_BINARY = p;
      expect(findPauseBinary()).not.toBe(p);
    }
  });
});
