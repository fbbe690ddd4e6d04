#!/usr/bin/env node
// Regenerates src/gen from proto/ (npm run gen): Debian's protoc (protobuf-compiler, with
// the well-known types from libprotobuf-dev) and ts-proto from the npm registry, both
// pinned, so generation is offline and gives the same bytes on every machine.
// With --check it generates into a temp dir and fails when src/gen differs: CI uses that to
// catch a proto edit whose generated code was not committed.
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const check = process.argv.includes("--check");

// One list of ts-proto options, documented in README (Development).
const TS_PROTO_OPTIONS = [
  "outputServices=grpc-js",
  "esModuleInterop=true",
  "env=node",
  "forceLong=bigint",      // int64 nanosecond timestamps do not fit a double
  "useDate=false",         // keep Timestamp's nanos
  "importSuffix=.js",      // ESM
  "enumsAsLiterals=true",  // `as const` objects, not TS enums
  "outputJsonMethods=true",
  "useOptionals=none",
  "exportCommonSymbols=false",
];

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

const protos = files(join(root, "proto")).filter((f) => f.endsWith(".proto"));
const out = mkdtempSync(join(tmpdir(), "podshim-gen-"));
const res = spawnSync("protoc", [
  "-I", join(root, "proto"),
  `--plugin=protoc-gen-ts_proto=${join(root, "node_modules/.bin/protoc-gen-ts_proto")}`,
  `--ts_proto_out=${out}`,
  `--ts_proto_opt=${TS_PROTO_OPTIONS.join(",")}`,
  ...protos,
], { cwd: root, stdio: ["ignore", "inherit", "pipe"] });
// protoc warns about an import upstream keeps but does not use; anything else is shown.
const stderr = (res.stderr?.toString() ?? "").split("\n").filter((l) => l && !/warning: Import .* is unused/.test(l));
if (stderr.length > 0) console.error(stderr.join("\n"));
if (res.error || res.status !== 0) {
  rmSync(out, { recursive: true, force: true });
  console.error(res.error?.code === "ENOENT" ? "protoc not found: apt-get install protobuf-compiler libprotobuf-dev" : "protoc failed");
  process.exit(1);
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
