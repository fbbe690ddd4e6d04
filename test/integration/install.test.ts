// scripts/install.sh into a temp prefix, on this machine without systemd: the program runs from
// its installed place with production dependencies only, the config file is `config default`
// and is kept on a second run, and the unit names the installed paths.
import { afterAll, describe, expect, inject, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const bed = inject("bed");
const repo = fileURLToPath(new URL("../..", import.meta.url));
const base = mkdtempSync(join(bed.tmpDir, "install-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

const env = { ...process.env, PREFIX: join(base, "usr/local"), SYSCONFDIR: join(base, "etc"), UNITDIR: join(base, "systemd") };
const install = () => spawnSync(join(repo, "scripts/install.sh"), [], { env, encoding: "utf8", timeout: 180_000 });
const podshim = (...args: string[]) => spawnSync(join(env.PREFIX, "bin/podshim"), args, { encoding: "utf8", timeout: 30_000 });

describe("scripts/install.sh", () => {
  it("installs podshim, its config and unit under the prefix, and says how to start it without systemd", () => {
    const res = install();
    expect(res.status, res.stderr).toBe(0);
    expect(res.stderr).toContain("systemd is not running here");
    expect(res.stderr).toContain(`setsid ${env.PREFIX}/bin/podshim --config ${env.SYSCONFDIR}/podshim/config.toml`);

    const version = podshim("--version");
    expect(version.status, version.stderr).toBe(0);
    expect(version.stdout).toMatch(/^podshim 0\.1\.0\ncommit: \S+\nnode: v\d+/);
    // Production dependencies only: the dev tools are not there.
    expect(existsSync(join(env.PREFIX, "lib/podshim/node_modules/typescript"))).toBe(false);

    const config = join(env.SYSCONFDIR, "podshim/config.toml");
    expect(readFileSync(config, "utf8")).toBe(podshim("config", "default").stdout);
    const dump = podshim("config", "dump", "--config", config);
    expect(dump.status, dump.stderr).toBe(0);
    expect(dump.stdout).toContain('namespace = "podshim"');

    const unit = readFileSync(join(env.UNITDIR, "podshim.service"), "utf8");
    expect(unit).toContain(`ExecStart=${env.PREFIX}/bin/podshim --config ${config}`);
    expect(unit).toContain("KillMode=process");
  }, 200_000);

  it("keeps an existing config file on a second run", () => {
    const config = join(env.SYSCONFDIR, "podshim/config.toml");
    writeFileSync(config, 'log_level = "debug"\n');
    const res = install();
    expect(res.status, res.stderr).toBe(0);
    expect(res.stderr).toContain(`kept the existing ${config}`);
    expect(readFileSync(config, "utf8")).toBe('log_level = "debug"\n');
    expect(podshim("config", "dump", "--config", config).stdout).toContain('log_level = "debug"');
  }, 200_000);
});
