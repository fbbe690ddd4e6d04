// The node-side reads a container create needs: files of an image's rootfs (for /etc/passwd and
// /etc/group), host devices, and host mount sources. The rootfs is read straight from the
// snapshot's layer directories instead of mounting it: a mount costs a mount namespace dance
// or a temporary mount point to clean up, and two small files do not need one.
import { constants } from "node:fs";
import type { BigIntStats } from "node:fs";
import { lstat, mkdir, open, readdir, readFile, readlink, realpath, stat } from "node:fs/promises";
import { join, posix } from "node:path";
import { InvalidArgumentError, UnimplementedError } from "../errors/errors.js";
import type { Device, Mount as CriMount } from "../gen/cri/runtime/v1/api.js";
import { MountPropagation } from "../gen/cri/runtime/v1/api.js";

/** The parts of a containerd mount (Snapshots.Prepare / Mounts) read here. */
export interface SnapshotMount {
  type: string;
  source: string;
  options: readonly string[];
}

/** Linux's own limit on symlinks followed while resolving one path. */
const MAX_SYMLINKS = 40;
/** passwd and group files of real images are a few KiB; anything near this is not one. */
export const DEFAULT_MAX_FILE_BYTES = 1024 * 1024;

export interface ReadRootfsOptions {
  maxBytes?: number;
  /**
   * Whether a directory of an upper layer is opaque (overlayfs's trusted.overlay.opaque=y, or
   * user.overlay.opaque with userxattr), hiding the same directory in the layers below. Node
   * cannot read extended attributes and spawning getfattr per directory costs more than a
   * container create may, so by default nothing is opaque. That is wrong only for an image
   * that deleted and recreated a directory on the path (say /etc) and then lacks the file in
   * the new one while an older layer has it: the older file is read. Pass a checker to be exact.
   */
  isOpaque?: (dir: string) => Promise<boolean>;
}

/** The layer directories of a snapshot, topmost first. */
export function snapshotLayers(mounts: readonly SnapshotMount[]): string[] {
  if (mounts.length !== 1) throw new UnimplementedError(`a rootfs of ${mounts.length} mounts cannot be read without mounting it`);
  const m = mounts[0]!;
  if (m.type === "bind" || m.type === "rbind") return [m.source];
  if (m.type === "overlay") {
    const opt = (key: string): string | undefined => m.options.find((o) => o.startsWith(`${key}=`))?.slice(key.length + 1);
    const upper = opt("upperdir");
    const lower = opt("lowerdir");
    const layers = [...(upper ? [upper] : []), ...(lower ? lower.split(":") : [])];
    if (layers.length === 0 || layers.some((l) => !l.startsWith("/"))) {
      throw new UnimplementedError(`an overlay rootfs without absolute upperdir/lowerdir options cannot be read: ${m.options.join(",")}`);
    }
    return layers;
  }
  throw new UnimplementedError(`a rootfs of mount type ${m.type} cannot be read without mounting it`);
}

async function lstatOrUndefined(path: string): Promise<BigIntStats | undefined> {
  try {
    return await lstat(path, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ENOTDIR") return undefined;
    throw err;
  }
}

const isWhiteout = (s: BigIntStats): boolean => s.isCharacterDevice() && s.rdev === 0n;

/** What the merged view shows at a path: the topmost layer's entry, unless a whiteout hides it. */
interface Found {
  stats: BigIntStats;
  /** Host path of the entry in the layer that provides it. */
  hostPath: string;
  /** For directories: every layer that contributes to it, topmost first. */
  dirLayers: string[];
}

/** One step of the lookup: `name` inside a directory present in `dirLayers` (host paths of that
 * directory in each contributing layer). */
async function lookupIn(dirLayers: readonly string[], name: string, opts: ReadRootfsOptions): Promise<Found | undefined> {
  let found: Found | undefined;
  for (const dir of dirLayers) {
    const hostPath = join(dir, name);
    const s = await lstatOrUndefined(hostPath);
    if (s === undefined) continue;
    if (isWhiteout(s)) break;
    if (found === undefined) {
      found = { stats: s, hostPath, dirLayers: s.isDirectory() ? [hostPath] : [] };
      if (!s.isDirectory()) break;
    } else {
      // A lower non-directory under an upper directory is hidden, and so is all below it.
      if (!s.isDirectory()) break;
      found.dirLayers.push(hostPath);
    }
    if (opts.isOpaque && (await opts.isOpaque(hostPath))) break;
  }
  return found;
}

/**
 * The entry at `path` of the rootfs view, following symlinks inside the view (an absolute
 * target starts again at the view's root, ".." never climbs above it), or undefined when the
 * view has no such entry. Never touches anything outside the layer directories.
 */
export async function resolveRootfsPath(layers: readonly string[], path: string, opts: ReadRootfsOptions = {}): Promise<Found | undefined> {
  let pending = path.split("/").filter((c) => c !== "" && c !== ".");
  // The directories walked so far below the root, each as the layers contributing to it.
  let dirs: Found[] = [];
  let links = 0;
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === "..") {
      dirs.pop();
      continue;
    }
    const found = await lookupIn(dirs.at(-1)?.dirLayers ?? layers, name, opts);
    if (found === undefined) return undefined;
    if (found.stats.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) throw new InvalidArgumentError(`too many levels of symbolic links resolving ${path} in the image`);
      const target = await readlink(found.hostPath, "utf8");
      if (target.startsWith("/")) dirs = [];
      pending = [...target.split("/").filter((c) => c !== "" && c !== "."), ...pending];
      continue;
    }
    if (pending.length === 0) return found;
    if (!found.stats.isDirectory()) return undefined;
    dirs.push(found);
  }
  const top = dirs.at(-1);
  if (top !== undefined) return top;
  const stats = await lstat(layers[0]!, { bigint: true });
  return { stats, hostPath: layers[0]!, dirLayers: [...layers] };
}

/**
 * The text of `path` in the rootfs a snapshot's mounts describe, without mounting it; undefined
 * when the image has no such file. Throws for a path that is not a regular file or is larger
 * than opts.maxBytes.
 */
export async function readRootfsFile(mounts: readonly SnapshotMount[], path: string, opts: ReadRootfsOptions = {}): Promise<string | undefined> {
  const found = await resolveRootfsPath(snapshotLayers(mounts), path, opts);
  if (found === undefined) return undefined;
  if (!found.stats.isFile()) throw new InvalidArgumentError(`${path} in the image is not a regular file`);
  const max = opts.maxBytes ?? DEFAULT_MAX_FILE_BYTES;
  // O_NOFOLLOW: the entry was checked to be a file; a swap for a link since then is refused.
  const fh = await open(found.hostPath, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const buf = Buffer.alloc(max + 1);
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    if (n > max) throw new InvalidArgumentError(`${path} in the image is larger than ${max} bytes`);
    return buf.subarray(0, n).toString("utf8");
  } finally {
    await fh.close();
  }
}

// ------------------------------------------------------------------------------------ devices

/** A host device node as the container gets it. */
export interface ResolvedDevice {
  /** Where the node appears in the container. */
  path: string;
  /** Where it is on the host. */
  hostPath: string;
  type: "c" | "b";
  major: number;
  minor: number;
  /** Permission bits of the host node. */
  fileMode: number;
  uid: number;
  gid: number;
  /** Device cgroup access: some of r, w, m. */
  permissions: string;
}

// Linux's dev_t split (the glibc gnu_dev_major/minor layout).
const major = (rdev: bigint): number => Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
const minor = (rdev: bigint): number => Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));

function device(s: BigIntStats, hostPath: string, path: string, permissions: string): ResolvedDevice | undefined {
  const type = s.isCharacterDevice() ? "c" : s.isBlockDevice() ? "b" : undefined;
  if (type === undefined) return undefined;
  return { path, hostPath, type, major: major(s.rdev), minor: minor(s.rdev), fileMode: Number(s.mode & 0o7777n), uid: Number(s.uid), gid: Number(s.gid), permissions };
}

/** Subtrees of /dev a walk leaves alone: each is a separate filesystem the runtime sets up
 * itself, or (.lxc, .lxd-mounts, .udev) a tool's private state, as containerd skips them. */
const SKIPPED_DIRS = new Set(["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"]);

/** Device nodes below a directory; links, fifos and other files are skipped, as is the
 * console, which runc provides for terminals itself. */
async function walkDevices(hostDir: string, containerDir: string, permissions: string): Promise<ResolvedDevice[]> {
  const out: ResolvedDevice[] = [];
  const entries = (await readdir(hostDir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const hostPath = join(hostDir, e.name);
    const path = posix.join(containerDir, e.name);
    if (e.isDirectory()) {
      if (!SKIPPED_DIRS.has(e.name)) out.push(...(await walkDevices(hostPath, path, permissions)));
      continue;
    }
    if (e.name === "console" || !(e.isCharacterDevice() || e.isBlockDevice())) continue;
    const s = await lstatOrUndefined(hostPath);
    const d = s && device(s, hostPath, path, permissions);
    if (d) out.push(d);
  }
  return out;
}

const PERMISSIONS = /^[rwm]{1,3}$/;

/**
 * The CRI devices of a container, checked and expanded: a host path may be a link (it is
 * followed) or a directory (every device node below it is added under container_path).
 * Empty permissions mean all of rwm.
 */
export async function resolveDevices(devices: readonly Device[]): Promise<ResolvedDevice[]> {
  const out: ResolvedDevice[] = [];
  for (const d of devices) {
    const permissions = d.permissions === "" ? "rwm" : d.permissions;
    if (!PERMISSIONS.test(permissions) || new Set(permissions).size !== permissions.length) {
      throw new InvalidArgumentError(`device ${d.hostPath}: permissions ${JSON.stringify(d.permissions)} must be made of r, w and m`);
    }
    if (!d.hostPath.startsWith("/")) throw new InvalidArgumentError(`device host path ${JSON.stringify(d.hostPath)} is not absolute`);
    const containerPath = d.containerPath === "" ? d.hostPath : d.containerPath;
    if (!containerPath.startsWith("/")) throw new InvalidArgumentError(`device container path ${JSON.stringify(d.containerPath)} is not absolute`);
    let real: string;
    try {
      real = await realpath(d.hostPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new InvalidArgumentError(`device ${d.hostPath} does not exist on the node`, { cause: err });
      throw err;
    }
    const s = await stat(real, { bigint: true });
    if (s.isDirectory()) {
      out.push(...(await walkDevices(real, posix.normalize(containerPath), permissions)));
      continue;
    }
    const dev = device(s, real, posix.normalize(containerPath), permissions);
    if (dev === undefined) throw new InvalidArgumentError(`${d.hostPath} is not a character or block device`);
    out.push(dev);
  }
  return out;
}

/** Every device node of the node, for privileged containers (containerd's "host devices"). */
export async function hostDevices(devDir = "/dev"): Promise<ResolvedDevice[]> {
  return walkDevices(devDir, "/dev", "rwm");
}

// ------------------------------------------------------------------------------ mount sources

/** Propagation of the mount holding `path`, from /proc/self/mountinfo text: the mount point
 * that is the longest prefix of `path` decides. */
export function mountPropagationOf(mountinfo: string, path: string): "shared" | "slave" | "private" {
  let best: { point: string; fields: string[] } | undefined;
  for (const line of mountinfo.split("\n")) {
    const fields = line.split(" ");
    const sep = fields.indexOf("-");
    if (fields.length < 7 || sep < 6) continue;
    const point = unescapeMountinfo(fields[4]!);
    const under = point === "/" || path === point || path.startsWith(`${point}/`);
    // Later lines are mounted later, so at the same point the last one is on top.
    if (under && (best === undefined || point.length >= best.point.length)) best = { point, fields: fields.slice(6, sep) };
  }
  if (best === undefined) return "private";
  if (best.fields.some((f) => f.startsWith("shared:"))) return "shared";
  if (best.fields.some((f) => f.startsWith("master:"))) return "slave";
  return "private";
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * Prepares the host side of CRI bind mounts as containerd does: a missing host path is created
 * as a directory, links are resolved, and a propagation the host mount cannot provide is
 * refused (Bidirectional needs a shared mount, HostToContainer a shared or slave one).
 * Returns host_path -> the real path to bind, for buildContainerSpec's mountSources.
 */
export async function prepareMountSources(mounts: readonly CriMount[], mountinfoPath = "/proc/self/mountinfo"): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  let mountinfo: string | undefined;
  for (const m of mounts) {
    if (m.image !== undefined && m.image.image !== "") continue;
    if (!m.hostPath.startsWith("/")) throw new InvalidArgumentError(`mount host path ${JSON.stringify(m.hostPath)} is not absolute`);
    await mkdir(m.hostPath, { recursive: true, mode: 0o755 }).catch((err: NodeJS.ErrnoException) => {
      // A file (or a link to one) is a valid source already.
      if (err.code !== "EEXIST" && err.code !== "ENOTDIR") throw err;
    });
    const real = await realpath(m.hostPath);
    out[m.hostPath] = real;
    const want = m.propagation;
    if (want === MountPropagation.PROPAGATION_BIDIRECTIONAL || want === MountPropagation.PROPAGATION_HOST_TO_CONTAINER) {
      mountinfo ??= await readFile(mountinfoPath, "utf8");
      const have = mountPropagationOf(mountinfo, real);
      if (want === MountPropagation.PROPAGATION_BIDIRECTIONAL && have !== "shared") {
        throw new InvalidArgumentError(`mount ${m.hostPath} asks for bidirectional propagation but its host mount is ${have}, not shared`);
      }
      if (want === MountPropagation.PROPAGATION_HOST_TO_CONTAINER && have === "private") {
        throw new InvalidArgumentError(`mount ${m.hostPath} asks for host-to-container propagation but its host mount is private, not shared or slave`);
      }
    }
  }
  return out;
}
