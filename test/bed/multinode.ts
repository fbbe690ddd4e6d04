// A kind-like cluster bed on one machine, without Docker: N nodes (2..4), each a network
// namespace with its own containerd and podshim, linked through a "fabric" namespace that
// holds a bridge and the image registry. Only the network namespace is entered, so every
// process shares the host's mounts and the bed's files are plain paths.
//
//   fabric netns: br0 10.250.0.1/24, docker-registry on 10.250.0.1:5000
//   node i netns: eth0 10.250.0.(10+i)/24 (veth to br0), pod CIDR 10.251.i.0/24 on its own
//                 CNI bridge, a route to every other node's pod CIDR via that node
//
// Pods reach each other across nodes by pod IP without NAT, hostPorts answer on node
// addresses, and the nodes pull their images from the registry like a real cluster would
// (plain HTTP, configured per node in podshim's certs.d). Processes are started detached with
// pid files under the bed dir, so a bed outlives the command that brought it up; `up` starts
// only what is not running and `down` removes everything it finds, each step tolerant of
// parts already gone.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { argAfter, configToml, shimSocketPath } from "./containerd.js";
import { descendants, isAlive, isRunning, listProcesses, mountsUnder, run, runOk, shimsReferencing, sleep, waitGone } from "./proc.js";
import { criClient } from "../support/cri-client.js";
import { nodeFlagsOf } from "./node-flags.js";

export const FABRIC_ADDRESS = "10.250.0.1";
export const REGISTRY = `${FABRIC_ADDRESS}:5000`;
const NODE_NET_PREFIX = 24;
const STOP_GRACE_MS = 10_000;
const CNI_NETWORK = "multinode";

export interface MultinodeOptions {
  /** Everything of the bed lives here (keep it short: unix socket paths are limited). */
  dir: string;
  nodes: number;
  /** docker-registry filesystem storage that already holds the images the nodes will pull. */
  registryStorage: string;
  /** podshim's entry point (dist/main.js). */
  podshimMain: string;
  /** Start podshim with --restrict-oom-score-adj (hosts without CAP_SYS_RESOURCE). */
  restrictOomScoreAdj: boolean;
  /** Image reference of the pause image, as the nodes see it. */
  pauseImage: string;
  logLevel?: string;
  /** Peer mirror on (the default): each node serves on PEER_PORT and asks the others, listed
   * in its peers file. */
  peering?: boolean;
  /** More podshim flags for some nodes, by node index ("1", "2", ...). */
  nodeArgs?: Record<string, string[]>;
}

export const PEER_PORT = 5050;

export interface BedNode {
  index: number;
  netns: string;
  /** The node's address on the fabric (its "InternalIP"). */
  address: string;
  podCidr: string;
  dir: string;
  containerdSocket: string;
  podshimSocket: string;
  /** host-local's lease dir for this node's pod network. */
  ipamDir: string;
  /** Where the kubelet's apiserver would reach exec/attach/port-forward streams. */
  streamAddress: string;
  podshimLog: string;
  containerdLog: string;
  /** host:port of the node's peer mirror. */
  peerAddress: string;
  /** The node's peers file (HOST:PORT per line), re-read by podshim when it changes. */
  peersFile: string;
}

export interface MultinodeBed {
  dir: string;
  fabricNetns: string;
  registry: string;
  nodes: BedNode[];
  options: MultinodeOptions;
}

const STATE_FILE = "bed.json";

function prefixFor(dir: string): string {
  return `psm${createHash("sha256").update(dir).digest("hex").slice(0, 5)}`;
}

export function describeBed(options: MultinodeOptions): MultinodeBed {
  if (!Number.isInteger(options.nodes) || options.nodes < 2 || options.nodes > 4) throw new Error(`nodes must be 2..4, not ${options.nodes}`);
  const prefix = prefixFor(options.dir);
  const nodes: BedNode[] = [];
  for (let i = 1; i <= options.nodes; i++) {
    const dir = join(options.dir, `n${i}`);
    nodes.push({
      index: i,
      netns: `${prefix}-n${i}`,
      address: `10.250.0.${10 + i}`,
      podCidr: `10.251.${i}.0/24`,
      dir,
      containerdSocket: join(dir, "containerd.sock"),
      podshimSocket: join(dir, "podshim.sock"),
      ipamDir: join(dir, "ipam"),
      streamAddress: `10.250.0.${10 + i}:10010`,
      podshimLog: join(dir, "podshim.log"),
      containerdLog: join(dir, "containerd", "containerd.log"),
      peerAddress: `10.250.0.${10 + i}:${PEER_PORT}`,
      peersFile: join(dir, "peers"),
    });
  }
  return { dir: options.dir, fabricNetns: `${prefix}-fabric`, registry: REGISTRY, nodes, options };
}

/** The bed recorded in dir by `up`, if any. */
export async function loadBed(dir: string): Promise<MultinodeBed | undefined> {
  try {
    return describeBed(JSON.parse(await readFile(join(dir, STATE_FILE), "utf8")) as MultinodeOptions);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------
// small helpers

const netnsPath = (name: string): string => `/run/netns/${name}`;

async function netnsList(): Promise<string[]> {
  const res = await run("ip", ["netns", "list"], { timeoutMs: 10_000 });
  return res.stdout.split("\n").map((l) => l.split(" ")[0]!).filter((n) => n !== "");
}

async function ensureNetns(name: string): Promise<void> {
  if (!(await netnsList()).includes(name)) await runOk("ip", ["netns", "add", name], { timeoutMs: 10_000 });
  await runOk("ip", ["-n", name, "link", "set", "lo", "up"], { timeoutMs: 10_000 });
}

async function linkExists(netns: string, link: string): Promise<boolean> {
  return (await run("ip", ["-n", netns, "link", "show", link], { timeoutMs: 10_000 })).code === 0;
}

/** Runs a program inside a network namespace (nothing else entered). */
function inNetns(netns: string, cmd: string, args: readonly string[]): [string, string[]] {
  return ["nsenter", [`--net=${netnsPath(netns)}`, cmd, ...args]];
}

async function readPid(file: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(file, "utf8")).trim());
    // A zombie is gone: a podshim that exited and is not reaped yet must not count as running.
    return Number.isInteger(pid) && pid > 0 && (await isRunning(pid)) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Starts a long-lived process detached from us (own session), its output appended to log. */
async function startDetached(netns: string, cmd: string, args: readonly string[], log: string, pidFile: string): Promise<number> {
  const fd = openSync(log, "a");
  try {
    const [prog, argv] = inNetns(netns, cmd, args);
    // nsenter execs the program, so the pid is the program's.
    const child = spawn(prog, argv, { detached: true, stdio: ["ignore", fd, fd], env: process.env });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once("error", reject);
      child.once("spawn", () => resolve(child.pid!));
    });
    child.unref();
    await writeFile(pidFile, `${pid}\n`);
    return pid;
  } finally {
    closeSync(fd);
  }
}

async function stopPid(pid: number | undefined): Promise<void> {
  if (pid === undefined) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  if ((await waitGone([pid], STOP_GRACE_MS)).length > 0) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
    await waitGone([pid], 5_000);
  }
}

async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>, onTimeout: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} did not come up within ${timeoutMs} ms:\n${await onTimeout()}`);
    await sleep(50);
  }
}

async function tail(path: string, lines = 20): Promise<string> {
  return (await readFile(path, "utf8").catch(() => "(no log)")).trimEnd().split("\n").slice(-lines).join("\n");
}

// ---------------------------------------------------------------------------------------
// fabric: bridge + registry

async function fabricUp(bed: MultinodeBed): Promise<void> {
  const ns = bed.fabricNetns;
  await ensureNetns(ns);
  if (!(await linkExists(ns, "br0"))) await runOk("ip", ["-n", ns, "link", "add", "br0", "type", "bridge"], { timeoutMs: 10_000 });
  await runOk("ip", ["-n", ns, "addr", "replace", `${FABRIC_ADDRESS}/${NODE_NET_PREFIX}`, "dev", "br0"], { timeoutMs: 10_000 });
  await runOk("ip", ["-n", ns, "link", "set", "br0", "up"], { timeoutMs: 10_000 });

  const dir = join(bed.dir, "registry");
  await mkdir(dir, { recursive: true });
  const pidFile = join(dir, "registry.pid");
  if (await readPid(pidFile)) return;
  const config = join(dir, "config.yml");
  const log = join(dir, "registry.log");
  await writeFile(config, [
    "version: 0.1",
    "log:",
    "  level: info",
    // The access log is on: tests count the blob requests that reach the registry.
    "  accesslog:",
    "    disabled: false",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${JSON.stringify(bed.options.registryStorage)}`,
    "http:",
    `  addr: ${REGISTRY}`,
    "",
  ].join("\n"));
  const offset = await sizeOf(log);
  const pid = await startDetached(ns, "docker-registry", ["serve", config], log, pidFile);
  await waitFor("the fabric registry", 20_000, async () => {
    if (!isAlive(pid)) throw new Error(`docker-registry exited:\n${await tail(log)}`);
    return (await readFrom(log, offset)).includes("listening on");
  }, () => tail(log));
}

export const registryLogPath = (bed: MultinodeBed): string => join(bed.dir, "registry", "registry.log");

/** Stops the fabric's registry (a registry outage); `registryUp` starts it again. */
export async function registryDown(bed: MultinodeBed): Promise<void> {
  await stopPid(await readPid(join(bed.dir, "registry", "registry.pid")));
}

export async function registryUp(bed: MultinodeBed): Promise<void> {
  await fabricUp(bed);
}

/** The blob GETs in the registry's access log from byte `offset` on, by digest; `from` counts
 * only those of one client address. */
export async function registryBlobGets(bed: MultinodeBed, offset = 0, from?: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const m of (await readFrom(registryLogPath(bed), offset)).matchAll(/^(\S+) .*?"GET \/v2\/[^ "]+\/blobs\/(sha(?:256|384|512):[a-f0-9]+) HTTP/gm)) {
    if (from !== undefined && m[1] !== from && !m[1]!.startsWith(`${from}:`)) continue;
    out.set(m[2]!, (out.get(m[2]!) ?? 0) + 1);
  }
  return out;
}

/**
 * Makes a request of its own to the registry (from the fabric) and waits until the access log
 * shows it: every request that finished before this call is in the log by then.
 */
export async function registryLogMark(bed: MultinodeBed): Promise<void> {
  const mark = `mark${Date.now()}${Math.random().toString(36).slice(2)}`;
  await run("nsenter", [`--net=/run/netns/${bed.fabricNetns}`, "curl", "-s", "-o", "/dev/null", `http://${REGISTRY}/v2/${mark}/tags/list`], { timeoutMs: 10_000 });
  await waitFor("the registry's access log", 10_000, async () => (await readFrom(registryLogPath(bed), 0)).includes(mark), () => tail(registryLogPath(bed)));
}

/** Where the registry's log ends now: count from here. */
export async function registryLogOffset(bed: MultinodeBed): Promise<number> {
  return sizeOf(registryLogPath(bed));
}

/** Replaces a node's peers file (podshim re-reads it at its next pull). */
export async function setPeers(node: BedNode, peers: readonly string[]): Promise<void> {
  const tmp = `${node.peersFile}.tmp`;
  await writeFile(tmp, peers.map((p) => `${p}\n`).join(""));
  await rename(tmp, node.peersFile);
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function readFrom(path: string, offset: number): Promise<string> {
  try {
    return (await readFile(path)).subarray(offset).toString("utf8");
  } catch {
    return "";
  }
}

// ---------------------------------------------------------------------------------------
// nodes

async function nodeNetworkUp(bed: MultinodeBed, node: BedNode): Promise<void> {
  await ensureNetns(node.netns);
  const port = `n${node.index}`;
  if (!(await linkExists(bed.fabricNetns, port))) {
    // Created in the fabric with its peer straight into the node: no address or link ever
    // appears in the host's namespace.
    await run("ip", ["-n", node.netns, "link", "del", "eth0"], { timeoutMs: 10_000 });
    await runOk("ip", ["-n", bed.fabricNetns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", node.netns], { timeoutMs: 10_000 });
  }
  await runOk("ip", ["-n", bed.fabricNetns, "link", "set", port, "master", "br0", "up"], { timeoutMs: 10_000 });
  await runOk("ip", ["-n", node.netns, "addr", "replace", `${node.address}/${NODE_NET_PREFIX}`, "dev", "eth0"], { timeoutMs: 10_000 });
  await runOk("ip", ["-n", node.netns, "link", "set", "eth0", "up"], { timeoutMs: 10_000 });
  for (const other of bed.nodes) {
    if (other.index === node.index) continue;
    await runOk("ip", ["-n", node.netns, "route", "replace", other.podCidr, "via", other.address], { timeoutMs: 10_000 });
  }
  const [prog, args] = inNetns(node.netns, "sysctl", ["-q", "-w", "net.ipv4.ip_forward=1"]);
  await runOk(prog, args, { timeoutMs: 10_000 });
}

async function nodeFiles(bed: MultinodeBed, node: BedNode): Promise<void> {
  await mkdir(join(node.dir, "net.d"), { recursive: true });
  await mkdir(node.ipamDir, { recursive: true });
  await writeFile(join(node.dir, "net.d", "10-multinode.conflist"), JSON.stringify({
    cniVersion: "1.0.0",
    name: CNI_NETWORK,
    plugins: [
      {
        // No masquerading: pods talk to pods on other nodes with their own addresses, as
        // Kubernetes' network model asks.
        type: "bridge", bridge: "cni0", isGateway: true, ipMasq: false, hairpinMode: true,
        ipam: { type: "host-local", dataDir: node.ipamDir, ranges: [[{ subnet: node.podCidr }]], routes: [{ dst: "0.0.0.0/0" }] },
      },
      { type: "portmap", capabilities: { portMappings: true } },
    ],
  }, null, 2));
  if (bed.options.peering ?? true) await setPeers(node, bed.nodes.filter((n) => n !== node).map((n) => n.peerAddress));
  const hostDir = join(node.dir, "certs.d", REGISTRY);
  await mkdir(hostDir, { recursive: true });
  await writeFile(join(hostDir, "hosts.toml"), [
    `server = "http://${REGISTRY}"`,
    "",
    `[host."http://${REGISTRY}"]`,
    '  capabilities = ["pull", "resolve"]',
    "",
  ].join("\n"));
}

async function containerdUp(node: BedNode): Promise<void> {
  const dir = join(node.dir, "containerd");
  const pidFile = join(node.dir, "containerd.pid");
  if (await readPid(pidFile)) return;
  await mkdir(join(dir, "tmp"), { recursive: true });
  const config = join(dir, "config.toml");
  await writeFile(config, configToml(dir, node.containerdSocket, "info"));
  const pid = await startDetached(node.netns, "containerd", ["--config", config], node.containerdLog, pidFile);
  await waitFor(`containerd of node ${node.index}`, 30_000, async () => {
    if (!isAlive(pid)) throw new Error(`containerd of node ${node.index} exited:\n${await tail(node.containerdLog)}`);
    if (!existsSync(node.containerdSocket)) return false;
    return (await run("ctr", ["--address", node.containerdSocket, "--connect-timeout", "2s", "version"], { timeoutMs: 10_000 })).code === 0;
  }, () => tail(node.containerdLog));
}

export function podshimArgsFor(bed: MultinodeBed, node: BedNode): string[] {
  const o = bed.options;
  return [
    ...nodeFlagsOf(o.podshimMain),
    o.podshimMain,
    "--listen", node.podshimSocket,
    "--containerd", node.containerdSocket,
    "--namespace", "podshim",
    "--root", join(node.dir, "podshim", "root"),
    "--state", join(node.dir, "podshim", "state"),
    "--cni-conf-dir", join(node.dir, "net.d"),
    "--cni-bin-dir", "/usr/lib/cni",
    "--registry-config-dir", join(node.dir, "certs.d"),
    "--pause-image", o.pauseImage,
    "--stream-address", node.streamAddress,
    "--config", "/dev/null",
    "--log-level", o.logLevel ?? "info",
    ...(o.restrictOomScoreAdj ? ["--restrict-oom-score-adj"] : []),
    ...((o.peering ?? true) ? ["--peer-address", node.peerAddress, "--peers-file", node.peersFile] : []),
    ...(o.nodeArgs?.[String(node.index)] ?? []),
  ];
}

/** Starts the node's podshim unless it runs; resolves once it serves CRI. */
export async function podshimUp(bed: MultinodeBed, node: BedNode): Promise<number> {
  const pidFile = join(node.dir, "podshim.pid");
  const running = await readPid(pidFile);
  if (running) return running;
  const offset = await sizeOf(node.podshimLog);
  const pid = await startDetached(node.netns, process.execPath, podshimArgsFor(bed, node), node.podshimLog, pidFile);
  await waitFor(`podshim of node ${node.index}`, 20_000, async () => {
    if (!isAlive(pid)) throw new Error(`podshim of node ${node.index} exited:\n${await readFrom(node.podshimLog, offset)}`);
    return (await readFrom(node.podshimLog, offset)).includes("podshim is serving CRI");
  }, () => readFrom(node.podshimLog, offset));
  return pid;
}

/** Stops the node's podshim (SIGTERM; pods keep running in containerd) and starts it again with
 * the bed's current options. */
export async function podshimRestart(bed: MultinodeBed, node: BedNode): Promise<number> {
  await stopPid(await readPid(join(node.dir, "podshim.pid")));
  return podshimUp(bed, node);
}

export async function podshimPid(node: BedNode): Promise<number | undefined> {
  return readPid(join(node.dir, "podshim.pid"));
}

export async function nodeUp(bed: MultinodeBed, node: BedNode): Promise<void> {
  await mkdir(node.dir, { recursive: true });
  await nodeNetworkUp(bed, node);
  await nodeFiles(bed, node);
  await containerdUp(node);
  await podshimUp(bed, node);
}

/** Brings the bed up, or whatever part of it is not running. */
export async function multinodeUp(options: MultinodeOptions): Promise<MultinodeBed> {
  const bed = describeBed(options);
  await mkdir(bed.dir, { recursive: true });
  await writeFile(join(bed.dir, STATE_FILE), JSON.stringify(options, null, 2));
  await fabricUp(bed);
  await Promise.all(bed.nodes.map((n) => nodeUp(bed, n)));
  return bed;
}

// ---------------------------------------------------------------------------------------
// teardown

/** Removes every pod through the node's podshim, so CNI DEL gives their IPs back. */
async function drain(node: BedNode): Promise<void> {
  const cri = criClient(node.podshimSocket);
  try {
    const pods: Array<{ id: string }> = (await cri.runtime("ListPodSandbox", {}, 30_000)).items;
    await Promise.all(pods.map(async (p) => {
      await cri.runtime("StopPodSandbox", { pod_sandbox_id: p.id }, 120_000);
      await cri.runtime("RemovePodSandbox", { pod_sandbox_id: p.id }, 120_000);
    }));
  } finally {
    cri.close();
  }
}

/** host-local's leases of the node: one file per address in use. */
export async function leasedAddresses(node: BedNode): Promise<string[]> {
  try {
    return (await readdir(join(node.ipamDir, CNI_NETWORK))).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
  } catch {
    return [];
  }
}

/**
 * Takes a node down: its pods removed through podshim (started again for that if it had
 * died while containerd still runs), podshim and containerd stopped, every shim and container
 * of the node killed, its mounts and namespace removed. `keepDir` leaves its files for a look.
 */
export async function nodeDown(bed: MultinodeBed, node: BedNode, opts: { keepDir?: boolean } = {}): Promise<void> {
  const errors: unknown[] = [];
  const step = async (f: () => Promise<void>): Promise<void> => {
    try {
      await f();
    } catch (err) {
      errors.push(err);
    }
  };
  const containerdPid = await readPid(join(node.dir, "containerd.pid"));
  if (containerdPid) {
    await step(async () => {
      await podshimUp(bed, node);
      await drain(node);
    });
  }
  await step(async () => stopPid(await readPid(join(node.dir, "podshim.pid"))));
  await step(async () => stopPid(containerdPid));
  await step(async () => {
    const shims = await shimsReferencing(`${node.dir}/`);
    const victims = descendants(await listProcesses(), shims.map((s) => s.pid));
    for (const pid of victims) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    await waitGone(victims, 10_000);
    for (const shim of shims) {
      const [ns, id, address] = [argAfter(shim.argv, "-namespace"), argAfter(shim.argv, "-id"), argAfter(shim.argv, "-address")];
      if (ns && id && address) await rm(shimSocketPath(address, ns, id), { force: true });
    }
  });
  await step(async () => {
    for (const point of await mountsUnder(node.dir)) await run("umount", ["-l", point], { timeoutMs: 10_000 });
  });
  await step(async () => {
    if ((await netnsList()).includes(node.netns)) await runOk("ip", ["netns", "del", node.netns], { timeoutMs: 10_000 });
  });
  if (!opts.keepDir) await step(() => rm(node.dir, { recursive: true, force: true, maxRetries: 3 }));
  if (errors.length > 0) throw new AggregateError(errors, `taking node ${node.index} down failed`);
}

/** Takes the whole bed down and removes its dir; safe to run on a half-built or absent bed. */
export async function multinodeDown(dir: string): Promise<void> {
  const bed = await loadBed(dir);
  const errors: unknown[] = [];
  if (bed) {
    for (const result of await Promise.allSettled(bed.nodes.map((n) => nodeDown(bed, n)))) if (result.status === "rejected") errors.push(result.reason);
    try {
      await stopPid(await readPid(join(bed.dir, "registry", "registry.pid")));
    } catch (err) {
      errors.push(err);
    }
  }
  // Namespaces of this bed that no state file mentions any more (an interrupted up).
  const prefix = `${prefixFor(dir)}-`;
  for (const ns of await netnsList()) {
    if (ns.startsWith(prefix)) await run("ip", ["netns", "del", ns], { timeoutMs: 10_000 });
  }
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  if (errors.length > 0) throw new AggregateError(errors, "multi-node bed teardown failed");
}

/** The pid of a running podshim of a node, read synchronously (for quick checks in tests). */
export function podshimPidSync(node: BedNode): number | undefined {
  try {
    const pid = Number(readFileSync(join(node.dir, "podshim.pid"), "utf8").trim());
    return isAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}
