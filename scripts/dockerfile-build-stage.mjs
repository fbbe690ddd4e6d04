#!/usr/bin/env node
// Runs the Dockerfile without Docker, as far as that can be done offline: the build stage's
// COPY and RUN steps in a scratch directory with this machine's node and npm (the base image
// is the same Node 20 on Debian bookworm), then the final stage's COPY steps into a rootfs
// directory, and the entrypoint from there. The final stage's RUN (apt-get of the base image's
// packages) needs the base image and a mirror, so it is printed, not run.
// Usage: node scripts/dockerfile-build-stage.mjs [OUT_DIR]   (default: a temp dir, kept)
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const out = resolve(process.argv[2] ?? mkdtempSync(join(tmpdir(), "podshim-image-")));

/** Dockerfile instructions with continuation lines joined and comments dropped. */
function instructions(text) {
  const joined = text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  return joined.map((l) => {
    const m = /^(\S+)\s+(.*)$/.exec(l);
    return { op: m[1].toUpperCase(), args: m[2].trim() };
  });
}

const steps = instructions(readFileSync(join(root, "Dockerfile"), "utf8"));
const stages = [];
for (const s of steps) {
  if (s.op === "FROM") stages.push({ from: s.args, steps: [] });
  else stages.at(-1).steps.push(s);
}
const say = (m) => console.log(`dockerfile: ${m}`);

function copy(srcRoot, args, destRoot, workdir) {
  const parts = args.split(/\s+/).filter((p) => !p.startsWith("--"));
  const dest = parts.pop();
  const target = dest.startsWith("/") ? join(destRoot, dest) : join(destRoot, workdir, dest);
  for (const src of parts) {
    const from = join(srcRoot, src);
    const isDir = statSync(from).isDirectory();
    const to = dest.endsWith("/") || parts.length > 1 || (!isDir && dest === "./") ? join(target, basename(src)) : target;
    mkdirSync(isDir ? to : join(to, ".."), { recursive: true });
    cpSync(from, to, { recursive: true });
  }
}

// The build stage: its filesystem is out/build, WORKDIR relative to it.
const [build, final] = stages;
const buildRoot = join(out, "build");
let workdir = "/";
const env = { ...process.env };
say(`stage 1 (${build.from}) in ${buildRoot}`);
for (const s of build.steps) {
  if (s.op === "WORKDIR") workdir = s.args;
  else if (s.op === "ARG") {
    const [k, v = ""] = s.args.split("=");
    env[k] ??= v;
  } else if (s.op === "COPY") {
    copy(root, s.args, buildRoot, workdir);
    say(`COPY ${s.args}`);
  } else if (s.op === "RUN") {
    say(`RUN ${s.args}`);
    mkdirSync(join(buildRoot, workdir), { recursive: true });
    // A Dockerfile's RUN is a shell command line by definition (/bin/sh -c).
    const res = spawnSync("/bin/sh", ["-c", s.args], { cwd: join(buildRoot, workdir), env, stdio: "inherit" });
    if (res.status !== 0) {
      say(`RUN failed with ${res.status}`);
      process.exit(1);
    }
  } else say(`(not applied) ${s.op} ${s.args}`);
}

const rootfs = join(out, "rootfs");
workdir = "/";
let entrypoint = [];
say(`stage 2 (${final.from}) into ${rootfs}`);
for (const s of final.steps) {
  if (s.op === "WORKDIR") workdir = s.args;
  else if (s.op === "COPY") {
    const fromStage = /--from=(\S+)/.exec(s.args)?.[1];
    copy(fromStage ? buildRoot : root, s.args, rootfs, workdir);
    say(`COPY ${s.args}`);
  } else if (s.op === "ENTRYPOINT") {
    entrypoint = JSON.parse(s.args);
  } else say(`(not executed) ${s.op} ${s.args}`);
}

// The entrypoint, with its absolute path mapped into the rootfs.
const [cmd, ...args] = entrypoint;
const mapped = args.map((a) => (a.startsWith("/") ? join(rootfs, a) : a));
for (const extra of [["--version"], ["config", "default"]]) {
  say(`${cmd} ${args.join(" ")} ${extra.join(" ")}`);
  const res = spawnSync(cmd === "node" ? process.execPath : cmd, [...mapped, ...extra], { stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" });
  process.stdout.write(extra[0] === "--version" ? res.stdout : `${res.stdout.split("\n").length} lines of TOML\n`);
  if (res.status !== 0) process.exit(1);
}
say(`image filesystem (application layers) in ${rootfs}`);
