// The ustar writer against GNU tar: what tar lists and extracts must be exactly what was written.
import { afterAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeTar } from "../../src/util/tar.js";
import type { TarEntry } from "../../src/util/tar.js";

const root = mkdtempSync(join(tmpdir(), "podshim-tar-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

// 100 bytes exactly fits the name field; the longer ones need the prefix field.
const dir100 = `${"d".repeat(99)}/`;
const longDir = `${"p".repeat(60)}/${"q".repeat(80)}`;
const longFile = `${longDir}/${"f".repeat(90)}`;
const binary = Buffer.from(Array.from({ length: 1500 }, (_, i) => (i * 7) % 256));

function entries(): TarEntry[] {
  return [
    { kind: "dir", name: "/etc" },
    { kind: "dir", name: "secret", mode: 0o700 },
    { kind: "file", name: "/etc/hello.txt", content: Buffer.from("hello\n") },
    { kind: "file", name: "secret/run.sh", mode: 0o4755, content: Buffer.from("#!/bin/sh\n") },
    { kind: "file", name: "empty", mode: 0o600, content: Buffer.alloc(0) },
    { kind: "file", name: "block", content: Buffer.alloc(512, 1) },
    { kind: "file", name: "bin", mode: 0o755, content: binary },
    { kind: "file", name: "ünï.txt", content: Buffer.from("utf8\n") },
    { kind: "symlink", name: "etc/link", target: "hello.txt" },
    { kind: "dir", name: dir100.slice(0, -1) },
    { kind: "dir", name: longDir.slice(0, 60) },
    { kind: "dir", name: longDir },
    { kind: "file", name: longFile, mode: 0o640, content: Buffer.from("deep\n") },
  ];
}

/** Runs tar with archive on its stdin (bytes, not a string: the archive is binary). */
function tar(args: string[], archive: Buffer): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("tar", args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    // tar may exit early on a bad archive; its exit code tells, not the EPIPE.
    child.stdin.on("error", () => {});
    child.stdin.end(archive);
  });
}

interface Listed {
  mode: string;
  owner: string;
  size: number;
  time: string;
  name: string;
}

async function tarList(archive: Buffer): Promise<Listed[]> {
  const res = await tar(["--numeric-owner", "--utc", "-tvf", "-"], archive);
  expect(res.stderr).toBe("");
  expect(res.code).toBe(0);
  return res.stdout
    .split("\n")
    .filter((l) => l !== "")
    .map((line) => {
      const m = /^(\S+) (\S+)\s+(\d+) (\S+ \S+) (.*)$/.exec(line);
      if (!m) throw new Error(`unexpected tar -tv line: ${line}`);
      return { mode: m[1]!, owner: m[2]!, size: Number(m[3]), time: m[4]!, name: m[5]! };
    });
}

describe("writeTar", () => {
  const archive = writeTar(entries());

  it("pads to 512-byte blocks and ends with two zero blocks", () => {
    expect(archive.length % 512).toBe(0);
    expect(archive.subarray(-1024).every((b) => b === 0)).toBe(true);
    // Exactly two: the last member's data block comes right before them.
    expect(archive.subarray(-1536, -1024).every((b) => b === 0)).toBe(false);
  });

  it("lists every member with owner 0/0, mtime 0 and its mode, without warnings", async () => {
    const listed = await tarList(archive);
    const want: Array<[string, string, number]> = [
      ["drwxr-xr-x", "etc/", 0],
      ["drwx------", "secret/", 0],
      ["-rw-r--r--", "etc/hello.txt", 6],
      ["-rwsr-xr-x", "secret/run.sh", 10],
      ["-rw-------", "empty", 0],
      ["-rw-r--r--", "block", 512],
      ["-rwxr-xr-x", "bin", 1500],
      ["-rw-r--r--", "ünï.txt", 5],
      ["lrwxrwxrwx", "etc/link -> hello.txt", 0],
      ["drwxr-xr-x", dir100, 0],
      ["drwxr-xr-x", `${longDir.slice(0, 60)}/`, 0],
      ["drwxr-xr-x", `${longDir}/`, 0],
      ["-rw-r-----", longFile, 5],
    ];
    expect(listed).toEqual(want.map(([mode, name, size]) => ({ mode, owner: "0/0", size, time: "1970-01-01 00:00", name })));
  });

  it("extracts to the same names, modes, contents and link targets", async () => {
    const dest = mkdtempSync(join(root, "x-"));
    const res = await tar(["-x", "-p", "-f", "-", "-C", dest], archive);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    const mode = (p: string): number => lstatSync(join(dest, p)).mode & 0o7777;
    expect(mode("etc")).toBe(0o755);
    expect(mode("secret")).toBe(0o700);
    expect(mode("etc/hello.txt")).toBe(0o644);
    expect(mode("secret/run.sh")).toBe(0o4755);
    expect(mode("empty")).toBe(0o600);
    expect(mode("bin")).toBe(0o755);
    expect(mode(longFile)).toBe(0o640);
    expect(readFileSync(join(dest, "etc/hello.txt"), "utf8")).toBe("hello\n");
    expect(readFileSync(join(dest, "secret/run.sh"), "utf8")).toBe("#!/bin/sh\n");
    expect(readFileSync(join(dest, "empty")).length).toBe(0);
    expect(readFileSync(join(dest, "block"))).toEqual(Buffer.alloc(512, 1));
    expect(readFileSync(join(dest, "bin"))).toEqual(binary);
    expect(readFileSync(join(dest, "ünï.txt"), "utf8")).toBe("utf8\n");
    expect(readFileSync(join(dest, longFile), "utf8")).toBe("deep\n");
    expect(lstatSync(join(dest, "etc/link")).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(dest, "etc/link"))).toBe("hello.txt");
    expect(lstatSync(join(dest, dir100)).isDirectory()).toBe(true);
    expect(lstatSync(join(dest, longDir)).isDirectory()).toBe(true);
  });

  it("gives byte-identical output for the same input", () => {
    expect(writeTar(entries()).equals(archive)).toBe(true);
  });

  it("writes ustar headers with valid checksums, long names split into prefix and name", () => {
    const field = (h: Buffer, from: number, len: number): string => {
      const raw = h.subarray(from, from + len);
      const nul = raw.indexOf(0);
      return raw.subarray(0, nul === -1 ? len : nul).toString("utf8");
    };
    const headers: Array<{ prefix: string; name: string }> = [];
    for (let off = 0; !archive.subarray(off, off + 512).every((b) => b === 0); ) {
      const h = archive.subarray(off, off + 512);
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
      expect(parseInt(field(h, 148, 8), 8)).toBe(sum);
      expect(h.subarray(257, 265).toString("latin1")).toBe("ustar\u000000");
      headers.push({ prefix: field(h, 345, 155), name: field(h, 0, 100) });
      const size = parseInt(field(h, 124, 12), 8);
      off += 512 + Math.ceil(size / 512) * 512;
    }
    expect(headers).toHaveLength(entries().length);
    expect(headers).toContainEqual({ prefix: "", name: dir100 });
    expect(headers).toContainEqual({ prefix: "p".repeat(60), name: `${"q".repeat(80)}/` });
    expect(headers).toContainEqual({ prefix: longDir, name: "f".repeat(90) });
  });

  it("refuses what ustar cannot hold or must not hold", () => {
    expect(() => writeTar([{ kind: "file", name: `${"a".repeat(101)}`, content: Buffer.alloc(0) }])).toThrow(/too long/);
    expect(() => writeTar([{ kind: "file", name: `${"a".repeat(156)}/b`, content: Buffer.alloc(0) }])).toThrow(/too long/);
    expect(() => writeTar([{ kind: "file", name: `a/${"b".repeat(101)}`, content: Buffer.alloc(0) }])).toThrow(/too long/);
    expect(() => writeTar([{ kind: "symlink", name: "l", target: "t".repeat(101) }])).toThrow(/too long/);
    expect(() => writeTar([{ kind: "file", name: "../escape", content: Buffer.alloc(0) }])).toThrow(/archive root/);
    expect(() => writeTar([{ kind: "dir", name: "/" }])).toThrow(/bad member name/);
  });

  it("writes only the end blocks for no entries", () => {
    expect(writeTar([])).toEqual(Buffer.alloc(1024));
  });
});
