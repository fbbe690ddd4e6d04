// `podshim config default` and `config dump`: TOML that loads back to the same config.
import { describe, expect, it } from "vitest";
import { parse } from "smol-toml";
import { applyToml, applyFlags, parseCommandLine } from "../../src/config/load.js";
import { OPTIONS, defaultConfig } from "../../src/config/options.js";
import { renderConfigToml, renderDefaultToml } from "../../src/config/render.js";
import { cgroupDriverProblem, parseRuntimes } from "../../src/config/runtimes.js";

describe("config default", () => {
  const text = renderDefaultToml();

  it("loads back to the defaults unchanged", () => {
    expect(applyToml(defaultConfig(), text, "default.toml")).toEqual(defaultConfig());
  });

  it("names every key with a one-line comment above it", () => {
    const lines = text.split("\n");
    const doc = parse(text) as Record<string, unknown>;
    for (const o of OPTIONS) {
      expect(Object.keys(doc)).toContain(o.toml);
      const i = lines.findIndex((l) => l.startsWith(`${o.toml} = `));
      expect(lines[i - 1], o.toml).toBe(`# ${o.help}`);
    }
    expect(doc.runtimes).toMatchObject({ runc: { runtime_type: "io.containerd.runc.v2" } });
    expect(text).toContain("# SystemdCgroup = false");
  });
});

describe("config dump", () => {
  it("prints the effective config, which loads back to itself", () => {
    const file = applyToml(defaultConfig(), [
      'namespace = "k8s"', 'metrics_address = "127.0.0.1:10257"', 'stream_address = "[::1]:10010"',
      "[runtimes.runc.options]", "SystemdCgroup = true",
      "[runtimes.fast]", 'runtime_type = "io.containerd.runc.v2"', "[runtimes.fast.options]", 'BinaryName = "/usr/local/bin/crun"',
    ].join("\n"), "f.toml");
    const config = applyFlags(file, parseCommandLine(["--log-level", "debug", "--cgroup-driver", "systemd"]).flags);
    const text = renderConfigToml(config);
    expect(text).toContain('metrics_address = "127.0.0.1:10257"');
    expect(text).toContain('log_level = "debug"');
    expect(text).toContain("SystemdCgroup = true");
    expect(applyToml(defaultConfig(), text, "dump.toml")).toEqual(config);
  });
});

describe("cgroup driver and SystemdCgroup", () => {
  it("agree by default", () => {
    expect(cgroupDriverProblem("cgroupfs", defaultConfig().runtimes)).toBeUndefined();
  });

  it("disagree when the driver is systemd and runc is not told, and the fix says what to set", () => {
    const p = cgroupDriverProblem("systemd", defaultConfig().runtimes);
    expect(p?.problem).toContain("SystemdCgroup is not true for the default handler, runtimes.runc");
    expect(p?.fix).toContain("SystemdCgroup = true");
  });

  it("[runtimes.runc] also sets the default handler, so systemd can be configured", () => {
    const runtimes = parseRuntimes({ runc: { options: { SystemdCgroup: true } } }, "f.toml");
    expect(runtimes[""]).toEqual(runtimes.runc);
    expect(cgroupDriverProblem("systemd", runtimes)).toBeUndefined();
    expect(cgroupDriverProblem("cgroupfs", runtimes)?.problem).toContain("SystemdCgroup is true");
  });

  it("ignores handlers of other shims, whose options are not runc's", () => {
    const runtimes = { ...defaultConfig().runtimes, other: { runtimeType: "io.containerd.kata.v2", options: {} } };
    expect(cgroupDriverProblem("cgroupfs", runtimes)).toBeUndefined();
  });
});
