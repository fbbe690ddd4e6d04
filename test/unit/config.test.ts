import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyToml, loadConfig, parseCommandLine, usage } from "../../src/config/load.js";
import { ConfigError, defaultConfig, OPTIONS, parseHostPort } from "../../src/config/options.js";

describe("peer options", () => {
  it("take peers as a comma list on the command line and an array in TOML, each HOST:PORT", async () => {
    const cmd = parseCommandLine(["--peer-address", "10.0.0.1:5050", "--peers", "10.0.0.2:5050, 10.0.0.3:5050", "--peers-file", "/etc/podshim/peers", "--config", "/dev/null"]);
    const c = await loadConfig(cmd);
    expect(c.peerAddress).toEqual({ host: "10.0.0.1", port: 5050 });
    expect(c.peers).toEqual(["10.0.0.2:5050", "10.0.0.3:5050"]);
    expect(c.peersFile).toBe("/etc/podshim/peers");
    expect(applyToml(defaultConfig(), 'peers = ["[fd00::1]:5050"]\npeer_resolve_tags = true', "f.toml").peers).toEqual(["[fd00::1]:5050"]);
    expect(() => applyToml(defaultConfig(), 'peers = ["10.0.0.2"]', "f.toml")).toThrow(/f.toml: peers must be HOST:PORT/);
    await expect(loadConfig(parseCommandLine(["--peers", "nohost", "--config", "/dev/null"]))).rejects.toThrow(/--peers must be HOST:PORT/);
  });
});

describe("defaults", () => {
  it("match the documented interface", () => {
    const c = defaultConfig();
    expect(c).toEqual({
      listen: "/run/podshim/podshim.sock",
      containerd: "/run/containerd/containerd.sock",
      namespace: "podshim",
      root: "/var/lib/podshim",
      state: "/run/podshim",
      cniConfDir: "/etc/cni/net.d",
      cniBinDirs: ["/opt/cni/bin", "/usr/lib/cni"],
      pauseImage: "registry.k8s.io/pause:3.10",
      registryConfigDir: "/etc/podshim/certs.d",
      streamAddress: { host: "127.0.0.1", port: 0 },
      streamTlsCert: "",
      streamTlsKey: "",
      restrictOomScoreAdj: false,
      enableUnprivilegedPorts: false,
      enableUnprivilegedIcmp: false,
      deviceOwnershipFromSecurityContext: false,
      cgroupDriver: "cgroupfs",
      logLevel: "info",
      shutdownGraceSeconds: 30,
      seccompDefaultProfile: "baseline",
      portForwardMaxPerPod: 64,
      portForwardMaxTotal: 1024,
      streamMaxStreamsPerSession: 256,
      peers: [],
      peersFile: "",
      peerResolveTags: false,
      runtimes: {
        "": { runtimeType: "io.containerd.runc.v2", options: {} },
        runc: { runtimeType: "io.containerd.runc.v2", options: {} },
      },
    });
  });

  it("every option is in --help with its flag, default and TOML key", () => {
    const help = usage();
    for (const o of OPTIONS) {
      expect(help).toContain(`--${o.flag}`);
      expect(help).toContain(`TOML key ${o.toml}`);
      expect(help).toContain(`default ${o.defaultText}`);
    }
  });
});

describe("command line", () => {
  const cases: Array<[string[], string]> = [
    [["--log-level", "loud"], "--log-level must be one of"],
    [["--log-level"], "--log-level needs a value"],
    [["--bogus"], "unknown flag --bogus"],
    [["stray"], 'unexpected argument "stray"'],
    [["--listen", "rel.sock"], "--listen must be an absolute path"],
    [["--listen", "/" + "x".repeat(120)], "--listen is too long for a unix socket"],
    [["--namespace", "bad ns"], "--namespace must be a containerd namespace name"],
    [["--stream-address", "localhost"], "--stream-address must be HOST:PORT"],
    [["--stream-address", "127.0.0.1:70000"], "--stream-address must be HOST:PORT"],
    [["--restrict-oom-score-adj=maybe"], "--restrict-oom-score-adj must be true or false"],
    [["--cni-bin-dir", "bin:/usr/lib/cni"], "--cni-bin-dir must be an absolute path"],
    [["--pause-image", "Not A Ref"], "--pause-image must be an image reference"],
    [["--cgroup-driver", "weird"], "--cgroup-driver must be one of cgroupfs, systemd"],
  ];
  it.each(cases)("%j is refused with a message naming the flag", async (argv, message) => {
    const attempt = async () => loadConfig({ ...parseCommandLine(argv), configFile: "/dev/null" });
    await expect(attempt()).rejects.toThrow(ConfigError);
    await expect(attempt()).rejects.toThrow(message);
  });

  it("accepts both --flag value and --flag=value, unix:// endpoints and booleans", async () => {
    const cmd = parseCommandLine([
      "--listen=unix:///tmp/p.sock", "--containerd", "/tmp/c.sock", "--restrict-oom-score-adj",
      "--cni-bin-dir", "/a:/b", "--stream-address", "[::1]:10010", "--log-level=debug",
    ]);
    const c = await loadConfig({ ...cmd, configFile: "/dev/null" });
    expect(c.listen).toBe("/tmp/p.sock");
    expect(c.containerd).toBe("/tmp/c.sock");
    expect(c.restrictOomScoreAdj).toBe(true);
    expect(c.cniBinDirs).toEqual(["/a", "/b"]);
    expect(c.streamAddress).toEqual({ host: "::1", port: 10010 });
    expect(c.logLevel).toBe("debug");
  });

  it("recognises --help and --version", () => {
    expect(parseCommandLine(["--help"]).help).toBe(true);
    expect(parseCommandLine(["-v"]).version).toBe(true);
  });
});

describe("TOML file", () => {
  const dir = mkdtempSync(join(tmpdir(), "podshim-config-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it("is applied over the defaults, and flags win over it", async () => {
    const f = file("a.toml", 'namespace = "fromfile"\nroot = "/srv/podshim"\nrestrict_oom_score_adj = true\ncni_bin_dir = ["/x", "/y"]\n');
    const c = await loadConfig(parseCommandLine(["--config", f, "--namespace", "fromflag"]));
    expect(c.namespace).toBe("fromflag");
    expect(c.root).toBe("/srv/podshim");
    expect(c.restrictOomScoreAdj).toBe(true);
    expect(c.cniBinDirs).toEqual(["/x", "/y"]);
  });

  it("refuses unknown keys, bad values and bad syntax with the file named", () => {
    const base = defaultConfig();
    expect(() => applyToml(base, 'nmespace = "x"', "/etc/p.toml")).toThrow('/etc/p.toml: unknown key "nmespace"');
    expect(() => applyToml(base, "restrict_oom_score_adj = 3", "/etc/p.toml")).toThrow("/etc/p.toml: restrict_oom_score_adj must be true or false");
    expect(() => applyToml(base, "listen = ", "/etc/p.toml")).toThrow("/etc/p.toml: not valid TOML");
  });

  it("reads runtime handlers from [runtimes.<name>] tables", () => {
    const c = applyToml(defaultConfig(), [
      "[runtimes.crun]",
      'runtime_type = "io.containerd.runc.v2"',
      "[runtimes.crun.options]",
      'BinaryName = "/usr/bin/crun"',
      "SystemdCgroup = false",
    ].join("\n"), "/etc/p.toml");
    expect(c.runtimes.crun).toEqual({ runtimeType: "io.containerd.runc.v2", options: { binaryName: "/usr/bin/crun", systemdCgroup: false } });
    expect(c.runtimes[""]).toBeDefined();
  });

  it("reads a handler's pod_annotations and privileged_without_host_devices, as containerd's runtime tables have them", () => {
    const c = applyToml(defaultConfig(), [
      "[runtimes.kata]",
      'runtime_type = "io.containerd.kata.v2"',
      'pod_annotations = ["io.katacontainers.*"]',
      "privileged_without_host_devices = true",
    ].join("\n"), "/etc/p.toml");
    expect(c.runtimes.kata).toEqual({ runtimeType: "io.containerd.kata.v2", podAnnotations: ["io.katacontainers.*"], privilegedWithoutHostDevices: true, options: {} });
  });

  it("reads the node-wide pod knobs containerd's CRI has", () => {
    const c = applyToml(defaultConfig(), "enable_unprivileged_ports = true\nenable_unprivileged_icmp = true\ndevice_ownership_from_security_context = true", "/etc/p.toml");
    expect([c.enableUnprivilegedPorts, c.enableUnprivilegedIcmp, c.deviceOwnershipFromSecurityContext]).toEqual([true, true, true]);
    const d = defaultConfig();
    expect([d.enableUnprivilegedPorts, d.enableUnprivilegedIcmp, d.deviceOwnershipFromSecurityContext]).toEqual([false, false, false]);
  });

  it.each([
    ['[runtimes.Bad_Name]\nruntime_type = "io.containerd.runc.v2"', "a handler name must be a DNS label"],
    ['[runtimes.x]\nruntime_type = "runc"', "runtime_type must name a containerd shim"],
    ['[runtimes.x.options]\nBinaryNme = "/bin/x"', 'unknown option "BinaryNme"'],
    ["[runtimes.x.options]\nSystemdCgroup = 1", "SystemdCgroup must be true or false"],
    ['[runtimes.x]\nshim = "y"', 'unknown key "shim"'],
    ['[runtimes.x]\npod_annotations = "a*"', "pod_annotations must be an array"],
    ["[runtimes.x]\nprivileged_without_host_devices = 1", "privileged_without_host_devices must be true or false"],
  ])("refuses a bad runtime table %#", (text, message) => {
    expect(() => applyToml(defaultConfig(), text, "/etc/p.toml")).toThrow(message);
  });

  it("a named file that is missing is an error; the default file may be absent", async () => {
    await expect(loadConfig(parseCommandLine(["--config", join(dir, "nope.toml")]))).rejects.toThrow("--config: cannot read");
  });
});

describe("parseHostPort", () => {
  it.each([
    ["127.0.0.1:0", { host: "127.0.0.1", port: 0 }],
    ["0.0.0.0:10010", { host: "0.0.0.0", port: 10010 }],
    ["[::]:1", { host: "::", port: 1 }],
    ["node1.local:443", { host: "node1.local", port: 443 }],
  ])("%s", (raw, want) => expect(parseHostPort(raw, "x")).toEqual(want));
});
