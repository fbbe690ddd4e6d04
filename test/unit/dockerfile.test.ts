// The Dockerfile cannot be built here (no Docker engine): check what can go wrong without one.
// Every COPY source exists in the repository, and the build stage runs the build commands the
// README gives, so the image is built the way people build podshim.
import { describe, expect, it } from "vitest";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const root = fileURLToPath(new URL("../..", import.meta.url));
const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8");

interface Step { op: string; args: string }
function stages(text: string): Array<{ from: string; steps: Step[] }> {
  const out: Array<{ from: string; steps: Step[] }> = [];
  for (const line of text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim())) {
    if (line === "" || line.startsWith("#")) continue;
    const [, op = "", args = ""] = /^(\S+)\s+(.*)$/.exec(line) ?? [];
    if (op.toUpperCase() === "FROM") out.push({ from: args, steps: [] });
    else out.at(-1)!.steps.push({ op: op.toUpperCase(), args: args.trim() });
  }
  return out;
}

/** The commands of the first sh block under README's "Build and install" heading. */
function readmeBuildCommands(): string[] {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("### Build and install"));
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1]!;
  return block.split("\n").map((l) => l.replace(/#.*$/, "").trim()).filter((l) => l !== "");
}

describe("Dockerfile", () => {
  const all = stages(dockerfile);

  it("copies only files that exist in the repository", () => {
    const sources = all.flatMap((s) => s.steps)
      .filter((s) => s.op === "COPY" && !s.args.includes("--from="))
      .flatMap((s) => s.args.split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(0);
    for (const src of sources) expect(existsSync(join(root, src)), `COPY source ${src}`).toBe(true);
  });

  it("does not exclude a COPY source in .dockerignore", () => {
    const ignored = readFileSync(join(root, ".dockerignore"), "utf8").split("\n").map((l) => l.trim()).filter(Boolean);
    const sources = all.flatMap((s) => s.steps).filter((s) => s.op === "COPY" && !s.args.includes("--from=")).flatMap((s) => s.args.split(/\s+/).slice(0, -1));
    for (const src of sources) expect(ignored, src).not.toContain(src.replace(/^\.\//, ""));
  });

  it("runs the README's build commands in its build stage, in order", () => {
    const build = all.find((s) => / AS build$/i.test(s.from))!;
    const commands = build.steps.filter((s) => s.op === "RUN").flatMap((s) => s.args.split("&&").map((c) => c.trim()));
    expect(commands).toEqual(readmeBuildCommands());
  });

  it("copies from the build stage only what the build produced", () => {
    const copied = all.at(-1)!.steps.filter((s) => s.args.includes("--from=build")).map((s) => s.args.split(/\s+/)[1]);
    expect(copied).toEqual(["/src/package.json", "/src/node_modules", "/src/dist"]);
  });
});

describe("systemd unit", () => {
  const unit = readFileSync(join(root, "packaging/podshim.service"), "utf8");
  it("keeps containers running across restarts and orders itself after containerd", () => {
    for (const line of ["After=network-online.target containerd.service", "Requires=containerd.service", "Restart=always", "KillMode=process", "Delegate=yes", "RuntimeDirectory=podshim", "RuntimeDirectoryPreserve=yes"]) {
      expect(unit.split("\n"), line).toContain(line);
    }
    expect(unit).toMatch(/^LimitNOFILE=\d+$/m);
    expect(unit).toMatch(/^ExecStart=\/usr\/local\/bin\/podshim --config \/etc\/podshim\/config.toml$/m);
  });
});
