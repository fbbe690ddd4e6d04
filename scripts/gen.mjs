#!/usr/bin/env node
// Regenerates src/gen from proto/ with buf + ts-proto (npm run gen).
// With --check it generates into a temp dir and fails when src/gen differs: CI uses that to
// catch a proto edit whose generated code was not committed.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, cpSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const check = process.argv.includes("--check");
const out = mkdtempSync(join(tmpdir(), "podshim-gen-"));

const template = readFileSync(join(root, "buf.gen.yaml"), "utf8").replace("out: src/gen", `out: ${out}`);
const buf = join(root, "node_modules/.bin/buf");
const res = spawnSync(buf, ["generate", "proto", "--template", template], { cwd: root, stdio: "inherit" });
if (res.status !== 0) {
  rmSync(out, { recursive: true, force: true });
  process.exit(res.status ?? 1);
}

function files(dir) {
  const list = [];
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else list.push(relative(dir, p));
    }
  };
  if (existsSync(dir)) walk(dir);
  return list.sort();
}

const target = join(root, "src/gen");
if (check) {
  const a = files(out), b = files(target);
  const drift = [
    ...a.filter((f) => !b.includes(f)).map((f) => `missing in src/gen: ${f}`),
    ...b.filter((f) => !a.includes(f)).map((f) => `not generated from proto/: src/gen/${f}`),
    ...a.filter((f) => b.includes(f) && !readFileSync(join(out, f)).equals(readFileSync(join(target, f)))).map((f) => `differs: src/gen/${f}`),
  ];
  rmSync(out, { recursive: true, force: true });
  if (drift.length > 0) {
    console.error(`src/gen is out of date with proto/ (run npm run gen and commit):\n  ${drift.join("\n  ")}`);
    process.exit(1);
  }
  console.log(`src/gen matches proto/ (${a.length} files)`);
} else {
  rmSync(target, { recursive: true, force: true });
  cpSync(out, target, { recursive: true });
  rmSync(out, { recursive: true, force: true });
  console.log(`generated ${files(target).length} files into src/gen`);
}
