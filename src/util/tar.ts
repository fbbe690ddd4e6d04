// A minimal POSIX ustar writer for the few archives podshim builds itself (image layers, OCI
// layouts). Output is a pure function of the entries: owner 0:0, mtime 0, no user or group
// names, so the same input always gives the same bytes and therefore the same digests.

export type TarEntry =
  | { kind: "dir"; name: string; mode?: number }
  | { kind: "file"; name: string; mode?: number; content: Uint8Array }
  | { kind: "symlink"; name: string; target: string };

const BLOCK = 512;
const NAME_MAX = 100;
const PREFIX_MAX = 155;
const LINKNAME_MAX = 100;
// 11 octal digits is all the size field holds without GNU or pax extensions.
const SIZE_MAX = 0o77777777777;

const TypeFlag = { file: "0", symlink: "2", dir: "5" } as const;

const DEFAULT_MODE = { dir: 0o755, file: 0o644, symlink: 0o777 } as const;

/** Member names are relative: leading slashes go, so "/pause" and "pause" are the same
 * member; directories get the trailing slash tar readers use to tell them apart. */
function memberName(name: string, isDir: boolean): string {
  const rel = name.replace(/^\/+/, "").replace(/\/+$/, "");
  if (rel === "" || rel.includes("\0")) throw new Error(`tar: bad member name ${JSON.stringify(name)}`);
  // A ".." member would let the archive write outside wherever it is extracted.
  if (rel.split("/").includes("..")) throw new Error(`tar: member name ${JSON.stringify(name)} leaves the archive root`);
  return isDir ? `${rel}/` : rel;
}

/** Splits a name that does not fit the 100-byte name field at a slash into prefix and name,
 * keeping the name part as short as possible. */
function splitName(name: Buffer): { prefix: Buffer; name: Buffer } {
  if (name.length <= NAME_MAX) return { prefix: Buffer.alloc(0), name };
  // The slash at the split is implied, not stored. A directory's trailing slash cannot be the
  // split point: the name part would be empty.
  for (let i = Math.min(PREFIX_MAX, name.length - 2); i > 0; i--) {
    if (name[i] !== 0x2f) continue;
    if (name.length - i - 1 > NAME_MAX) break;
    return { prefix: name.subarray(0, i), name: name.subarray(i + 1) };
  }
  throw new Error(`tar: member name too long for ustar: ${name.toString("utf8")}`);
}

function writeOctal(header: Buffer, offset: number, width: number, value: number): void {
  // width - 1 digits then NUL: the form every reader accepts.
  const digits = value.toString(8).padStart(width - 1, "0");
  if (digits.length > width - 1) throw new Error(`tar: ${value} does not fit a ${width}-byte field`);
  header.write(`${digits}\0`, offset, width, "ascii");
}

function header(name: string, type: string, mode: number, size: number, linkname = ""): Buffer {
  const h = Buffer.alloc(BLOCK);
  const split = splitName(Buffer.from(name, "utf8"));
  split.name.copy(h, 0);
  writeOctal(h, 100, 8, mode & 0o7777);
  writeOctal(h, 108, 8, 0);
  writeOctal(h, 116, 8, 0);
  writeOctal(h, 124, 12, size);
  writeOctal(h, 136, 12, 0);
  h.write(type, 156, 1, "ascii");
  const link = Buffer.from(linkname, "utf8");
  if (link.length > LINKNAME_MAX) throw new Error(`tar: link target too long for ustar: ${linkname}`);
  link.copy(h, 157);
  h.write("ustar\0", 257, 6, "ascii");
  h.write("00", 263, 2, "ascii");
  writeOctal(h, 329, 8, 0);
  writeOctal(h, 337, 8, 0);
  split.prefix.copy(h, 345);
  // The checksum is computed with its own field read as eight spaces.
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "ascii");
  return h;
}

function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest);
}

/** The whole archive, in entry order, ended by the two zero blocks. */
export function writeTar(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    switch (e.kind) {
      case "dir":
        parts.push(header(memberName(e.name, true), TypeFlag.dir, e.mode ?? DEFAULT_MODE.dir, 0));
        break;
      case "file": {
        if (e.content.length > SIZE_MAX) throw new Error(`tar: ${e.name} is too large for ustar`);
        parts.push(header(memberName(e.name, false), TypeFlag.file, e.mode ?? DEFAULT_MODE.file, e.content.length));
        parts.push(Buffer.from(e.content.buffer, e.content.byteOffset, e.content.length), padding(e.content.length));
        break;
      }
      case "symlink":
        if (e.target === "" || e.target.includes("\0")) throw new Error(`tar: bad link target for ${e.name}`);
        parts.push(header(memberName(e.name, false), TypeFlag.symlink, DEFAULT_MODE.symlink, 0, e.target));
        break;
    }
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}
