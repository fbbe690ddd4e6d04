import { mkdir, mkdtemp, rm, rmdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CachedPseudoFileReader, keptFilesBudget, parseOpenFilesLimit, readPseudoFile, readPseudoFiles, roomFor } from "../../src/stats/read.js";

describe("readPseudoFile", () => {
  it("reads procfs and gives undefined for what is not there", async () => {
    expect(await readPseudoFile("/proc/self/cgroup")).toMatch(/^\d+:/);
    expect(await readPseudoFile("/proc/self/no-such-file")).toBeUndefined();
  });

  it("readPseudoFiles leaves out the unreadable keys", async () => {
    expect(Object.keys(await readPseudoFiles({ a: "/proc/self/cgroup", b: "/nonexistent" }))).toEqual(["a"]);
  });
});

describe("open files budget", () => {
  it("parses the soft limit", () => {
    const limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 524288               files     \n";
    expect(parseOpenFilesLimit(limits)).toBe(1024);
    expect(parseOpenFilesLimit("Max open files            unlimited            unlimited            files\n")).toBeUndefined();
    expect(parseOpenFilesLimit("")).toBeUndefined();
  });

  it("keeps a quarter of the soft limit, at most 4096", () => {
    expect(keptFilesBudget(1024)).toBe(256);
    expect(keptFilesBudget(1_048_576)).toBe(4096);
    expect(keptFilesBudget(undefined)).toBe(4096);
  });
});

describe("CachedPseudoFileReader", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "podshim-stats-read-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps one descriptor per file and reads fresh text through it", async () => {
    const r = new CachedPseudoFileReader();
    const f = join(dir, "a");
    await writeFile(f, "1\n");
    const [x, y] = await Promise.all([r.read(f), r.read(f)]);
    expect([x, y]).toEqual(["1\n", "1\n"]);
    expect(r.openCount).toBe(1);
    await writeFile(f, "22\n");
    expect(await r.read(f)).toBe("22\n");
    expect(r.openCount).toBe(1);
    r.closeAll();
    expect(r.openCount).toBe(0);
  });

  it("reads a file bigger than its first buffer whole, from one offset", async () => {
    const r = new CachedPseudoFileReader();
    const f = join(dir, "big");
    const text = "x".repeat(40_000);
    await writeFile(f, text);
    expect(await r.read(f)).toBe(text);
    expect(await r.read(f)).toBe(text);
    r.closeAll();
  });

  it("sizes a kept file's reads by its last text, and still reads it whole when it grows", async () => {
    expect(roomFor(2)).toBe(256);
    expect(roomFor(1500)).toBe(2368);
    expect(roomFor(1500)).toBeLessThan(Buffer.poolSize / 2);
    const r = new CachedPseudoFileReader();
    const f = join(dir, "grows");
    await writeFile(f, "7\n");
    expect(await r.read(f)).toBe("7\n");
    const longer = "y".repeat(5000);
    await writeFile(f, longer);
    expect(await r.read(f)).toBe(longer);
    await writeFile(f, "8\n");
    expect(await r.read(f)).toBe("8\n");
    r.closeAll();
  });

  it("forgets, closes idle files, and reads one-shot beyond its budget", async () => {
    let now = 0;
    const r = new CachedPseudoFileReader({ maxOpen: 2, idleMs: 100, nowMs: () => now });
    for (const n of ["p", "q", "s"]) await writeFile(join(dir, n), n);
    expect(await r.read(join(dir, "p"))).toBe("p");
    expect(await r.read(join(dir, "q"))).toBe("q");
    expect(await r.read(join(dir, "s"))).toBe("s");
    expect(r.openCount).toBe(2);
    r.forget([join(dir, "p")]);
    expect(r.openCount).toBe(1);
    now = 50;
    await r.read(join(dir, "s"));
    now = 120;
    r.closeIdle();
    expect(r.openCount).toBe(1);
    r.setMaxOpen(0);
    expect(r.openCount).toBe(0);
    expect(await r.read(join(dir, "nope"))).toBeUndefined();
  });

  // On cgroupfs a kept descriptor of a removed cgroup fails its reads; the reader then drops
  // it and reports the file as gone. Needs root and a v1 cpuacct hierarchy, as on this host.
  it("a removed cgroup's kept file reads as gone and is closed", async (t) => {
    const cg = `/sys/fs/cgroup/cpuacct/podshim-stats-test-${process.pid}`;
    try {
      await mkdir(cg);
    } catch {
      t.skip();
      return;
    }
    const r = new CachedPseudoFileReader();
    try {
      expect(await r.read(`${cg}/cpuacct.usage`)).toBe("0\n");
      expect(r.openCount).toBe(1);
      await rmdir(cg);
      expect(await r.read(`${cg}/cpuacct.usage`)).toBeUndefined();
      expect(r.openCount).toBe(0);
    } finally {
      r.closeAll();
      await rmdir(cg).catch(() => {});
    }
  });
});
