// The CNI runtime against the real Debian plugins (bridge, host-local, portmap, bandwidth,
// loopback) in real pinned network namespaces; no containerd involved. Every name is unique
// to this run (bridge, network, subnet, host-local dataDir), so runs on the same machine do
// not see each other's leases or rules, and everything is removed at the end.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/logger/logger.js";
import { CniPluginError, type CniResult } from "../../src/network/cni.js";
import { cniEnv } from "../../src/network/cni.js";
import { runProgram } from "../../src/util/exec.js";
import { createNetns, deleteNetns, netnsExists, netnsNameFor, runInNetns } from "../../src/network/netns.js";
import { NetworkService, type PodPortMapping } from "../../src/network/network-service.js";
import { run, runOk, sleep } from "../bed/proc.js";

const BIN_DIRS = ["/usr/lib/cni"];
const suffix = randomBytes(3).toString("hex");
const BRIDGE = `pst${suffix}`;
const BRIDGE_SMALL = `pst${suffix}s`;
const BRIDGE_BAD = `pst${suffix}b`;
const NET = `podshim-test-${suffix}`;
const NET_SMALL = `podshim-test-${suffix}-small`;
const NET_BAD = `podshim-test-${suffix}-bad`;

let tmp = "";
let subnet = ""; // "10.2xx.yy" (a /24)
let subnetSmall = "";
let svc: NetworkService;
let svcSmall: NetworkService;
let svcBad: NetworkService;
const logger = createLogger("silent");
const timings = { add: [] as number[], del: [] as number[] };

interface Pod {
  id: string;
  netns: string;
  svc: NetworkService;
  ips: string[];
  result: CniResult;
}
/** Pods whose network or netns may still exist: afterAll removes whatever is left. */
const live = new Map<string, { id: string; netns: string; svc: NetworkService }>();
const listeners: ChildProcess[] = [];
const everyNetns: string[] = [];
let hadHostportChains = true;

/** Two unused /24s in 10.200-249 (node-up uses 10.88/16). */
async function freeSubnets(): Promise<[string, string]> {
  const routes = (await runOk("ip", ["-4", "route", "show", "table", "all"])).stdout + (await runOk("ip", ["-4", "addr"])).stdout;
  const found: string[] = [];
  while (found.length < 2) {
    const s = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}`;
    if (!routes.includes(`${s}.`) && !found.includes(s)) found.push(s);
  }
  return [found[0]!, found[1]!];
}

function conflist(name: string, bridge: string, ipam: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    cniVersion: "1.0.0",
    name,
    plugins: [
      { type: "bridge", bridge, isGateway: true, ipMasq: true, hairpinMode: true, ipam: { type: "host-local", ...ipam }, ...extra },
      { type: "portmap", capabilities: { portMappings: true } },
      { type: "bandwidth", capabilities: { bandwidth: true } },
    ],
  });
}

async function service(name: string, text: string): Promise<NetworkService> {
  const confDir = join(tmp, name, "net.d");
  await mkdir(confDir, { recursive: true });
  await writeFile(join(confDir, "10-test.conflist"), text);
  const s = new NetworkService({ cniConfDir: confDir, cniBinDirs: BIN_DIRS, stateDir: join(tmp, name, "state"), logger });
  await s.start();
  return s;
}

async function newPod(
  on: NetworkService,
  opts: { portMappings?: PodPortMapping[]; annotations?: Record<string, string>; measure?: boolean } = {},
): Promise<Pod> {
  const id = randomBytes(32).toString("hex");
  const netns = await createNetns(netnsNameFor(id));
  everyNetns.push(netns);
  live.set(id, { id, netns, svc: on });
  const started = performance.now();
  const { ips, result } = await on.setUpPod({
    id, name: `pod-${id.slice(0, 6)}`, namespace: "cni-test", uid: `uid-${id.slice(0, 8)}`, netns,
    portMappings: opts.portMappings ?? [], annotations: opts.annotations ?? {},
  });
  if (opts.measure) timings.add.push(performance.now() - started);
  return { id, netns, svc: on, ips, result };
}

async function removePod(pod: { id: string; netns: string; svc: NetworkService }, measure = false): Promise<void> {
  const started = performance.now();
  await pod.svc.tearDownPod(pod.id, pod.netns);
  if (measure) timings.del.push(performance.now() - started);
  await deleteNetns(pod.netns);
  live.delete(pod.id);
}

async function inNs(netns: string, cmd: string, args: string[]): Promise<{ code: number | null; out: string }> {
  const r = await runInNetns(netns, cmd, args, { timeoutMs: 10_000 });
  return { code: r.code, out: `${r.stdout}${r.stderr}` };
}

const ping = (netns: string | undefined, ip: string) =>
  netns ? inNs(netns, "busybox", ["ping", "-c1", "-W2", ip]) : run("busybox", ["ping", "-c1", "-W2", ip], { timeoutMs: 10_000 }).then((r) => ({ code: r.code, out: r.stdout + r.stderr }));

/** A TCP server in a netns answering every connection with `reply`. */
async function listen(netns: string, port: number, reply: string): Promise<void> {
  const child = spawn("nsenter", [`--net=${netns}`, "--", "socat", `TCP-LISTEN:${port},reuseaddr,fork`, `EXEC:/bin/echo ${reply}`], { stdio: "ignore" });
  listeners.push(child);
  for (let i = 0; i < 50; i++) {
    if ((await connect(netns, "127.0.0.1", port)) === reply) return;
    await sleep(50);
  }
  throw new Error(`socat in ${netns} does not answer on ${port}`);
}

/** What a TCP server at host:port answers, from the host (netns undefined) or a netns; "" when nothing. */
async function connect(netns: string | undefined, host: string, port: number): Promise<string> {
  const args = ["-u", "-T3", `TCP:${host}:${port},connect-timeout=2`, "STDOUT"];
  const r = netns ? await runInNetns(netns, "socat", args, { timeoutMs: 10_000 }) : await run("socat", args, { timeoutMs: 10_000 });
  return r.code === 0 ? r.stdout.trim() : "";
}

async function iptablesLines(needle: string): Promise<string[]> {
  const out = (await runOk("iptables-save", [])).stdout;
  return out.split("\n").filter((l) => l.includes(needle));
}

/** A container's rules: those naming it in their comment, and every rule of the per-pod
 * chains those jump to (portmap's CNI-DN-... chain carries no comment of its own). */
async function rulesOf(containerId: string): Promise<string[]> {
  const all = (await runOk("iptables-save", [])).stdout.split("\n");
  const own = all.filter((l) => l.includes(containerId));
  const chains = new Set(own.map((l) => /-j (CNI-(?:DN-)?[0-9a-f]+)\b/.exec(l)?.[1]).filter((c): c is string => c !== undefined));
  return all.filter((l) => own.includes(l) || [...chains].some((c) => l.startsWith(`-A ${c} `)));
}

async function leases(dataDir: string, net: string): Promise<string[]> {
  try {
    return (await readdir(join(dataDir, net))).filter((n) => /^\d+\.\d+\.\d+\.\d+$/.test(n)).sort();
  } catch {
    return [];
  }
}

async function linkExists(name: string): Promise<boolean> {
  return (await run("ip", ["link", "show", "dev", name])).code === 0;
}

/** The host-side veth of a pod, from its ADD result. */
function hostVeth(result: CniResult, bridge: string): string {
  const v = result.interfaces?.find((i) => !i.sandbox && i.name !== bridge && i.name.startsWith("veth"));
  if (!v) throw new Error(`no host veth in ${JSON.stringify(result.interfaces)}`);
  return v.name;
}

const dataDir = (name: string) => join(tmp, name, "ipam");
const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("the CNI integration test needs root");
  tmp = await mkdtemp("/tmp/podshim-cni-it-");
  hadHostportChains = (await runOk("iptables-save", ["-t", "nat"])).stdout.includes(":CNI-HOSTPORT-DNAT");
  [subnet, subnetSmall] = await freeSubnets();
  svc = await service("main", conflist(NET, BRIDGE, { dataDir: dataDir("main"), ranges: [[{ subnet: `${subnet}.0/24` }]], routes: [{ dst: "0.0.0.0/0" }] }));
  // One address only: the second pod finds the range exhausted.
  svcSmall = await service("small", conflist(NET_SMALL, BRIDGE_SMALL, {
    dataDir: dataDir("small"), ranges: [[{ subnet: `${subnetSmall}.0/24`, rangeStart: `${subnetSmall}.10`, rangeEnd: `${subnetSmall}.10` }]],
  }));
  // The bridge plugin refuses this config outright.
  svcBad = await service("bad", conflist(NET_BAD, BRIDGE_BAD, { dataDir: dataDir("bad"), ranges: [[{ subnet: `${subnetSmall}.0/24` }]] }, { mtu: "big" }));
});

afterAll(async () => {
  for (const l of listeners) l.kill("SIGKILL");
  const errors: unknown[] = [];
  for (const pod of [...live.values()]) {
    await removePod(pod).catch((e: unknown) => errors.push(e));
    await deleteNetns(pod.netns).catch((e: unknown) => errors.push(e));
  }
  for (const b of [BRIDGE, BRIDGE_SMALL, BRIDGE_BAD]) if (await linkExists(b)) await run("ip", ["link", "del", b]);
  if (tmp) await rm(tmp, { recursive: true, force: true });
  await removeHostportChains().catch((e: unknown) => errors.push(e));
  if (timings.add.length > 0) {
    console.log(`CNI timings (loopback + bridge/portmap/bandwidth): setUpPod p50 ${p50(timings.add).toFixed(1)} ms (n=${timings.add.length}), ` +
      `tearDownPod p50 ${p50(timings.del).toFixed(1)} ms (n=${timings.del.length}); samples add ${timings.add.map((t) => t.toFixed(0)).join(",")} del ${timings.del.map((t) => t.toFixed(0)).join(",")}`);
  }
  if (errors.length > 0) throw new AggregateError(errors, "CNI test cleanup failed");
});

describe("netns", () => {
  it("creates, recognises and deletes pinned namespaces idempotently", async () => {
    const name = netnsNameFor("f".repeat(64));
    expect(name).toMatch(/^podshim-ffffffffffff-[0-9a-f]{4}$/);
    const path = await createNetns(name);
    try {
      expect(path).toBe(`/run/netns/${name}`);
      expect(await netnsExists(path)).toBe(true);
      await expect(createNetns(name)).rejects.toThrow("already exists");
      const r = await inNs(path, "ip", ["-o", "link"]);
      expect(r.out).toContain("lo:");
      expect(r.out).not.toContain("eth0");
    } finally {
      await deleteNetns(name);
    }
    expect(await netnsExists(path)).toBe(false);
    expect(existsSync(path)).toBe(false);
    await deleteNetns(path);
    await deleteNetns(name);
    // A stale plain file where a pin was is not a namespace, and delete removes it.
    await writeFile(path, "");
    expect(await netnsExists(path)).toBe(false);
    await deleteNetns(path);
    expect(existsSync(path)).toBe(false);
  });
});

describe("CNI with the Debian plugins", () => {
  it("wires two pods that reach each other and the host", async () => {
    const a = await newPod(svc, { measure: true });
    const b = await newPod(svc, { measure: true });
    expect(a.ips).toHaveLength(1);
    expect(b.ips).toHaveLength(1);
    expect(a.ips[0]).not.toBe(b.ips[0]);
    for (const ip of [...a.ips, ...b.ips]) expect(ip.startsWith(`${subnet}.`)).toBe(true);
    expect(await leases(dataDir("main"), NET)).toEqual([...a.ips, ...b.ips].sort());

    // lo is up (the loopback plugin), eth0 has the address.
    expect((await inNs(a.netns, "ip", ["-o", "link", "show", "lo"])).out).toMatch(/<LOOPBACK,UP,LOWER_UP>/);
    expect((await inNs(a.netns, "ip", ["-o", "-4", "addr", "show", "eth0"])).out).toContain(`${a.ips[0]}/24`);

    expect(await ping(a.netns, b.ips[0]!)).toMatchObject({ code: 0 });
    expect(await ping(b.netns, a.ips[0]!)).toMatchObject({ code: 0 });
    expect(await ping(undefined, a.ips[0]!)).toMatchObject({ code: 0 });
    expect(await ping(a.netns, "127.0.0.1")).toMatchObject({ code: 0 });

    await listen(a.netns, 7000, "hello-from-a");
    expect(await connect(b.netns, a.ips[0]!, 7000)).toBe("hello-from-a");
    expect(await connect(undefined, a.ips[0]!, 7000)).toBe("hello-from-a");

    // Masquerade rules name the network and the pod; they go with DEL.
    expect((await iptablesLines(a.id)).length).toBeGreaterThan(0);
    await removePod(a, true);
    await removePod(b, true);
    expect(await iptablesLines(a.id)).toEqual([]);
    expect(await iptablesLines(b.id)).toEqual([]);
    expect(await leases(dataDir("main"), NET)).toEqual([]);
  });

  it("publishes hostPorts with portmap", async () => {
    const port = 20000 + Math.floor(Math.random() * 10000);
    const pod = await newPod(svc, {
      measure: true,
      portMappings: [
        { protocol: 0, containerPort: 7000, hostPort: port, hostIp: "" },
        { protocol: 0, containerPort: 7000, hostPort: port + 1, hostIp: "127.0.0.1" },
        { protocol: 0, containerPort: 7001, hostPort: 0, hostIp: "" },
      ],
    });
    const other = await newPod(svc);
    await listen(pod.netns, 7000, "hello-via-hostport");
    const gateway = `${subnet}.1`;
    const hostIp = (await runOk("ip", ["-4", "-o", "route", "get", "1.1.1.1"])).stdout.match(/ src (\S+)/)?.[1];
    expect(hostIp).toBeDefined();

    const seen = {
      hostToGateway: await connect(undefined, gateway, port),
      hostToHostIp: await connect(undefined, hostIp!, port),
      hostToLoopback: await connect(undefined, "127.0.0.1", port),
      hostToLoopbackOnly: await connect(undefined, "127.0.0.1", port + 1),
      hostIpToLoopbackOnly: await connect(undefined, hostIp!, port + 1),
      podToGateway: await connect(other.netns, gateway, port),
      podToHostIp: await connect(other.netns, hostIp!, port),
      hairpin: await connect(pod.netns, hostIp!, port),
    };
    // What works on this machine (iptables-nft, portmap 1.1.1 with snat on): every path, and
    // a hostIP 127.0.0.1 mapping is reachable on 127.0.0.1 only. portmap sets route_localnet
    // on the bridge and masquerades 127.0.0.0/8 sources, so DNAT from loopback works.
    expect(seen).toEqual({
      hostToGateway: "hello-via-hostport",
      hostToHostIp: "hello-via-hostport",
      hostToLoopback: "hello-via-hostport",
      hostToLoopbackOnly: "hello-via-hostport",
      hostIpToLoopbackOnly: "",
      podToGateway: "hello-via-hostport",
      podToHostIp: "hello-via-hostport",
      hairpin: "hello-via-hostport",
    });

    const rules = await rulesOf(pod.id);
    expect(rules.some((l) => l.includes(`--dport ${port} `) && l.includes(`--to-destination ${pod.ips[0]}:7000`))).toBe(true);
    expect(rules.some((l) => l.includes("-d 127.0.0.1/32") && l.includes(`--dport ${port + 1} `))).toBe(true);
    // hostPort 0 is not published.
    expect(rules.some((l) => l.includes("7001"))).toBe(false);
    await removePod(pod, true);
    await removePod(other, true);
    expect(await rulesOf(pod.id)).toEqual([]);
    expect(await connect(undefined, "127.0.0.1", port)).toBe("");
  });

  it("shapes bandwidth when the pod's annotations ask for it", async () => {
    const pod = await newPod(svc, {
      measure: true,
      annotations: { "kubernetes.io/ingress-bandwidth": "1M", "kubernetes.io/egress-bandwidth": "2Mi" },
    });
    const veth = hostVeth(pod.result, BRIDGE);
    // Ingress (to the pod) is shaped on the host veth's egress...
    const onVeth = (await runOk("tc", ["qdisc", "show", "dev", veth])).stdout;
    expect(onVeth).toMatch(/qdisc tbf 1: root .*rate 1Mbit/);
    // ...egress (from the pod) on an ifb device the veth's ingress is redirected to.
    const ifb = pod.result.interfaces?.find((i) => i.name.startsWith("bwp"))?.name;
    expect(ifb).toBeDefined();
    expect((await runOk("tc", ["qdisc", "show", "dev", ifb!])).stdout).toMatch(/qdisc tbf 1: root .*rate 2097Kbit/);
    await removePod(pod, true);
    expect(await linkExists(ifb!)).toBe(false);
    expect(await linkExists(veth)).toBe(false);

    const plain = await newPod(svc);
    expect(plain.result.interfaces?.some((i) => i.name.startsWith("bwp"))).toBe(false);
    expect((await runOk("tc", ["qdisc", "show", "dev", hostVeth(plain.result, BRIDGE)])).stdout).not.toContain("tbf");
    await removePod(plain);
  });

  it("surfaces an exhausted range verbatim and leaves no lease, veth or cache entry", async () => {
    const first = await newPod(svcSmall);
    expect(first.ips).toEqual([`${subnetSmall}.10`]);
    const err = await newPod(svcSmall).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniPluginError);
    expect((err as Error).message).toBe(
      `CNI plugin bridge failed (ADD): failed to allocate for range 0: no IP addresses available in range set: ${subnetSmall}.10-${subnetSmall}.10`,
    );
    const failed = [...live.values()].find((p) => p.svc === svcSmall && p.id !== first.id)!;
    // bridge 1.1.1 leaves its veth pair behind when IPAM fails; our DEL removed it.
    expect((await inNs(failed.netns, "ip", ["-o", "link"])).out).not.toContain("eth0");
    const onBridge = (await runOk("ip", ["-o", "link", "show", "master", BRIDGE_SMALL])).stdout.trim().split("\n").filter(Boolean);
    expect(onBridge).toHaveLength(1);
    expect(await leases(dataDir("small"), NET_SMALL)).toEqual([`${subnetSmall}.10`]);
    expect(existsSync(join(tmp, "small", "state", "cni", `${failed.id}.json`))).toBe(false);
    expect(await iptablesLines(failed.id)).toEqual([]);
    // The caller's own cleanup may DEL again: fine.
    await removePod(failed);
    await removePod(first);
    expect(await leases(dataDir("small"), NET_SMALL)).toEqual([]);
  });

  it("passes a config error through exactly as the plugin prints it, and tears down once it is fixed", async () => {
    const err = await newPod(svcBad).catch((e: unknown) => e);
    const failed = [...live.values()].find((p) => p.svc === svcBad)!;
    // The same stdin straight to the plugin, for what it says itself.
    const net = await svcBad.loadNetworkConfig();
    if (!net.ok) throw new Error(net.message);
    const stdin = JSON.stringify({ ...net.network.plugins[0], name: NET_BAD, cniVersion: "1.0.0" });
    const direct = await runProgram("/usr/lib/cni/bridge", [], {
      input: stdin, timeoutMs: 10_000, what: "bridge",
      env: cniEnv(process.env, "ADD", { containerId: "direct", netns: failed.netns, ifName: "eth0", args: {}, capabilityArgs: {} }, BIN_DIRS),
    });
    const printed = JSON.parse(direct.stdout) as { msg: string; details?: string };
    expect(printed.msg).toContain("cannot unmarshal string");
    expect((err as Error).message).toBe(`CNI plugin bridge failed (ADD): ${printed.msg}${printed.details ? `: ${printed.details}` : ""}`);
    expect((err as CniPluginError).cause).toBeInstanceOf(Error);

    // DEL cannot parse it either, so the cache entry stays and teardown fails, saying why...
    await expect(svcBad.tearDownPod(failed.id, failed.netns)).rejects.toThrow(`CNI plugin bridge failed (DEL): ${printed.msg}`);
    expect(existsSync(join(tmp, "bad", "state", "cni", `${failed.id}.json`))).toBe(true);
    // ...until the operator fixes the file: the watcher makes the fix visible at once.
    svcBad.watch();
    try {
      await writeFile(join(tmp, "bad", "net.d", "10-test.conflist"), conflist(NET_BAD, BRIDGE_BAD, { dataDir: dataDir("bad"), ranges: [[{ subnet: `${subnetSmall}.0/24` }]] }));
      await sleep(100);
      await removePod(failed);
    } finally {
      svcBad.close();
    }
    expect(existsSync(join(tmp, "bad", "state", "cni", `${failed.id}.json`))).toBe(false);
  });

  it("DEL is idempotent: twice, for an unknown pod, and after the netns is gone", async () => {
    const twice = await newPod(svc);
    await twice.svc.tearDownPod(twice.id, twice.netns);
    await twice.svc.tearDownPod(twice.id, twice.netns);
    await svc.tearDownPod(randomBytes(32).toString("hex"), "");
    await removePod(twice);

    const gone = await newPod(svc, { portMappings: [{ protocol: "TCP", containerPort: 80, hostPort: 20000 + Math.floor(Math.random() * 10000) }] });
    const veth = hostVeth(gone.result, BRIDGE);
    await deleteNetns(gone.netns);
    // The veth pair dies with the namespace.
    expect(await linkExists(veth)).toBe(false);
    await gone.svc.tearDownPod(gone.id, gone.netns);
    expect(await leases(dataDir("main"), NET)).toEqual([]);
    expect(existsSync(join(tmp, "main", "state", "cni", `${gone.id}.json`))).toBe(false);
    // portmap's rules go (it finds them by container id). bridge 1.1.1's masquerade rule
    // does not: its DEL derives the rule from the addresses on the pod's interface, which
    // went with the namespace. Hence tearDownPod before deleteNetns; this is the leak when
    // that order is broken, removed here by hand.
    const left = await iptablesLines(gone.id);
    expect(left.some((l) => l.includes("DNAT") || l.includes("dnat"))).toBe(false);
    expect(left.some((l) => l.includes("MASQUERADE") || l.includes("POSTROUTING"))).toBe(true);
    await removeMasquerade(gone.id);
    expect(await iptablesLines(gone.id)).toEqual([]);
    live.delete(gone.id);
  });

  it("runs 10 ADDs in parallel with distinct addresses, and 10 DELs", async () => {
    const pods = await Promise.all(Array.from({ length: 10 }, () => newPod(svc)));
    const ips = pods.map((p) => p.ips[0]!);
    expect(new Set(ips).size).toBe(10);
    expect(await leases(dataDir("main"), NET)).toEqual([...ips].sort());
    // Spot-check connectivity between two of them.
    expect(await ping(pods[0]!.netns, ips[9]!)).toMatchObject({ code: 0 });
    await Promise.all(pods.map((p) => removePod(p)));
    expect(await leases(dataDir("main"), NET)).toEqual([]);
  });

  it("measures ADD and DEL, the full chain and bridge alone", async () => {
    const loaded = await svc.loadNetworkConfig();
    if (!loaded.ok) throw new Error(loaded.message);
    const chains = { full: loaded.network, bridgeOnly: { ...loaded.network, plugins: loaded.network.plugins.slice(0, 1) } };
    const ms: Record<string, number[]> = {};
    const note = (k: string, t: number) => (ms[k] ??= []).push(t);
    for (let i = 0; i < 8; i++) {
      for (const [name, net] of Object.entries(chains)) {
        const id = randomBytes(32).toString("hex");
        const netns = await createNetns(netnsNameFor(id));
        everyNetns.push(netns);
        live.set(id, { id, netns, svc });
        const rt = { containerId: id, netns, ifName: "eth0", args: { IgnoreUnknown: "1" }, capabilityArgs: {} };
        let t = performance.now();
        await svc.cni.loopbackUp(netns, id);
        note("loopback ADD", performance.now() - t);
        t = performance.now();
        const result = await svc.cni.add(net, rt);
        note(`${name} ADD`, performance.now() - t);
        t = performance.now();
        await svc.cni.del(net, rt, result);
        note(`${name} DEL`, performance.now() - t);
        t = performance.now();
        await deleteNetns(netns);
        note("netns delete", performance.now() - t);
        live.delete(id);
      }
    }
    console.log(`CNI p50 over ${ms["full ADD"]!.length}: ${Object.entries(ms).map(([k, v]) => `${k} ${p50(v).toFixed(1)} ms`).join(", ")}`);
    expect(await leases(dataDir("main"), NET)).toEqual([]);
  });

  it("leaves no namespace, veth, rule or lease behind", async () => {
    expect(live.size).toBe(0);
    const listed = (await runOk("ip", ["netns", "list"])).stdout;
    expect(everyNetns.length).toBeGreaterThan(20);
    for (const path of everyNetns) {
      expect(existsSync(path)).toBe(false);
      expect(listed).not.toContain(path.split("/").pop()!);
    }
    for (const b of [BRIDGE, BRIDGE_SMALL, BRIDGE_BAD]) {
      if (await linkExists(b)) expect((await runOk("ip", ["-o", "link", "show", "master", b])).stdout.trim()).toBe("");
    }
    expect(await iptablesLines(NET)).toEqual([]);
    expect(await leases(dataDir("main"), NET)).toEqual([]);
    expect(await readdir(join(tmp, "main", "state", "cni"))).toEqual([]);
  });
});

/**
 * portmap creates its shared chains (CNI-HOSTPORT-DNAT, -SETMARK, -MASQ and the jumps to
 * them) on first use and never removes them. When this run created them and they hold no
 * pod's rule now, put the host back as it was; when they were there before, or another
 * user of portmap has rules in them, leave them.
 */
async function removeHostportChains(): Promise<void> {
  if (hadHostportChains) return;
  const nat = (await runOk("iptables-save", ["-t", "nat"])).stdout;
  if (/^-A CNI-HOSTPORT-DNAT /m.test(nat) || !nat.includes(":CNI-HOSTPORT-DNAT")) return;
  await run("iptables", ["-t", "nat", "-D", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"]);
  await run("iptables", ["-t", "nat", "-D", "OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"]);
  await run("iptables", ["-t", "nat", "-D", "POSTROUTING", "-m", "comment", "--comment", "CNI portfwd requiring masquerade", "-j", "CNI-HOSTPORT-MASQ"]);
  for (const chain of ["CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ"]) {
    await run("iptables", ["-t", "nat", "-F", chain]);
    await run("iptables", ["-t", "nat", "-X", chain]);
  }
}

/** Removes bridge's masquerade rule and chain for a container by their comment (the
 * manual cleanup of the leak the DEL-after-netns-gone case shows). */
async function removeMasquerade(containerId: string): Promise<void> {
  const lines = await iptablesLines(containerId);
  const chains = new Set<string>();
  for (const l of lines) {
    const m = /^-A POSTROUTING (.*-j (CNI-[0-9a-f]+).*)$/.exec(l);
    if (m) {
      chains.add(m[2]!);
      await runOk("iptables", ["-t", "nat", "-D", "POSTROUTING", ...splitRule(m[1]!)]);
    }
  }
  for (const c of chains) {
    await runOk("iptables", ["-t", "nat", "-F", c]);
    await runOk("iptables", ["-t", "nat", "-X", c]);
  }
}

/** Splits an iptables-save rule into arguments, honouring its double quotes. */
function splitRule(rule: string): string[] {
  const out: string[] = [];
  for (const m of rule.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)) out.push(m[1] !== undefined ? m[1].replace(/\\"/g, '"') : m[2]!);
  return out;
}
