#!/usr/bin/env node
// Compiles scripts/spawner/spawner.c into dist/spawner/podshim-spawner, the helper through which
// podshim starts external programs (src/util/exec.ts). Without gcc the build still succeeds:
// podshim then starts its programs through the slower, larger Node helper instead. A present gcc
// that fails on spawner.c is an error, so a broken spawner.c cannot slip through as "no gcc".
import { run } from "./lib/run.mjs";
import { mkdir, rename, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(root, "scripts/spawner/spawner.c");
const output = join(root, "dist/spawner/podshim-spawner");

await mkdir(dirname(output), { recursive: true });
// Built beside the target and renamed over it: a podshim running from this tree never sees a
// half-written binary, and a failed build leaves no stale one that would be taken for current.
const partial = `${output}.partial`;
const build = await run("gcc", ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-s", "-o", partial, source]);
if (build.missing) {
  await rm(output, { force: true });
  console.log("build-spawner: gcc not found; dist/spawner/podshim-spawner not built, podshim starts programs through its Node helper");
  process.exit(0);
}
if (build.stderr.trim() !== "") process.stderr.write(build.stderr);
if (build.code !== 0) {
  await rm(partial, { force: true });
  await rm(output, { force: true });
  console.error(`build-spawner: gcc failed on ${source} (exit ${build.code})`);
  process.exit(1);
}
await rename(partial, output);
console.log(`build-spawner: built ${output}`);
