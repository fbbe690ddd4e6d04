import { afterAll, describe, expect, it } from "vitest";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CanceledError, DeadlineExceededError, FailedPreconditionError, InternalError, InvalidArgumentError } from "../../src/errors/errors.js";
import { createLogger } from "../../src/logger/logger.js";
import type { CniNetwork } from "../../src/network/cni-config.js";
import { CniPluginError, CniRuntime, formatCniArgs, podIps, versionAtLeast, type CniResult, type CniRuntimeArgs } from "../../src/network/cni.js";
import { NetworkService } from "../../src/network/network-service.js";

const root = mkdtempSync(join(tmpdir(), "podshim-cni-exec-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Call {
  plugin: string;
  command: string;
  containerId: string;
  netns: string;
  ifName: string;
  args: string;
  path: string;
  stdin: Record<string, unknown> & { prevResult?: CniResult; runtimeConfig?: Record<string, unknown> };
}

interface Fake {
  /** Printed on ADD (a string as it is); default: a result naming the plugin. */
  result?: unknown;
  /** Printed on stdout with exit 1, for this command. */
  failOn?: { command: string; stdout: string; stderr?: string; exit?: number };
  sleepSeconds?: number;
}

/** A bin dir of fake plugins: small sh scripts that log each call (env and stdin) as a JSON
 * line and print a canned result. */
function binDir(plugins: Record<string, Fake>): { dir: string; calls: () => Call[] } {
  const dir = mkdtempSync(join(root, "bin-"));
  const log = join(dir, "calls.jsonl");
  for (const [name, fake] of Object.entries(plugins)) {
    const result = typeof fake.result === "string" ? fake.result : JSON.stringify(fake.result ?? { cniVersion: "1.0.0", interfaces: [{ name: `from-${name}` }], ips: [] });
    const lines = [
      "#!/bin/sh",
      "in=$(cat)",
      `printf '{"plugin":"%s","command":"%s","containerId":"%s","netns":"%s","ifName":"%s","args":"%s","path":"%s","stdin":%s}\\n' ` +
        `'${name}' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" "$CNI_PATH" "$in" >> '${log}'`,
    ];
    if (fake.sleepSeconds) lines.push(`sleep ${fake.sleepSeconds}`);
    if (fake.failOn) {
      lines.push(`if [ "$CNI_COMMAND" = '${fake.failOn.command}' ]; then`);
      lines.push(`  printf '%s' '${fake.failOn.stdout}'`);
      if (fake.failOn.stderr) lines.push(`  printf '%s' '${fake.failOn.stderr}' >&2`);
      lines.push(`  exit ${fake.failOn.exit ?? 1}`, "fi");
    }
    lines.push(`[ "$CNI_COMMAND" = ADD ] && printf '%s' '${result}'`, "exit 0");
    writeFileSync(join(dir, name), lines.join("\n") + "\n");
    chmodSync(join(dir, name), 0o755);
  }
  return {
    dir,
    calls: () =>
      existsSync(log)
        ? readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Call)
        : [],
  };
}

function network(plugins: CniNetwork["plugins"], extra: Record<string, unknown> = {}, cniVersion = "1.0.0"): CniNetwork {
  const raw = { cniVersion, name: "testnet", plugins, ...extra };
  return { name: "testnet", cniVersion, file: "/dev/null", plugins, raw };
}

const rt = (over: Partial<CniRuntimeArgs> = {}): CniRuntimeArgs => ({
  containerId: "abc123",
  netns: "/run/netns/fake",
  ifName: "eth0",
  args: { IgnoreUnknown: "1", K8S_POD_NAMESPACE: "default", K8S_POD_NAME: "web", K8S_POD_INFRA_CONTAINER_ID: "abc123", K8S_POD_UID: "u-1" },
  capabilityArgs: {},
  ...over,
});

const CAPS = {
  portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }],
  bandwidth: { ingressRate: 1_000_000, ingressBurst: 524_288 },
  ipRanges: [[{ subnet: "10.244.1.0/24" }]],
};

describe("CniRuntime.add", () => {
  it("injects runtimeConfig with only the capabilities each plugin declares", async () => {
    const bin = binDir({ bridge: {}, portmap: {}, bandwidth: {}, tuning: {} });
    const net = network([
      { type: "bridge", bridge: "cni0", ipam: { type: "host-local" } },
      { type: "portmap", capabilities: { portMappings: true } },
      { type: "bandwidth", capabilities: { bandwidth: true, portMappings: false } },
      { type: "tuning", capabilities: { somethingElse: true } },
    ]);
    await new CniRuntime({ binDirs: [bin.dir] }).add(net, rt({ capabilityArgs: CAPS }));
    const [bridge, portmap, bandwidth, tuning] = bin.calls().map((c) => c.stdin);
    expect(bridge!.runtimeConfig).toBeUndefined();
    expect(portmap!.runtimeConfig).toEqual({ portMappings: CAPS.portMappings });
    expect(bandwidth!.runtimeConfig).toEqual({ bandwidth: CAPS.bandwidth });
    expect(tuning!.runtimeConfig).toBeUndefined();
    // The list's name and version go into every plugin's config; its own fields stay.
    expect(bridge).toMatchObject({ name: "testnet", cniVersion: "1.0.0", type: "bridge", bridge: "cni0", ipam: { type: "host-local" } });
  });

  it("chains prevResult from plugin to plugin and returns the last result", async () => {
    const bin = binDir({ a: {}, b: {}, c: {} });
    const result = await new CniRuntime({ binDirs: [bin.dir] }).add(network([{ type: "a" }, { type: "b" }, { type: "c" }]), rt());
    const calls = bin.calls();
    expect(calls.map((c) => `${c.plugin}:${c.command}`)).toEqual(["a:ADD", "b:ADD", "c:ADD"]);
    expect(calls[0]!.stdin.prevResult).toBeUndefined();
    expect(calls[1]!.stdin.prevResult).toEqual({ cniVersion: "1.0.0", interfaces: [{ name: "from-a" }], ips: [] });
    expect(calls[2]!.stdin.prevResult).toEqual({ cniVersion: "1.0.0", interfaces: [{ name: "from-b" }], ips: [] });
    expect(result.interfaces).toEqual([{ name: "from-c" }]);
  });

  it("finds a plugin again after the one it found is gone from its bin dir", async () => {
    const first = binDir({ a: {} });
    const second = binDir({ a: {} });
    const cni = new CniRuntime({ binDirs: [first.dir, second.dir] });
    await cni.add(network([{ type: "a" }]), rt());
    expect(first.calls().map((c) => c.path.length > 0)).toEqual([true]);
    // The path found first is remembered; when it goes, that call fails and the next looks again.
    rmSync(join(first.dir, "a"));
    await expect(cni.add(network([{ type: "a" }]), rt())).rejects.toThrow();
    await cni.add(network([{ type: "a" }]), rt());
    expect(second.calls().map((c) => c.command)).toEqual(["ADD"]);
  });

  it("sets the CNI environment, with CNI_ARGS in the given order and CNI_PATH as a colon list", async () => {
    const bin = binDir({ bridge: {} });
    await new CniRuntime({ binDirs: ["/nonexistent", bin.dir] }).add(network([{ type: "bridge" }]), rt());
    const [call] = bin.calls();
    expect(call).toMatchObject({
      command: "ADD",
      containerId: "abc123",
      netns: "/run/netns/fake",
      ifName: "eth0",
      args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=u-1",
      path: `/nonexistent:${bin.dir}`,
    });
  });

  it("throws the plugin's msg and details verbatim as a CniPluginError (an InternalError) with a cause", async () => {
    const stdout = JSON.stringify({ cniVersion: "1.0.0", code: 7, msg: "failed to allocate for range 0", details: "no IP addresses available in range set: 10.1.0.2-10.1.0.3" });
    const bin = binDir({ bridge: { failOn: { command: "ADD", stdout, stderr: "some log" } }, portmap: {} });
    const err = await new CniRuntime({ binDirs: [bin.dir] }).add(network([{ type: "bridge" }, { type: "portmap" }]), rt()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniPluginError);
    expect(err).toBeInstanceOf(InternalError);
    const e = err as CniPluginError;
    expect(e.message).toBe("CNI plugin bridge failed (ADD): failed to allocate for range 0: no IP addresses available in range set: 10.1.0.2-10.1.0.3");
    expect(e).toMatchObject({ plugin: "bridge", command: "ADD", code: 7 });
    expect((e.cause as Error).message).toContain("some log");
    // The chain stops at the failure.
    expect(bin.calls().map((c) => c.plugin)).toEqual(["bridge"]);
  });

  it("says what there is when a failing plugin prints no error object", async () => {
    const bin = binDir({ weird: { failOn: { command: "ADD", stdout: "", stderr: "panic: nil map", exit: 2 } } });
    const err = await new CniRuntime({ binDirs: [bin.dir] }).add(network([{ type: "weird" }]), rt()).catch((e: unknown) => e);
    expect((err as Error).message).toBe("CNI plugin weird failed (ADD): exit status 2: panic: nil map");
  });

  it("refuses a success without a JSON result", async () => {
    const bin = binDir({ mute: { result: "" } });
    const err = await new CniRuntime({ binDirs: [bin.dir] }).add(network([{ type: "mute" }]), rt()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InternalError);
    expect((err as Error).message).toContain("printed no JSON result");
  });

  it("names a missing plugin as a FailedPreconditionError", async () => {
    const bin = binDir({});
    const err = await new CniRuntime({ binDirs: [bin.dir] }).add(network([{ type: "nope" }]), rt()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as Error).message).toContain("CNI plugin nope (network testnet) not found");
  });

  it("kills a plugin that outlives its timeout, and what it spawned", async () => {
    const bin = binDir({ slow: { sleepSeconds: 30 } });
    const started = Date.now();
    const err = await new CniRuntime({ binDirs: [bin.dir], execTimeoutMs: 300 }).add(network([{ type: "slow" }]), rt()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect((err as Error).message).toBe("CNI plugin slow (ADD) did not finish within 300 ms and was killed");
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("stops on abort", async () => {
    const bin = binDir({ slow: { sleepSeconds: 30 } });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const err = await new CniRuntime({ binDirs: [bin.dir] }).add(network([{ type: "slow" }]), rt(), { signal: ac.signal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CanceledError);
  });
});

describe("CniRuntime.del", () => {
  const cached: CniResult = { cniVersion: "1.0.0", interfaces: [{ name: "eth0", sandbox: "/x" }], ips: [{ address: "10.1.0.2/24", interface: 0 }] };

  it("runs the plugins in reverse with the cached result as prevResult and the same runtimeConfig", async () => {
    const bin = binDir({ bridge: {}, portmap: {} });
    const net = network([{ type: "bridge" }, { type: "portmap", capabilities: { portMappings: true } }]);
    await new CniRuntime({ binDirs: [bin.dir] }).del(net, rt({ capabilityArgs: CAPS }), cached);
    const calls = bin.calls();
    expect(calls.map((c) => `${c.plugin}:${c.command}`)).toEqual(["portmap:DEL", "bridge:DEL"]);
    for (const c of calls) expect(c.stdin.prevResult).toEqual(cached);
    expect(calls[0]!.stdin.runtimeConfig).toEqual({ portMappings: CAPS.portMappings });
  });

  it("runs without prevResult when nothing is cached, and passes an empty CNI_NETNS when the namespace is gone", async () => {
    const bin = binDir({ bridge: {} });
    await new CniRuntime({ binDirs: [bin.dir] }).del(network([{ type: "bridge" }]), rt({ netns: join(root, "no-such-netns") }));
    const [call] = bin.calls();
    expect(call!.stdin.prevResult).toBeUndefined();
    expect(call!.netns).toBe("");
    expect(call!.command).toBe("DEL");
  });

  it("gives no prevResult to configs older than 0.4.0", async () => {
    const bin = binDir({ bridge: {} });
    await new CniRuntime({ binDirs: [bin.dir] }).del(network([{ type: "bridge" }], {}, "0.3.1"), rt(), cached);
    expect(bin.calls()[0]!.stdin.prevResult).toBeUndefined();
  });

  it("stops at the first failing plugin, like libcni", async () => {
    const stdout = JSON.stringify({ code: 999, msg: "iptables is locked" });
    const bin = binDir({ bridge: {}, portmap: { failOn: { command: "DEL", stdout } } });
    const net = network([{ type: "bridge" }, { type: "portmap" }]);
    await expect(new CniRuntime({ binDirs: [bin.dir] }).del(net, rt(), cached)).rejects.toThrow("CNI plugin portmap failed (DEL): iptables is locked");
    expect(bin.calls().map((c) => c.plugin)).toEqual(["portmap"]);
  });
});

describe("CniRuntime.check and loopback", () => {
  it("checks in order with the cached result, skips when disableCheck, refuses 0.3.x", async () => {
    const bin = binDir({ a: {}, b: {} });
    const cni = new CniRuntime({ binDirs: [bin.dir] });
    const prev: CniResult = { cniVersion: "1.0.0", ips: [] };
    await cni.check(network([{ type: "a" }, { type: "b" }]), rt(), prev);
    expect(bin.calls().map((c) => `${c.plugin}:${c.command}`)).toEqual(["a:CHECK", "b:CHECK"]);
    expect(bin.calls()[1]!.stdin.prevResult).toEqual(prev);
    await cni.check(network([{ type: "a" }], { disableCheck: true }), rt(), prev);
    expect(bin.calls()).toHaveLength(2);
    await expect(cni.check(network([{ type: "a" }], {}, "0.3.1"), rt(), prev)).rejects.toBeInstanceOf(FailedPreconditionError);
  });

  it("brings lo up with its own tiny network", async () => {
    const bin = binDir({ loopback: {} });
    await new CniRuntime({ binDirs: [bin.dir] }).loopbackUp("/run/netns/podshim-x", "pod1");
    const [call] = bin.calls();
    expect(call).toMatchObject({ command: "ADD", ifName: "lo", containerId: "pod1", netns: "/run/netns/podshim-x", args: "" });
    expect(call!.stdin).toEqual({ type: "loopback", name: "cni-loopback", cniVersion: "1.0.0" });
  });
});

describe("formatCniArgs", () => {
  it("joins in order and refuses separators", () => {
    expect(formatCniArgs({ IgnoreUnknown: "1", K8S_POD_NAME: "a" })).toBe("IgnoreUnknown=1;K8S_POD_NAME=a");
    expect(formatCniArgs({})).toBe("");
    expect(() => formatCniArgs({ K: "a;b" })).toThrow(InvalidArgumentError);
    expect(() => formatCniArgs({ "K=": "a" })).toThrow(InvalidArgumentError);
  });
});

describe("podIps", () => {
  it("puts IPv4 first, strips prefixes and keeps only sandbox interfaces", () => {
    const result: CniResult = {
      cniVersion: "1.0.0",
      interfaces: [{ name: "cni0" }, { name: "veth1" }, { name: "eth0", sandbox: "/run/netns/x" }],
      ips: [
        { address: "fd00:10::5/64", interface: 2 },
        { address: "10.88.0.1/16", interface: 0 },
        { address: "10.88.0.5/16", gateway: "10.88.0.1", interface: 2 },
      ],
    };
    expect(podIps(result)).toEqual(["10.88.0.5", "fd00:10::5"]);
  });

  it("takes every address when the result names no interfaces (an IPAM-style result)", () => {
    expect(podIps({ cniVersion: "0.3.1", ips: [{ version: "6", address: "fd00::2/64" }, { version: "4", address: "10.0.0.2/24" }] })).toEqual(["10.0.0.2", "fd00::2"]);
    expect(podIps({ cniVersion: "1.0.0" })).toEqual([]);
  });
});

describe("versionAtLeast", () => {
  it.each([["1.0.0", true], ["0.4.0", true], ["0.3.1", false], ["0.2.0", false], ["1.1.0", true]])("%s >= 0.4 is %s", (v, ok) =>
    expect(versionAtLeast(v, 0, 4)).toBe(ok));
});

describe("NetworkService.setUpPod / tearDownPod (fake plugins)", () => {
  const logger = createLogger("silent");
  const bridgeResult = {
    cniVersion: "1.0.0",
    interfaces: [{ name: "cni0" }, { name: "veth0" }, { name: "eth0", sandbox: "/run/netns/p" }],
    ips: [{ address: "10.1.0.7/24", gateway: "10.1.0.1", interface: 2 }],
  };

  function service(plugins: Record<string, Fake>, list: CniNetwork["plugins"]) {
    const bin = binDir({ loopback: {}, ...plugins });
    const confDir = mkdtempSync(join(root, "conf-"));
    const stateDir = mkdtempSync(join(root, "state-"));
    writeFileSync(join(confDir, "10-test.conflist"), JSON.stringify({ cniVersion: "1.0.0", name: "testnet", plugins: list }));
    // The fake netns path has no namespace behind it: lo goes up through the (fake) plugin.
    const svc = new NetworkService({ cniConfDir: confDir, cniBinDirs: [bin.dir], stateDir, logger, loopbackUp: async () => false });
    return { svc, bin, stateDir, confDir };
  }

  const pod = {
    id: "0123456789abcdef", name: "web", namespace: "prod", uid: "uid-1", netns: "/run/netns/p",
    portMappings: [
      { protocol: 0, containerPort: 80, hostPort: 8080, hostIp: "" },
      { protocol: "UDP", containerPort: 53, hostPort: 5353, hostIp: "127.0.0.1" },
      { protocol: 0, containerPort: 9090, hostPort: 0 },
    ],
    annotations: { "kubernetes.io/ingress-bandwidth": "10M", "kubernetes.io/egress-bandwidth": "1Mi" },
  };

  it("brings lo up, runs ADD with the pod's args and capabilities, caches, and tears down with the cache", async () => {
    const { svc, bin, stateDir, confDir } = service(
      { bridge: { result: bridgeResult }, portmap: { result: bridgeResult }, bandwidth: { result: bridgeResult } },
      [{ type: "bridge" }, { type: "portmap", capabilities: { portMappings: true } }, { type: "bandwidth", capabilities: { bandwidth: true } }],
    );
    await svc.start();
    await svc.setPodCidr("10.1.0.0/24");
    const { ips } = await svc.setUpPod(pod);
    expect(ips).toEqual(["10.1.0.7"]);
    const calls = bin.calls();
    expect(calls.map((c) => `${c.plugin}:${c.command}`)).toEqual(["loopback:ADD", "bridge:ADD", "portmap:ADD", "bandwidth:ADD"]);
    expect(calls[1]!.args).toBe("IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=0123456789abcdef;K8S_POD_UID=uid-1");
    expect(calls[1]).toMatchObject({ containerId: pod.id, ifName: "eth0", netns: pod.netns });
    expect(calls[2]!.stdin.runtimeConfig).toEqual({
      portMappings: [
        { hostPort: 8080, containerPort: 80, protocol: "tcp" },
        { hostPort: 5353, containerPort: 53, protocol: "udp", hostIP: "127.0.0.1" },
      ],
    });
    expect(calls[3]!.stdin.runtimeConfig).toEqual({
      bandwidth: { ingressRate: 10_000_000, ingressBurst: 1_000_000, egressRate: 1_048_576, egressBurst: 524_288 },
    });
    const cacheFile = join(stateDir, "cni", `${pod.id}.json`);
    const entry = JSON.parse(readFileSync(cacheFile, "utf8"));
    expect(entry).toMatchObject({ version: 1, podId: pod.id, network: { name: "testnet" }, result: bridgeResult });

    // A config change after ADD does not change what DEL runs.
    writeFileSync(join(confDir, "10-test.conflist"), JSON.stringify({ cniVersion: "1.0.0", name: "other", plugins: [{ type: "bridge" }] }));
    await svc.tearDownPod(pod.id, join(root, "gone-netns"));
    const dels = bin.calls().slice(4);
    expect(dels.map((c) => `${c.plugin}:${c.command}`)).toEqual(["bandwidth:DEL", "portmap:DEL", "bridge:DEL"]);
    expect(dels[0]!.stdin).toMatchObject({ name: "testnet", prevResult: bridgeResult });
    expect(dels[1]!.stdin.runtimeConfig).toEqual(calls[2]!.stdin.runtimeConfig);
    expect(dels.every((c) => c.netns === "")).toBe(true);
    expect(existsSync(cacheFile)).toBe(false);

    // Again, and for a pod never seen: DEL with the current config, no error.
    await svc.tearDownPod(pod.id, "");
    await svc.tearDownPod("feedface", "");
    const later = bin.calls().slice(7);
    expect(later.every((c) => c.command === "DEL" && c.stdin.prevResult === undefined)).toBe(true);
    expect(later.filter((c) => c.plugin === "bridge").map((c) => c.containerId)).toEqual([pod.id, "feedface"]);
  });

  it("undoes a failed ADD with DEL and leaves no cache entry", async () => {
    const stdout = JSON.stringify({ code: 11, msg: "port 8080 is taken", details: "by someone" });
    const { svc, bin, stateDir } = service(
      { bridge: { result: bridgeResult }, portmap: { failOn: { command: "ADD", stdout } } },
      [{ type: "bridge" }, { type: "portmap", capabilities: { portMappings: true } }],
    );
    const err = await svc.setUpPod(pod).catch((e: unknown) => e);
    expect((err as Error).message).toBe("CNI plugin portmap failed (ADD): port 8080 is taken: by someone");
    expect((err as CniPluginError).code).toBe(11);
    expect(bin.calls().map((c) => `${c.plugin}:${c.command}`)).toEqual(["loopback:ADD", "bridge:ADD", "portmap:ADD", "portmap:DEL", "bridge:DEL"]);
    expect(existsSync(join(stateDir, "cni", `${pod.id}.json`))).toBe(false);
  });

  it("refuses without a network config, and rejects bad annotations before any plugin runs", async () => {
    const logger = createLogger("silent");
    const empty = mkdtempSync(join(root, "conf-"));
    const svc = new NetworkService({ cniConfDir: empty, cniBinDirs: [root], stateDir: mkdtempSync(join(root, "state-")), logger });
    const err = await svc.setUpPod(pod).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as Error).message).toMatch(/^no CNI network config in /);

    const { svc: svc2, bin } = service({ bridge: {} }, [{ type: "bridge" }]);
    const bad = { ...pod, annotations: { "kubernetes.io/ingress-bandwidth": "fast" } };
    await expect(svc2.setUpPod(bad)).rejects.toBeInstanceOf(InvalidArgumentError);
    const badProto = { ...pod, annotations: {}, portMappings: [{ protocol: 7, containerPort: 1, hostPort: 2 }] };
    await expect(svc2.setUpPod(badProto)).rejects.toThrow("unknown protocol 7");
    expect(bin.calls()).toEqual([]);
  });

  it("sees a new config at once when watching the conf dir", async () => {
    const { svc, confDir } = service({ bridge: {} }, [{ type: "bridge" }]);
    svc.watch();
    try {
      expect((await svc.loadNetworkConfig()).ok && (await svc.loadNetworkConfig() as { network: CniNetwork }).network.name).toBe("testnet");
      writeFileSync(join(confDir, "05-first.conflist"), JSON.stringify({ cniVersion: "1.0.0", name: "newer", plugins: [{ type: "bridge" }] }));
      let name = "";
      for (let i = 0; i < 50 && name !== "newer"; i++) {
        await new Promise((r) => setTimeout(r, 10));
        const r = await svc.loadNetworkConfig();
        name = r.ok ? r.network.name : "";
      }
      // Well under the 1 s reload interval.
      expect(name).toBe("newer");
    } finally {
      svc.close();
    }
  });

  it("watches a conf dir that does not exist yet without failing, and close() stops it", async () => {
    const svc = new NetworkService({ cniConfDir: join(root, "not-yet"), cniBinDirs: [root], stateDir: mkdtempSync(join(root, "state-")), logger });
    svc.watch();
    svc.watch();
    expect((await svc.loadNetworkConfig()).ok).toBe(false);
    svc.close();
    svc.close();
  });
});
