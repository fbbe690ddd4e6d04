#!/usr/bin/env node
// Writes dist/build-info.json with the git commit podshim is built from, which --version, CRI
// Version and podshim_build_info report. A build outside a git checkout (a tarball, a Docker
// context without .git) records "unknown" instead of failing.
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function git(args) {
  const res = spawnSync("git", ["-C", root, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  return res.status === 0 ? res.stdout.trim() : undefined;
}

let commit = process.env.PODSHIM_COMMIT || git(["rev-parse", "--short=12", "HEAD"]) || "unknown";
if (commit !== "unknown" && !process.env.PODSHIM_COMMIT && git(["status", "--porcelain", "--untracked-files=no"])) commit += "-dirty";

mkdirSync(join(root, "dist"), { recursive: true });
writeFileSync(join(root, "dist/build-info.json"), `${JSON.stringify({ commit })}\n`);
console.log(`build-info: commit ${commit}`);
