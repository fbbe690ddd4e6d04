#!/usr/bin/env node
// Compiles scripts/pause/pause.c into dist/pause/pause, the program podshim's built-in pause
// image carries. Without gcc or a static libc the build still succeeds: podshim then simply has
// no built-in pause image and needs a pullable one. A present toolchain that fails on pause.c
// is an error, though, so a broken pause.c cannot slip through as "no toolchain".
import { run } from "./lib/run.mjs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(root, "scripts/pause/pause.c");
const output = join(root, "dist/pause/pause");

function skip(why) {
  console.log(`build-pause: ${why}; dist/pause/pause not built, the built-in pause image is unavailable`);
  process.exit(0);
}

// gcc without libc.a (no libc6-dev) compiles but cannot link -static: probe with an empty program.
const probeDir = await mkdtemp(join(tmpdir(), "podshim-build-pause-"));
let probe;
try {
  await writeFile(join(probeDir, "probe.c"), "int main(void) { return 0; }\n");
  probe = await run("gcc", ["-static", "-o", join(probeDir, "probe"), join(probeDir, "probe.c")]);
} finally {
  await rm(probeDir, { recursive: true, force: true });
}
if (probe.missing) skip("gcc not found");
if (probe.code !== 0) skip(`gcc cannot link statically (${probe.stderr.trim().split("\n")[0] || "no static libc"})`);

await mkdir(dirname(output), { recursive: true });
const build = await run("gcc", ["-static", "-Os", "-s", "-Wall", "-o", output, source]);
if (build.stderr.trim() !== "") process.stderr.write(build.stderr);
if (build.code !== 0) {
  console.error(`build-pause: gcc failed on ${source} (exit ${build.code})`);
  process.exit(1);
}
const check = await run(output, ["-v"]);
if (check.code !== 0 || check.stdout.trim() !== "podshim-pause") {
  console.error(`build-pause: ${output} -v printed ${JSON.stringify(check.stdout.trim())}, exit ${check.code}`);
  process.exit(1);
}
console.log(`build-pause: built ${output}`);
