// removeTree/removeFile: what podshim removes on the call path instead of fs.rm.
import { describe, expect, it } from "vitest";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeFile, removeTree } from "../../src/util/remove.js";

function scratch(): string {
  return mkdtempSync(join(tmpdir(), "podshim-remove-"));
}

describe("removeTree", () => {
  it("removes a tree of files and directories, and is fine when it is gone", async () => {
    const dir = scratch();
    try {
      const tree = join(dir, "tree");
      mkdirSync(join(tree, "a", "b", "c"), { recursive: true });
      mkdirSync(join(tree, "empty"));
      for (const f of ["x", "a/y", "a/b/z", "a/b/c/w"]) writeFileSync(join(tree, f), f);
      await removeTree(tree);
      expect(existsSync(tree)).toBe(false);
      await removeTree(tree);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("removes a link to a directory without following it", async () => {
    const dir = scratch();
    try {
      const outside = join(dir, "outside");
      mkdirSync(outside);
      writeFileSync(join(outside, "keep"), "keep");
      const tree = join(dir, "tree");
      mkdirSync(tree);
      symlinkSync(outside, join(tree, "link"));
      await removeTree(tree);
      expect(existsSync(tree)).toBe(false);
      expect(readdirSync(outside)).toEqual(["keep"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("removes a plain file given as the tree", async () => {
    const dir = scratch();
    try {
      const file = join(dir, "f");
      writeFileSync(file, "x");
      await removeTree(file);
      expect(existsSync(file)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("removeFile", () => {
  it("removes a file, and is fine when it is gone; a directory is an error", async () => {
    const dir = scratch();
    try {
      const file = join(dir, "f");
      writeFileSync(file, "x");
      await removeFile(file);
      expect(existsSync(file)).toBe(false);
      await removeFile(file);
      await expect(removeFile(dir)).rejects.toMatchObject({ code: expect.stringMatching(/^(EISDIR|EPERM)$/) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
