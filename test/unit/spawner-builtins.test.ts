// The native spawner's built-in programs (@netns-add, @netns-delete, @mount-tmpfs,
// @umount-lazy) against the programs they stand in for (ip, mount, umount), which the Node
// spawner runs: both must leave the node the same. Needs root (namespaces and mounts).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bringUpLoopback, createNetns, deleteNetns, netnsExists, netnsNameFor } from "../../src/network/netns.js";
import { isMountPoint, mountTmpfs, unmountAndRemove } from "../../src/util/mount.js";
import { runProgram, spawnerForTests, type SpawnerKind } from "../../src/util/exec.js";

const asRoot = process.getuid?.() === 0;
const nativeBuilt = existsSync(spawnerForTests.nativePath);
const NSFS_MAGIC = 0x6e736673;

/** The mount options the kernel reports for a mount point (/proc/self/mountinfo). */
function mountOptions(path: string): { flags: string[]; super: string[] } | undefined {
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const f = line.split(" ");
    if (f[4] !== path) continue;
    const dash = f.indexOf("-");
    return { flags: f[5]!.split(","), super: f[dash + 3]!.split(",") };
  }
  return undefined;
}

describe.each<{ kind: SpawnerKind }>([{ kind: "native" }, { kind: "node" }])("built-in programs ($kind spawner)", ({ kind }) => {
  const skip = !asRoot || (kind === "native" && !nativeBuilt);
  let dir: string;
  beforeAll(() => {
    spawnerForTests.use(kind);
    dir = mkdtempSync(join(tmpdir(), "podshim-builtins-"));
  });
  afterAll(() => {
    spawnerForTests.use(undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(skip)("pins a network namespace under /run/netns, refuses the same name twice, and removes it", async () => {
    const name = netnsNameFor(randomBytes(32).toString("hex"));
    const path = await createNetns(name);
    try {
      expect(path).toBe(`/run/netns/${name}`);
      expect(statfsSync(path).type).toBe(NSFS_MAGIC);
      expect(await netnsExists(path)).toBe(true);
      // A namespace of its own: only a loopback device, and it is down.
      const links = await runProgram("ip", ["-n", name, "-o", "link"], { timeoutMs: 10_000, what: "ip link" });
      expect(links.stdout.trim().split("\n")).toHaveLength(1);
      expect(links.stdout).toContain("lo:");
      // The directory is a shared mount point, so pins reach mount namespaces that bind it.
      expect(mountOptions("/run/netns")).toBeDefined();
      expect(readFileSync("/proc/self/mountinfo", "utf8").split("\n").find((l) => l.split(" ")[4] === "/run/netns")).toMatch(/ shared:\d+/);
      await expect(createNetns(name)).rejects.toThrow(/already exists/);
      // lo up: the native spawner does it; without it the caller runs the CNI loopback plugin.
      expect(await bringUpLoopback(path)).toBe(kind === "native");
      if (kind === "native") {
        const lo = await runProgram("ip", ["-n", name, "-o", "link", "show", "lo"], { timeoutMs: 10_000, what: "ip link" });
        expect(lo.stdout).toMatch(/<LOOPBACK,UP,LOWER_UP>/);
      }
    } finally {
      await deleteNetns(path);
    }
    expect(existsSync(path)).toBe(false);
    expect(await netnsExists(path)).toBe(false);
    await deleteNetns(path); // gone already is fine
  });

  it.skipIf(skip)("mounts a tmpfs with its flags and data options, and lazily unmounts and removes it", async () => {
    const path = join(dir, `shm-${kind}`);
    await mountTmpfs(path, ["nosuid", "nodev", "noexec", "mode=755", "size=65536k"]);
    try {
      expect(await isMountPoint(path)).toBe(true);
      const opts = mountOptions(path)!;
      expect(opts.flags).toEqual(expect.arrayContaining(["nosuid", "nodev", "noexec"]));
      expect(opts.super).toEqual(expect.arrayContaining(["size=65536k", "mode=755"]));
    } finally {
      await unmountAndRemove(path);
    }
    expect(existsSync(path)).toBe(false);
    expect(mountOptions(path)).toBeUndefined();
  });

  it.skipIf(skip)("unmounts a path that is not a mount point with a failure the caller can read, and leaves it", async () => {
    const path = join(dir, `plain-${kind}`);
    mkdirSync(path);
    const res = await runProgram("umount", ["-l", path], { timeoutMs: 10_000, what: "umount", builtin: { cmd: "@umount-lazy", args: [path] } });
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/not mounted|Invalid argument/);
    expect(existsSync(path)).toBe(true);
  });
});

describe("built-in programs (native spawner)", () => {
  beforeAll(() => spawnerForTests.use("native"));
  afterAll(() => spawnerForTests.use(undefined));

  it.skipIf(!nativeBuilt)("answers an unknown built-in or a wrong argument count with exit 2 and why", async () => {
    for (const [cmd, args] of [["@no-such-thing", []], ["@netns-add", []], ["@mount-tmpfs", ["/x"]]] as const) {
      const res = await runProgram(cmd, args, { timeoutMs: 10_000, what: cmd });
      expect(res.code).toBe(2);
      expect(res.stderr).toContain("no such built-in program, or wrong arguments");
    }
  });

  it.skipIf(!nativeBuilt || !asRoot)("refuses to pin over an existing file and leaves that file alone", async () => {
    const dir = mkdtempSync(join(tmpdir(), "podshim-builtins-"));
    try {
      const path = join(dir, "taken");
      const first = await runProgram("@netns-add", [path], { timeoutMs: 10_000, what: "@netns-add" });
      expect(first.code).toBe(0);
      const second = await runProgram("@netns-add", [path], { timeoutMs: 10_000, what: "@netns-add" });
      expect(second.code).toBe(1);
      expect(second.stderr).toContain(`@netns-add ${path}: create: File exists`);
      expect(statfsSync(path).type).toBe(NSFS_MAGIC);
      expect((await runProgram("@netns-delete", [path], { timeoutMs: 10_000, what: "@netns-delete" })).code).toBe(0);
      expect(existsSync(path)).toBe(false);
    } finally {
      // netns-add made the directory a (shared) bind mount of itself.
      await runProgram("umount", ["-l", dir], { timeoutMs: 10_000, what: "umount" });
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
