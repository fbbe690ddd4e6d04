// A seeded, deterministic fuzz of every CRI RPC against a real podshim: hostile strings (NUL,
// 70 KB, '..', absolute paths, shell metacharacters), negative and huge numbers, unknown ids,
// bad CIDRs and references. Every answer must be a caller's-mistake code or OK (UNAVAILABLE
// only for the unreachable registry, UNIMPLEMENTED only for the checkpoint calls), podshim must
// be the same process afterwards, and nothing may be left behind. PODSHIM_FUZZ_SEED picks
// another sequence; PODSHIM_FUZZ_COUNT another length.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { status as Status, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { testNetwork, type TestNetwork } from "../support/cni.js";
import { startPodshim, type PodshimHandle } from "../support/podshim.js";

const bed = inject("bed");
const SEED = Number(process.env.PODSHIM_FUZZ_SEED ?? 1414);
const COUNT = Number(process.env.PODSHIM_FUZZ_COUNT ?? 6000);
const CANARY = `/tmp/podshim-fuzz-canary-${SEED}`;

const definition = loadSync("cri/runtime/v1/api.proto", { includeDirs: [fileURLToPath(new URL("../../proto", import.meta.url))], keepCase: true });
const methodsOf = (service: string) => Object.entries(definition[service] as Record<string, { responseStream: boolean }>).map(([name, m]) => ({ name, stream: m.responseStream }));
const RUNTIME_RPCS = methodsOf("runtime.v1.RuntimeService");
const IMAGE_RPCS = methodsOf("runtime.v1.ImageService");

/** mulberry32: small, fast, and the same sequence everywhere for one seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let base: string;
let net: TestNetwork;
let podshim: PodshimHandle;
let pod: string;
let podConfig: Record<string, unknown>;
let ctr: string;
let pid: number | undefined;
const acceptedPods = new Set<string>();
const acceptedContainers = new Set<string>();

function ctrList(what: string): string[] {
  const r = spawnSync("ctr", ["-a", bed.containerdSocket, "-n", podshim.namespace, what, "ls"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ctr ${what} ls: ${r.stderr}`);
  // First column, header dropped.
  return r.stdout.split("\n").slice(1).map((l) => l.split(/\s+/)[0]!).filter((l) => l !== "").sort();
}
const mountsUnder = (dir: string) => readFileSync("/proc/self/mounts", "utf8").split("\n").map((l) => l.split(" ")[1] ?? "").filter((m) => m.startsWith(`${dir}/`)).sort();

beforeAll(async () => {
  rmSync(CANARY, { recursive: true, force: true });
  base = mkdtempSync(join(bed.tmpDir, "fuzz-"));
  net = testNetwork(base);
  // Every registry but the bed's resolves to a closed port: no fuzz input reaches the network.
  const certs = join(base, "certs.d");
  mkdirSync(join(certs, "_default"), { recursive: true });
  writeFileSync(join(certs, "_default/hosts.toml"), `server = "http://127.0.0.1:1"\n`);
  mkdirSync(join(certs, bed.registryHost));
  writeFileSync(join(certs, bed.registryHost, "hosts.toml"), `server = "http://${bed.registryHost}"\n`);
  podshim = await startPodshim({ containerdSocket: bed.containerdSocket, baseDir: base, cniConfDir: net.confDir, extraArgs: ["--pause-image", bed.images.pause, "--registry-config-dir", certs] });
  pid = podshim.process.pid;
  await podshim.cri.image("PullImage", { image: { image: bed.images.busybox } }, 120_000);
  podConfig = {
    metadata: { name: "fuzz", uid: `fuzz-${SEED}`, namespace: "default", attempt: 0 },
    log_directory: join(base, "logs"),
    linux: { cgroup_parent: `${bed.cgroupParent}/pod-fuzz` },
  };
  pod = (await podshim.cri.runtime("RunPodSandbox", { config: podConfig }, 120_000)).pod_sandbox_id;
  ctr = (await podshim.cri.runtime("CreateContainer", {
    pod_sandbox_id: pod, sandbox_config: podConfig,
    config: { metadata: { name: "target" }, image: { image: bed.images.busybox }, command: ["sleep", "3600"], log_path: "target.log" },
  }, 60_000)).container_id;
  await podshim.cri.runtime("StartContainer", { container_id: ctr }, 60_000);
}, 180_000);

afterAll(async () => {
  for (const id of acceptedContainers) await podshim.cri.runtime("RemoveContainer", { container_id: id }, 60_000).catch(() => undefined);
  for (const id of acceptedPods) await podshim.cri.runtime("RemovePodSandbox", { pod_sandbox_id: id }, 60_000).catch(() => undefined);
  if (pod) await podshim.cri.runtime("RemovePodSandbox", { pod_sandbox_id: pod }, 60_000).catch((err: unknown) => console.error("RemovePodSandbox failed", err));
  await podshim?.cleanup();
  await net?.cleanup();
  if (base) rmSync(base, { recursive: true, force: true });
  rmSync(CANARY, { recursive: true, force: true });
});

/** The generator: one request per call for a given RPC, from a seeded stream. */
function generator(r: () => number) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const chance = (p: number) => r() < p;
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const big = "x".repeat(70_000);
  const HOSTILE = [
    "", "\0", "a\0b", "pod\0", big, "..", "../../../../etc/passwd", "/etc/shadow", `${CANARY}/abs`, `../../../../../..${CANARY}/rel`,
    `$(mkdir -p ${CANARY}/shell)`, "`id`", "; rm -rf /", "| cat /etc/passwd", "&& reboot", "a b", "\n", "\r\nnameserver 6.6.6.6",
    "%s%s%n", "${HOME}", "é中文", "\ud800", "-rf", "--help", "*", "?", "~root", "\\", "'\"", "A".repeat(254), "a".repeat(64),
    "UPPER", "with.dots", "-leading", "trailing-", "\t", "/", "./x", "x/../../y", "con:1", "::", "0", "-1",
  ];
  const word = () => Array.from({ length: int(1, 12) }, () => pick("abcdefghijklmnopqrstuvwxyz0123456789-.".split(""))).join("");
  const randomString = () => (chance(0.2) ? String.fromCharCode(...Array.from({ length: int(0, 40) }, () => int(0, 0x7f))) : word());
  const hostile = () => (chance(0.75) ? pick(HOSTILE) : randomString());
  const NUMBERS = [0, 1, -1, 2, 65535, 65536, 70000, -2147483648, 2147483647, 4294967295, 4294967296, "-9223372036854775808", "9223372036854775807", 1000, 262145, -1000, 1001];
  const number = () => pick(NUMBERS);
  const PORTS = [0, -1, 1, 80, 65535, 65536, 70000, 2147483647, -2147483648];
  const hex = () => Array.from({ length: 64 }, () => pick("0123456789abcdef".split(""))).join("");
  // Ids resolve by unique prefix, as crictl users type them: a foreign id that happens to be
  // a prefix of the suite's own pod or container (a hostile "0", a random word "8d") would
  // stop or remove it, so those are drawn again.
  const foreign = (draw: () => string) => {
    for (;;) {
      const id = draw();
      if (id === "" || (!pod.startsWith(id) && !ctr.startsWith(id))) return id;
    }
  };
  const sandboxIdFor = (own: boolean) => (own ? pick([pod, pod.slice(0, 12), hostile(), hex()]) : foreign(() => pick([hostile(), hex(), "0".repeat(64), hex().slice(0, 5)])));
  const containerIdFor = (own: boolean) => (own ? pick([ctr, ctr.slice(0, 12), hostile(), hex()]) : foreign(() => pick([hostile(), hex(), "0".repeat(64)])));
  const map = () => (chance(0.5) ? {} : Object.fromEntries(Array.from({ length: int(1, 3) }, () => [hostile(), hostile()])));
  const CIDRS = ["10.0.0.0/33", "300.1.1.1/24", "::/129", "abc", "10.0.0.0", "10.0.0.0/8,fd00::/8", "-1", "10.10.0.0/16", "fd00::/64", "", "1.2.3.4/-1", "1.2.3.4/08"];
  const REFS = [
    () => hostile(), () => `127.0.0.1:1/${word()}:${word()}`, () => `${bed.registryHost}/nope-${int(0, 99)}:latest`,
    () => `${bed.registryHost}/${hostile()}`, () => `${bed.registryHost}/busybox@sha256:${hex()}`, () => `UPPER/Case:tag`,
    () => `${bed.registryHost}/a:${"t".repeat(200)}`, () => `${bed.registryHost}/a@sha256:short`,
  ];
  const ref = () => pick(REFS)();
  const resources = () => ({
    cpu_period: number(), cpu_quota: number(), cpu_shares: number(), memory_limit_in_bytes: number(), oom_score_adj: number(),
    cpuset_cpus: chance(0.5) ? "" : hostile(), cpuset_mems: chance(0.5) ? "" : hostile(),
    unified: chance(0.7) ? {} : { [hostile()]: hostile() },
    hugepage_limits: chance(0.8) ? [] : [{ page_size: hostile(), limit: number() }],
  });
  const profile = () => pick([undefined, { profile_type: int(-1, 3), localhost_ref: chance(0.5) ? "" : hostile() }]);

  function podSandboxConfig(i: number): Record<string, unknown> {
    const c: Record<string, any> = {
      metadata: { name: `p${i}`, uid: `u${SEED}-${i}`, namespace: "default", attempt: 0 },
      log_directory: join(base, "logs", `p${i}`),
      linux: { cgroup_parent: `${bed.cgroupParent}/pod-f${i}` },
    };
    // Mutate one to three fields, so most requests are one mistake away from valid.
    for (let n = int(1, 3); n > 0; n--) {
      switch (int(0, 13)) {
        case 0: c.metadata.name = hostile(); break;
        case 1: c.metadata.namespace = hostile(); break;
        case 2: c.metadata.uid = hostile(); break;
        case 3: c.metadata.attempt = number(); break;
        case 4: c.hostname = hostile(); break;
        case 5: c.log_directory = hostile(); break;
        case 6: c.dns_config = { servers: [hostile()], searches: [hostile()], options: [hostile()] }; break;
        case 7: c.port_mappings = [{ protocol: int(-1, 3), container_port: pick(PORTS), host_port: pick(PORTS), host_ip: hostile() }]; break;
        case 8: c.labels = map(); c.annotations = map(); break;
        case 9: c.linux.cgroup_parent = pick([`${bed.cgroupParent}/../../x`, `${bed.cgroupParent}/\0`, "../..", `${bed.cgroupParent}/${"a".repeat(5000)}`]); break;
        case 10: c.linux.sysctls = { [hostile()]: hostile() }; break;
        case 11: c.linux.security_context = { run_as_user: { value: number() }, supplemental_groups: [number()], seccomp: profile(), apparmor: profile(), seccomp_profile_path: pick(["", hostile(), "localhost/../../x"]) }; break;
        case 12: c.linux.resources = resources(); break;
        case 13: c.linux.security_context = { namespace_options: { network: int(-1, 4), pid: int(-1, 4), ipc: int(-1, 4), target_id: hostile() } }; break;
      }
    }
    return c;
  }

  function containerConfig(i: number): Record<string, unknown> {
    const c: Record<string, any> = { metadata: { name: `c${i}` }, image: { image: bed.images.busybox }, command: ["true"], log_path: `c${i}.log` };
    for (let n = int(1, 3); n > 0; n--) {
      switch (int(0, 12)) {
        case 0: c.metadata.name = hostile(); break;
        case 1: c.image = { image: chance(0.5) ? hostile() : ref() }; break;
        case 2: c.command = [hostile()]; c.args = [hostile(), hostile()]; break;
        case 3: c.working_dir = hostile(); break;
        case 4: c.envs = [{ key: hostile(), value: Buffer.from(hostile()) }]; break;
        case 5: c.mounts = [{ container_path: hostile(), host_path: hostile(), propagation: int(-1, 3) }]; break;
        case 6: c.log_path = hostile(); break;
        case 7: c.devices = [{ container_path: hostile(), host_path: hostile(), permissions: hostile() }]; break;
        case 8: c.linux = { resources: resources() }; break;
        case 9: c.linux = { security_context: { capabilities: { add_capabilities: [hostile()], drop_capabilities: [hostile()] }, run_as_user: { value: number() }, run_as_username: hostile(), seccomp: profile(), apparmor: profile(), masked_paths: [hostile()], readonly_paths: [hostile()] } }; break;
        case 10: c.labels = map(); c.annotations = map(); break;
        case 11: c.linux = { security_context: { namespace_options: { pid: int(-1, 4), target_id: hostile() } } }; break;
        case 12: c.stop_signal = int(-1, 70); c.tty = chance(0.5); c.stdin = chance(0.5); break;
      }
    }
    return c;
  }

  const filter = () => ({ id: chance(0.5) ? "" : hostile(), pod_sandbox_id: chance(0.5) ? "" : hostile(), label_selector: map(), state: chance(0.5) ? undefined : { state: int(-1, 5) } });

  const runtime: Record<string, (i: number) => object> = {
    Version: () => ({ version: hostile() }),
    Status: () => ({ verbose: chance(0.5) }),
    RuntimeConfig: () => ({}),
    UpdateRuntimeConfig: () => ({ runtime_config: { network_config: { pod_cidr: chance(0.7) ? pick(CIDRS) : hostile() } } }),
    RunPodSandbox: (i) => ({ config: chance(0.03) ? podConfig : podSandboxConfig(i), runtime_handler: chance(0.9) ? "" : hostile() }),
    StopPodSandbox: () => ({ pod_sandbox_id: sandboxIdFor(false) }),
    RemovePodSandbox: () => ({ pod_sandbox_id: sandboxIdFor(false) }),
    PodSandboxStatus: () => ({ pod_sandbox_id: sandboxIdFor(true), verbose: chance(0.5) }),
    ListPodSandbox: () => ({ filter: filter() }),
    StreamPodSandboxes: () => ({ filter: filter() }),
    CreateContainer: (i) => ({ pod_sandbox_id: chance(0.85) ? pod : sandboxIdFor(false), config: containerConfig(i), sandbox_config: podConfig }),
    StartContainer: () => ({ container_id: containerIdFor(false) }),
    StopContainer: () => ({ container_id: containerIdFor(false), timeout: number() }),
    RemoveContainer: () => ({ container_id: containerIdFor(false) }),
    ContainerStatus: () => ({ container_id: containerIdFor(true), verbose: chance(0.5) }),
    ListContainers: () => ({ filter: filter() }),
    StreamContainers: () => ({ filter: filter() }),
    UpdateContainerResources: () => ({ container_id: containerIdFor(true), linux: resources(), annotations: map() }),
    ReopenContainerLog: () => ({ container_id: containerIdFor(chance(0.3)) }),
    // Commands that exist finish at once; the rest are refused before they run.
    ExecSync: () => ({ container_id: containerIdFor(true), cmd: pick([[hostile()], ["true"], ["sh", "-c", hostile()], [], ["echo", hostile()], ["/no/such/binary"]]), timeout: pick([0, 5, -1, 4294967296]) }),
    Exec: () => ({ container_id: containerIdFor(true), cmd: chance(0.3) ? [] : [hostile()], tty: chance(0.5), stdin: chance(0.5), stdout: chance(0.5), stderr: chance(0.5) }),
    Attach: () => ({ container_id: containerIdFor(true), tty: chance(0.5), stdin: chance(0.5), stdout: chance(0.5), stderr: chance(0.5) }),
    PortForward: () => ({ pod_sandbox_id: sandboxIdFor(true), port: chance(0.5) ? [] : [pick(PORTS), pick(PORTS)] }),
    ContainerStats: () => ({ container_id: containerIdFor(true) }),
    ListContainerStats: () => ({ filter: { id: chance(0.5) ? "" : hostile(), pod_sandbox_id: chance(0.5) ? "" : hostile(), label_selector: map() } }),
    StreamContainerStats: () => ({ filter: { id: hostile(), pod_sandbox_id: "", label_selector: map() } }),
    PodSandboxStats: () => ({ pod_sandbox_id: sandboxIdFor(true) }),
    ListPodSandboxStats: () => ({ filter: { id: chance(0.5) ? "" : hostile(), label_selector: map() } }),
    StreamPodSandboxStats: () => ({ filter: { id: hostile(), label_selector: map() } }),
    ListMetricDescriptors: () => ({}),
    ListPodSandboxMetrics: () => ({}),
    StreamPodSandboxMetrics: () => ({}),
    UpdatePodSandboxResources: () => ({ pod_sandbox_id: sandboxIdFor(true), overhead: resources(), resources: resources() }),
    CheckpointContainer: () => ({ container_id: containerIdFor(true), location: hostile(), timeout: number() }),
    CheckpointPod: () => ({ pod_sandbox_id: sandboxIdFor(true), path: hostile() }),
    RestorePod: () => ({ pod_sandbox_id: sandboxIdFor(true), path: hostile() }),
    GetContainerEvents: () => ({}),
  };
  const auth = () => (chance(0.7) ? undefined : { username: hostile(), password: hostile(), auth: hostile(), server_address: hostile(), identity_token: hostile(), registry_token: hostile() });
  const image: Record<string, (i: number) => object> = {
    PullImage: () => ({ image: { image: chance(0.05) ? bed.images.busybox : ref(), annotations: map() }, auth: auth(), sandbox_config: chance(0.2) ? podConfig : undefined }),
    ImageStatus: () => ({ image: { image: chance(0.1) ? bed.images.busybox : ref() }, verbose: chance(0.5) }),
    ListImages: () => ({ filter: chance(0.5) ? undefined : { image: { image: ref() } } }),
    // Never the images the suite uses itself.
    RemoveImage: () => ({ image: { image: ref() } }),
    ImageFsInfo: () => ({}),
    StreamImages: () => ({ filter: chance(0.5) ? undefined : { image: { image: ref() } } }),
  };
  return { runtime, image, pick, int };
}

const CODE_NAMES: Record<number, string> = { [-1]: "NO_ANSWER", ...Object.fromEntries(Object.entries(Status).filter(([, v]) => typeof v === "number").map(([k, v]) => [v as number, k])) };
const ALLOWED = new Set([Status.OK, Status.INVALID_ARGUMENT, Status.NOT_FOUND, Status.ALREADY_EXISTS, Status.FAILED_PRECONDITION]);
const CHECKPOINT_RPCS = new Set(["CheckpointContainer", "CheckpointPod", "RestorePod"]);

async function call(service: "runtime" | "image", rpc: string, stream: boolean, req: object): Promise<{ code: number; details: string; res?: any }> {
  try {
    if (!stream) return { code: Status.OK, details: "", res: await podshim.cri[service](rpc, req, 60_000) };
    const s = podshim.cri[service === "runtime" ? "runtimeStream" : "imageStream"](rpc, req);
    return await new Promise((resolve) => {
      let done = false;
      const finish = (code: number, details: string) => {
        if (done) return;
        done = true;
        clearTimeout(guard);
        resolve({ code, details });
      };
      // A stream that never answers is a failure to report, not a test that hangs.
      const guard = setTimeout(() => {
        finish(-1, "no answer within 30 s");
        s.cancel();
      }, 30_000);
      s.on("data", () => undefined);
      s.on("error", (err: ServiceError) => finish(err.code, err.details));
      s.on("end", () => finish(Status.OK, ""));
      // GetContainerEvents never ends by itself: once a later call has made the round trip,
      // the subscription was answered or refused; the client then cancels it.
      if (rpc === "GetContainerEvents") {
        void podshim.cri.runtime("Version", {}).finally(() => {
          finish(Status.OK, "subscribed");
          s.cancel();
        });
      }
    });
  } catch (err) {
    const e = err as ServiceError;
    return { code: e.code, details: e.details };
  }
}

describe("fuzz", () => {
  it(`answers ${COUNT} hostile requests (seed ${SEED}) with a caller's-mistake code, stays up and leaves nothing behind`, async () => {
    const before = { containers: ctrList("containers"), snapshots: ctrList("snapshots"), mounts: mountsUnder(podshim.dir) };
    const g = generator(rng(SEED));
    const rpcs = [...RUNTIME_RPCS.map((m) => ({ ...m, service: "runtime" as const })), ...IMAGE_RPCS.map((m) => ({ ...m, service: "image" as const }))];
    for (const m of rpcs) expect(g[m.service][m.name], `no generator for ${m.name}`).toBeDefined();
    // Calls that do real work when a mutation happens to be valid get a smaller share.
    const weight = (name: string) => (name === "RunPodSandbox" ? 4 : name === "CreateContainer" ? 6 : name === "PullImage" ? 3 : name === "GetContainerEvents" ? 0.5 : 2);
    const plan: typeof rpcs = [];
    for (const m of rpcs) for (let n = Math.round(weight(m.name) * 2); n > 0; n--) plan.push(m);
    const table = new Map<string, Map<number, number>>();
    const bad: string[] = [];
    const started = Date.now();
    for (let i = 0; i < COUNT; i++) {
      const m = i < rpcs.length ? rpcs[i]! : g.pick(plan);
      const req = g[m.service][m.name]!(i);
      const { code, details, res } = await call(m.service, m.name, m.stream, req);
      const row = table.get(m.name) ?? new Map<number, number>();
      row.set(code, (row.get(code) ?? 0) + 1);
      table.set(m.name, row);
      // A repeat of the suite's own pod config may be answered with that pod: it is not the fuzz's.
      if (m.name === "RunPodSandbox" && code === Status.OK && res.pod_sandbox_id !== pod) acceptedPods.add(res.pod_sandbox_id);
      if (m.name === "CreateContainer" && code === Status.OK) acceptedContainers.add(res.container_id);
      const ok = ALLOWED.has(code)
        || (code === Status.UNAVAILABLE && m.name === "PullImage" && /127\.0\.0\.1:1\b/.test(details))
        || (code === Status.UNIMPLEMENTED && CHECKPOINT_RPCS.has(m.name));
      if (!ok && bad.length < 40) bad.push(`#${i} ${m.name} -> ${CODE_NAMES[code]}: ${details.slice(0, 300)} | ${JSON.stringify(req).slice(0, 300)}`);
    }
    const elapsed = Date.now() - started;

    const codes = [...new Set([...table.values()].flatMap((r) => [...r.keys()]))].sort((a, b) => a - b);
    const header = ["rpc", ...codes.map((c) => CODE_NAMES[c]!)];
    const rows = [...table.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, r]) => [name, ...codes.map((c) => String(r.get(c) ?? ""))]);
    const totals = ["total", ...codes.map((c) => String([...table.values()].reduce((s, r) => s + (r.get(c) ?? 0), 0)))];
    const widths = header.map((_, i) => Math.max(...[header, ...rows, totals].map((r) => r[i]!.length)));
    const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
    console.log([`fuzz: ${COUNT} requests, seed ${SEED}, ${table.size} RPCs, ${elapsed} ms`, line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line), line(totals)].join("\n"));
    expect(bad).toEqual([]);
    expect(table.size).toBe(rpcs.length);

    // Same process, still serving; the pod and its container untouched.
    expect(podshim.process.pid).toBe(pid);
    expect(podshim.process.exitCode).toBeNull();
    expect((await podshim.cri.runtime("ContainerStatus", { container_id: ctr })).status.state).toBe("CONTAINER_RUNNING");

    // Whatever the fuzz created, removed; then nothing of it is left.
    for (const id of acceptedContainers) await podshim.cri.runtime("RemoveContainer", { container_id: id }, 60_000);
    for (const id of acceptedPods) await podshim.cri.runtime("RemovePodSandbox", { pod_sandbox_id: id }, 60_000);
    console.log(`fuzz: ${acceptedPods.size} pods and ${acceptedContainers.size} containers were valid requests; removed`);
    acceptedContainers.clear();
    const netns = existsSync("/run/netns") ? readdirSync("/run/netns") : [];
    for (const id of acceptedPods) expect(netns.filter((n) => n.startsWith(`podshim-${id.slice(0, 12)}-`))).toEqual([]);
    acceptedPods.clear();
    expect({ containers: ctrList("containers"), snapshots: ctrList("snapshots"), mounts: mountsUnder(podshim.dir) }).toEqual(before);
    expect(existsSync(CANARY)).toBe(false);
  }, 600_000);
});
