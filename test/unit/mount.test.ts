// isMountPoint: device numbers first, the mount table only when they cannot tell.
import { describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isMountPoint } from "../../src/util/mount.js";

describe("isMountPoint", () => {
  it("is true for a filesystem mounted on another (procfs on /proc)", async () => {
    expect(await isMountPoint("/proc")).toBe(true);
  });

  it("is false for a plain directory and for a path that is not there", async () => {
    const dir = mkdtempSync(join(tmpdir(), "podshim-mount-"));
    try {
      expect(await isMountPoint(dir)).toBe(false);
      expect(await isMountPoint(join(dir, "missing"))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("is true for the root, which the mount table lists though its parent is itself", async () => {
    expect(await isMountPoint("/")).toBe(true);
  });
});
