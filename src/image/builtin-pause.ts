// podshim's own pause image, built in memory from the static pause program that ships with it,
// for nodes that cannot pull the configured pause image (air-gapped, registry down). Everything
// is deterministic, so one binary always yields the same layer, config and manifest digests.
import { createHash } from "node:crypto";
import { accessSync, constants as fsConstants, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { FailedPreconditionError } from "../errors/errors.js";
import { writeTar } from "../util/tar.js";
import { MediaType } from "../distribution/descriptor.js";
import type { Descriptor, Platform } from "../distribution/descriptor.js";

export interface BuiltinBlob {
  descriptor: Descriptor;
  bytes: Buffer;
}

export interface BuiltinImage {
  manifest: BuiltinBlob;
  config: BuiltinBlob;
  /** diffId: sha256 of the uncompressed layer tar, as the config's rootfs lists it. */
  layers: Array<BuiltinBlob & { diffId: string }>;
}

export const BUILTIN_PAUSE_TITLE = "podshim-pause";

const SYSTEM_PAUSE_BINARY = "/usr/lib/podshim/pause";

function sha256(data: Uint8Array): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** Key order is fixed here rather than left to callers: the serialized JSON is hashed. */
function platformJson(p: Platform): Platform {
  return { architecture: p.architecture, os: p.os, ...(p.variant ? { variant: p.variant } : {}) };
}

function blob(mediaType: string, bytes: Buffer): BuiltinBlob {
  return { descriptor: { mediaType, digest: sha256(bytes), size: bytes.length }, bytes };
}

/** The image has no libc and no loader, so only a static ELF executable can run in it; a
 * dynamic one would fail at container start with a bare ENOENT that names no culprit. */
function checkStaticElf(path: string, bin: Buffer): void {
  const fail = (why: string): never => {
    throw new FailedPreconditionError(`pause binary ${path} cannot be used for the built-in pause image: ${why}`);
  };
  if (bin.length < 64 || bin.readUInt32BE(0) !== 0x7f454c46) fail("not an ELF file");
  const is64 = bin[4] === 2;
  const le = bin[5] === 1;
  const u16 = (o: number): number => (le ? bin.readUInt16LE(o) : bin.readUInt16BE(o));
  const u32 = (o: number): number => (le ? bin.readUInt32LE(o) : bin.readUInt32BE(o));
  const u64 = (o: number): number => Number(le ? bin.readBigUInt64LE(o) : bin.readBigUInt64BE(o));
  const phoff = is64 ? u64(0x20) : u32(0x1c);
  const phentsize = u16(is64 ? 0x36 : 0x2a);
  const phnum = u16(is64 ? 0x38 : 0x2c);
  if (phentsize === 0 || phoff + phentsize * phnum > bin.length) fail("truncated ELF program headers");
  const PT_INTERP = 3;
  for (let i = 0; i < phnum; i++) {
    if (u32(phoff + i * phentsize) === PT_INTERP) fail("dynamically linked (build it with gcc -static)");
  }
}

/**
 * The pause image for platform, with binaryPath as its only file, /pause. The caller imports
 * the blobs into containerd's content store and names the manifest.
 */
export async function builtinPauseImage(binaryPath: string, platform: Platform): Promise<BuiltinImage> {
  const binary = await readFile(binaryPath);
  checkStaticElf(binaryPath, binary);

  const tar = writeTar([{ kind: "file", name: "pause", mode: 0o755, content: binary }]);
  const diffId = sha256(tar);
  // Node's gzip header carries mtime 0 and no file name, so the layer is reproducible with one
  // Node build; a different zlib build may compress differently, which changes the layer
  // digest (and so the manifest's) but never the diff_id.
  const layer = { ...blob(MediaType.OciLayerGzip, gzipSync(tar, { level: 9 })), diffId };

  // No User, so root: the pause program has to be able to run as PID 1 in any pod; a sandbox
  // that wants another user says so in its own security context.
  const config = blob(
    MediaType.OciConfig,
    Buffer.from(
      JSON.stringify({
        ...platformJson(platform),
        config: { Entrypoint: ["/pause"], WorkingDir: "/" },
        rootfs: { type: "layers", diff_ids: [diffId] },
      }),
    ),
  );

  const manifestBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: config.descriptor,
      layers: [layer.descriptor],
      annotations: { "org.opencontainers.image.title": BUILTIN_PAUSE_TITLE },
    }),
  );
  const manifest = blob(MediaType.OciManifest, manifestBytes);
  // On the descriptor only, not in the hashed bytes: an index that lists this manifest needs it.
  manifest.descriptor.platform = platformJson(platform);

  return { manifest, config, layers: [layer] };
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where the pause program is: $PODSHIM_PAUSE_BINARY, then the one `npm run build` puts in
 * dist/pause, then the system-wide install path. undefined when none is an executable file.
 */
export function findPauseBinary(): string | undefined {
  // Two levels up from this module is the package root both from dist/image/*.js and, under
  // vitest, from src/image/*.ts; the build always writes to dist/pause.
  const packageRoot = fileURLToPath(new URL("../../", import.meta.url));
  const candidates = [process.env.PODSHIM_PAUSE_BINARY, join(packageRoot, "dist/pause/pause"), SYSTEM_PAUSE_BINARY];
  return candidates.find((p): p is string => p !== undefined && p !== "" && isExecutableFile(p));
}
