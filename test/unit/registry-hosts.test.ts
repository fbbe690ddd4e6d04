import { afterAll, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FailedPreconditionError, InvalidArgumentError } from "../../src/errors/errors.js";
import {
  hostDirCandidates, isLocalhost, loadRegistryHosts, parseGoDuration, splitHostPort,
} from "../../src/registry/hosts.js";
import type { RegistryHost } from "../../src/registry/hosts.js";

const root = mkdtempSync(join(tmpdir(), "podshim-hosts-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
/** A fresh certs.d with the given files (path relative to it -> content). */
function certsDir(files: Record<string, string> = {}): string {
  const dir = join(root, `d${n++}`);
  mkdirSync(dir);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

const ALL = { pull: true, resolve: true, push: true };

function summary(h: RegistryHost): unknown {
  return { url: h.url.href, capabilities: h.capabilities, skipVerify: h.skipVerify, overridePath: h.overridePath };
}

describe("defaults without configuration", () => {
  const cases: Array<[string, string, boolean]> = [
    ["docker.io", "https://registry-1.docker.io/v2", false],
    ["quay.io", "https://quay.io/v2", false],
    ["registry.example.com:5000", "https://registry.example.com:5000/v2", false],
    ["localhost", "http://localhost/v2", false],
    ["localhost:5000", "http://localhost:5000/v2", false],
    ["127.0.0.1:5000", "http://127.0.0.1:5000/v2", false],
    ["127.1.2.3", "http://127.1.2.3/v2", false],
    ["[::1]:5000", "http://[::1]:5000/v2", false],
    ["localhost:443", "https://localhost/v2", true],
  ];
  it.each(cases)("%s -> %s", async (registry, url, skipVerify) => {
    const hosts = await loadRegistryHosts(certsDir(), registry);
    expect(hosts.map(summary)).toEqual([{ url, capabilities: ALL, skipVerify, overridePath: false }]);
    expect(hosts[0]!.ca).toEqual([]);
    expect(hosts[0]!.header).toEqual({});
    expect(hosts[0]!.clientCert).toBeUndefined();
  });

  it("a config dir that does not exist is no configuration", async () => {
    const hosts = await loadRegistryHosts(join(root, "missing"), "quay.io");
    expect(hosts.map((h) => h.url.href)).toEqual(["https://quay.io/v2"]);
  });
});

describe("hosts.toml", () => {
  it("lists mirrors in file order, then the server, with their settings", async () => {
    const dir = certsDir({
      "docker.io/zeta.crt": "CA PEM",
      "docker.io/client.cert": "CERT",
      "docker.io/client.key": "KEY",
      "combined.pem": "BOTH",
    });
    writeFileSync(
      join(dir, "docker.io/hosts.toml"),
      `
server = "https://registry-1.docker.io"
capabilities = ["pull", "resolve"]

[host."https://zeta.mirror.example"]
  capabilities = ["pull"]
  ca = "zeta.crt"
  skip_verify = true
  dial_timeout = "1.5s"
  [host."https://zeta.mirror.example".header]
    x-one = "1"
    x-many = ["a", "b"]

[host."http://alpha.mirror.example:5000/prefix/"]
  capabilities = ["pull", "RESOLVE", "referrers"]
  client = [["client.cert", "client.key"], "${join(dir, "combined.pem")}"]

[host."https://legacy.example/v2/upstream"]
  override_path = true
  unknown_key = "ignored"
`,
    );

    const hosts = await loadRegistryHosts(dir, "docker.io");
    expect(hosts.map(summary)).toEqual([
      { url: "https://zeta.mirror.example/v2", capabilities: { pull: true, resolve: false, push: false }, skipVerify: true, overridePath: false },
      { url: "http://alpha.mirror.example:5000/prefix/v2", capabilities: { pull: true, resolve: true, push: false }, skipVerify: false, overridePath: false },
      { url: "https://legacy.example/v2/upstream", capabilities: ALL, skipVerify: false, overridePath: true },
      { url: "https://registry-1.docker.io/v2", capabilities: { pull: true, resolve: true, push: false }, skipVerify: false, overridePath: false },
    ]);
    expect(hosts[0]!.ca.map(String)).toEqual(["CA PEM"]);
    expect(hosts[0]!.header).toEqual({ "x-one": "1", "x-many": ["a", "b"] });
    expect(hosts[0]!.dialTimeoutMs).toBe(1500);
    expect(hosts[1]!.clientCert?.map((c) => [String(c.cert), c.key && String(c.key)])).toEqual([
      ["CERT", "KEY"],
      ["BOTH", undefined],
    ]);
  });

  it("without server, the registry itself comes last with every capability", async () => {
    const dir = certsDir({
      "example.invalid/hosts.toml": `
capabilities = ["pull"]
[host."http://127.0.0.1:5000"]
  capabilities = ["pull", "resolve"]
`,
    });
    const hosts = await loadRegistryHosts(dir, "example.invalid");
    expect(hosts.map(summary)).toEqual([
      { url: "http://127.0.0.1:5000/v2", capabilities: { pull: true, resolve: true, push: false }, skipVerify: false, overridePath: false },
      { url: "https://example.invalid/v2", capabilities: ALL, skipVerify: false, overridePath: false },
    ]);
  });

  it("a server without scheme is https, and a path ending in /v2 is kept", async () => {
    const dir = certsDir({ "r.example/hosts.toml": `server = "mirror.example/v2"\n` });
    expect((await loadRegistryHosts(dir, "r.example")).map((h) => h.url.href)).toEqual(["https://mirror.example/v2"]);
  });

  it("top-level TLS settings apply to the server", async () => {
    const dir = certsDir({
      "r.example/hosts.toml": `server = "https://r.example"\nca = ["a.crt", "b.crt"]\nskip_verify = true\n[header]\nx-top = "t"\n`,
      "r.example/a.crt": "A",
      "r.example/b.crt": "B",
    });
    const [server] = await loadRegistryHosts(dir, "r.example");
    expect(server!.ca.map(String)).toEqual(["A", "B"]);
    expect(server!.skipVerify).toBe(true);
    expect(server!.header).toEqual({ "x-top": "t" });
  });

  it("host_port_ directories win over host:port ones, _default catches the rest", async () => {
    const dir = certsDir({
      "127.0.0.1_5000_/hosts.toml": `server = "http://underscore.example"\n`,
      "127.0.0.1:5000/hosts.toml": `server = "http://colon.example"\n`,
      "127.0.0.1:6000/hosts.toml": `server = "http://colon6000.example"\n`,
      "_default/hosts.toml": `[host."https://default-mirror.example"]\n  capabilities = ["pull"]\n`,
    });
    expect((await loadRegistryHosts(dir, "127.0.0.1:5000")).map((h) => h.url.href)).toEqual(["http://underscore.example/v2"]);
    expect((await loadRegistryHosts(dir, "127.0.0.1:6000")).map((h) => h.url.href)).toEqual(["http://colon6000.example/v2"]);
    // _default's upstream is the registry asked for, not "_default".
    expect((await loadRegistryHosts(dir, "quay.io")).map((h) => h.url.href)).toEqual([
      "https://default-mirror.example/v2",
      "https://quay.io/v2",
    ]);
    expect((await loadRegistryHosts(dir, "localhost:7000")).map((h) => h.url.href)).toEqual([
      "https://default-mirror.example/v2",
      "http://localhost:7000/v2",
    ]);
  });

  it("an empty hosts.toml counts as none", async () => {
    const dir = certsDir({ "quay.io/hosts.toml": "" });
    expect((await loadRegistryHosts(dir, "quay.io")).map((h) => h.url.href)).toEqual(["https://quay.io/v2"]);
  });
});

describe("Docker's certs.d layout in a dir without hosts.toml", () => {
  it("takes *.crt as CAs and *.cert/*.key as client pairs", async () => {
    const dir = certsDir({
      "r.example:5000/ca.crt": "CA",
      "r.example:5000/client.cert": "CERT",
      "r.example:5000/client.key": "KEY",
      "r.example:5000/solo.cert": "SOLO",
      "r.example:5000/notes.txt": "ignored",
    });
    const hosts = await loadRegistryHosts(dir, "r.example:5000");
    expect(hosts).toHaveLength(1);
    expect(hosts[0]!.url.href).toBe("https://r.example:5000/v2");
    expect(hosts[0]!.ca.map(String)).toEqual(["CA"]);
    expect(hosts[0]!.clientCert?.map((c) => [String(c.cert), c.key && String(c.key)])).toEqual([
      ["CERT", "KEY"],
      ["SOLO", undefined],
    ]);
  });
});

describe("bad files", () => {
  const cases: Array<[string, string, RegExp]> = [
    ["not toml", `server = "x`, /not valid TOML/],
    ["server type", `server = 5`, /server must be a string/],
    ["capability", `[host."https://m.example"]\ncapabilities = ["pull", "fly"]`, /unknown capability "fly"/],
    ["capabilities type", `capabilities = 3`, /capabilities must be a string or an array of strings/],
    ["skip_verify type", `skip_verify = "yes"`, /skip_verify must be true or false/],
    ["override_path type", `override_path = 1`, /override_path must be true or false/],
    ["header type", `[header]\nx = 1`, /header "x" must be a string/],
    ["client pair", `client = [["a", "b", "c"]]`, /client entries/],
    ["missing ca", `ca = "nope.crt"`, /cannot read ca file .*nope\.crt: ENOENT/],
    ["host scheme", `[host."ftp://m.example"]`, /must be http or https/],
    ["host not a table", `host = 3`, /host must be a table/],
    ["dial_timeout", `dial_timeout = "soon"`, /dial_timeout "soon" is not a duration/],
  ];
  it.each(cases)("%s", async (_name, text, message) => {
    const dir = certsDir({ "r.example/hosts.toml": text });
    const err = await loadRegistryHosts(dir, "r.example").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toContain(join(dir, "r.example/hosts.toml"));
    expect((err as Error).message).toMatch(message);
  });

  it("an unreadable hosts.toml is a failed precondition", async () => {
    const dir = certsDir();
    mkdirSync(join(dir, "r.example/hosts.toml"), { recursive: true });
    await expect(loadRegistryHosts(dir, "r.example")).rejects.toBeInstanceOf(FailedPreconditionError);
  });
});

describe("helpers", () => {
  it.each([
    ["docker.io", { host: "docker.io" }],
    ["r.example:5000", { host: "r.example", port: "5000" }],
    ["[::1]:5000", { host: "[::1]", port: "5000" }],
    ["[::1]", { host: "[::1]" }],
  ])("splitHostPort(%s)", (s, want) => {
    expect(splitHostPort(s)).toEqual(want);
  });

  it.each([
    ["localhost", true],
    ["localhost:5000", true],
    ["127.0.0.1:5000", true],
    ["127.255.0.1", true],
    ["[::1]:5000", true],
    ["[0:0:0:0:0:0:0:1]", true],
    ["10.0.0.1:5000", false],
    ["localhost.example", false],
    ["docker.io", false],
  ])("isLocalhost(%s) = %s", (s, want) => {
    expect(isLocalhost(s)).toBe(want);
  });

  it("dir candidates", () => {
    expect(hostDirCandidates("r.example:5000")).toEqual(["r.example_5000_", "r.example:5000", "_default"]);
    expect(hostDirCandidates("docker.io")).toEqual(["docker.io", "_default"]);
  });

  it.each([
    ["0", 0],
    ["1s", 1000],
    ["1.5s", 1500],
    ["250ms", 250],
    ["1m30s", 90_000],
    ["2h", 7_200_000],
    ["", undefined],
    ["5", undefined],
    ["-1s", undefined],
    ["1d", undefined],
  ])("parseGoDuration(%j)", (s, want) => {
    expect(parseGoDuration(s)).toBe(want);
  });
});
