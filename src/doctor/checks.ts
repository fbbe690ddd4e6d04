// `podshim doctor`: what a node needs for podshim to run pods, checked one fact at a time, each
// with the fix an operator can apply. Read-only apart from one scratch network namespace
// (created and deleted to prove /run/netns works).
import { access, constants, readFile, readdir, statfs, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { pino } from "pino";
import type { Config } from "../config/options.js";
import { DEFAULT_RUNTIME_TYPE, cgroupDriverProblem } from "../config/runtimes.js";
import { ContainerdClient } from "../containerd/client.js";
import { VersionService } from "../gen/containerd/services/version/v1/version.js";
import { NamespacesService } from "../gen/containerd/services/namespaces/v1/namespace.js";
import { ContainersService } from "../gen/containerd/services/containers/v1/containers.js";
import { ImagesService } from "../gen/containerd/services/images/v1/images.js";
import { isNotFound, messageOf } from "../errors/errors.js";
import { loadCniNetwork } from "../network/cni-config.js";
import { NETNS_RUN_DIR, createNetns, deleteNetns } from "../network/netns.js";
import { runProgram, withSbinPath } from "../util/exec.js";
import { parseImageRef, refString } from "../distribution/reference.js";
import { RegistryClient } from "../registry/client.js";
import { findPauseBinary } from "../image/builtin-pause.js";
import { cgroupLayout } from "../node/facts.js";

export type CheckStatus = "ok" | "warn" | "fail";

export interface CheckResult {
  name: string;
  status: CheckStatus;
  detail: string;
  /** What to do about a warn or fail. */
  fix?: string;
}

const CAP_SYS_RESOURCE = 24;
const TIMEOUT_MS = 5000;
const MIN_FREE_FAIL = 256 * 1024 * 1024;
const MIN_FREE_WARN = 2 * 1024 * 1024 * 1024;

const ok = (name: string, detail: string): CheckResult => ({ name, status: "ok", detail });
const warn = (name: string, detail: string, fix: string): CheckResult => ({ name, status: "warn", detail, fix });
const fail = (name: string, detail: string, fix: string): CheckResult => ({ name, status: "fail", detail, fix });

/** The first executable called `name` on PATH (with the sbin dirs added, as podshim runs helpers). */
export async function which(name: string): Promise<string | undefined> {
  if (name.includes("/")) return (await isExecutable(name)) ? name : undefined;
  for (const dir of (withSbinPath(process.env).PATH ?? "").split(":")) {
    const p = join(dir, name);
    if (await isExecutable(p)) return p;
  }
  return undefined;
}

async function isExecutable(p: string): Promise<boolean> {
  try {
    if (!(await stat(p)).isFile()) return false;
    await access(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runProgram(cmd, args, { timeoutMs: TIMEOUT_MS, what: `${cmd} ${args.join(" ")}`, env: withSbinPath(process.env) })
    .catch((err: unknown) => ({ code: null, stdout: "", stderr: messageOf(err) }));
}

export async function runChecks(config: Config): Promise<CheckResult[]> {
  const silent = pino({ level: "silent" });
  const client = new ContainerdClient({ socket: config.containerd, namespace: config.namespace, logger: silent, defaultTimeoutMs: TIMEOUT_MS });
  try {
    const results: CheckResult[] = [];
    const containerd = await checkContainerd(client, config);
    results.push(containerd);
    const reachable = containerd.status === "ok";
    results.push(reachable ? await checkNamespace(client, config) : warn("namespace", "not checked: containerd is unreachable", "fix containerd first"));
    results.push(...(await checkHandlers(config)));
    results.push(await checkCni(config));
    results.push(...(await checkTools()));
    results.push(await checkCgroups(config));
    results.push(await checkCapSysResource(config));
    results.push(await checkIpForward());
    results.push(await checkNetnsDir());
    results.push(await checkFreeSpace(config.root));
    results.push(reachable ? await checkLeaks(client, config) : warn("leaks", "not checked: containerd is unreachable", "fix containerd first"));
    results.push(await checkPauseImage(client, config, reachable));
    return results;
  } finally {
    client.close();
  }
}

async function checkContainerd(client: ContainerdClient, config: Config): Promise<CheckResult> {
  try {
    const v = await client.call(VersionService.version, {}, { namespace: null, timeoutMs: 2000 });
    return ok("containerd", `reachable at ${config.containerd}, version ${v.version} (revision ${v.revision || "unknown"})`);
  } catch (err) {
    return fail("containerd", messageOf(err), "start containerd, or point --containerd at its socket");
  }
}

async function checkNamespace(client: ContainerdClient, config: Config): Promise<CheckResult> {
  try {
    await client.call(NamespacesService.get, { name: config.namespace }, { namespace: null });
    return ok("namespace", `containerd namespace ${config.namespace} exists`);
  } catch (err) {
    if (isNotFound(err)) return warn("namespace", `containerd namespace ${config.namespace} does not exist yet`, "nothing to do if podshim has never run here: it creates the namespace at start");
    return fail("namespace", `cannot read containerd namespace ${config.namespace}: ${messageOf(err)}`, "check containerd's log");
  }
}

async function checkHandlers(config: Config): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  const binaries = new Map<string, string[]>();
  const shims = new Set<string>();
  for (const [name, h] of Object.entries(config.runtimes)) {
    // io.containerd.runc.v2 -> containerd-shim-runc-v2, the name containerd looks for on PATH.
    const m = /^io\.containerd\.(.+)\.(v\d+)$/.exec(h.runtimeType);
    if (m) shims.add(`containerd-shim-${m[1]!.replace(/\./g, "-")}-${m[2]}`);
    if (h.runtimeType !== DEFAULT_RUNTIME_TYPE) continue;
    const bin = h.options.binaryName || "runc";
    binaries.set(bin, [...(binaries.get(bin) ?? []), name === "" ? "(default)" : name]);
  }
  for (const shim of shims) {
    const path = await which(shim);
    out.push(path ? ok("shim", `${shim} at ${path}`) : fail("shim", `${shim} not found on PATH`, `install the containerd shim (Debian: containerd) or fix the handler's runtime_type`));
  }
  for (const [bin, handlers] of binaries) {
    const name = `runtime ${bin}`;
    const path = await which(bin);
    if (!path) {
      out.push(fail(name, `${bin} (handlers ${handlers.join(", ")}) not found`, `install it (Debian: apt-get install runc) or fix BinaryName`));
      continue;
    }
    const version = (await run(path, ["--version"])).stdout.split("\n")[0]?.trim() || "version unknown";
    const features = await run(path, ["features"]);
    if (features.code !== 0) {
      out.push(warn(name, `${path}: ${version}; \`features\` failed: ${(features.stderr || features.stdout).trim().split("\n")[0]}`, "runc 1.1 or later reports features; podshim then assumes none (no rro mounts)"));
      continue;
    }
    let summary = "features answered";
    try {
      const f = JSON.parse(features.stdout) as { mountOptions?: string[]; linux?: { namespaces?: string[]; seccomp?: { enabled?: boolean }; apparmor?: { enabled?: boolean } } };
      summary = [
        `rro ${f.mountOptions?.includes("rro") ? "yes" : "no"}`,
        `seccomp ${f.linux?.seccomp?.enabled ? "yes" : "no"}`,
        `namespaces ${f.linux?.namespaces?.length ?? 0}`,
      ].join(", ");
    } catch {
      // A runtime that prints something other than runc's JSON still answered.
    }
    out.push(ok(name, `${path}: ${version}; features: ${summary} (handlers ${handlers.join(", ")})`));
  }
  return out;
}

async function checkCni(config: Config): Promise<CheckResult> {
  const res = await loadCniNetwork(config.cniConfDir, config.cniBinDirs);
  if (res.ok) {
    const plugins = res.network.plugins.map((p) => p.type).join(", ");
    return ok("cni", `network ${res.network.name} from ${res.network.file} (plugins ${plugins}, all found in ${config.cniBinDirs.join(":")})`);
  }
  const fix = /not found|missing|no plugin/i.test(res.message)
    ? `install the missing plugin binaries into one of ${config.cniBinDirs.join(":")} (Debian: apt-get install containernetworking-plugins) or set --cni-bin-dir`
    : `write a network config (.conflist) into ${config.cniConfDir}, e.g. a bridge network with host-local IPAM (scripts/node-up.sh writes one)`;
  return fail("cni", res.message, fix);
}

async function checkTools(): Promise<CheckResult[]> {
  const tools: Array<[string, string, CheckStatus]> = [
    ["ip", "iproute2", "fail"],
    ["nsenter", "util-linux", "fail"],
    ["mount", "mount (util-linux)", "fail"],
    ["socat", "socat (only port-forward needs it)", "warn"],
  ];
  const out: CheckResult[] = [];
  for (const [tool, pkg, severity] of tools) {
    const path = await which(tool);
    if (path) out.push(ok(`tool ${tool}`, path));
    else out.push({ name: `tool ${tool}`, status: severity, detail: `${tool} not found on PATH`, fix: `apt-get install ${pkg.split(" ")[0]}` });
  }
  return out;
}

async function checkCgroups(config: Config): Promise<CheckResult> {
  const layout = await cgroupLayout();
  const problem = cgroupDriverProblem(config.cgroupDriver, config.runtimes);
  if (problem) return fail("cgroups", `${layout} hierarchy; ${problem.problem}`, problem.fix);
  if (config.cgroupDriver === "systemd" && !(await exists("/run/systemd/system"))) {
    return fail("cgroups", `${layout} hierarchy; --cgroup-driver is systemd but systemd is not running`, "use --cgroup-driver cgroupfs on a node without systemd");
  }
  if (layout === "none") return fail("cgroups", "no cgroup hierarchy mounted at /sys/fs/cgroup", "mount cgroup v2 (or v1 controllers) at /sys/fs/cgroup");
  return ok("cgroups", `${layout} hierarchy; driver ${config.cgroupDriver} matches every runc handler's SystemdCgroup`);
}

async function checkCapSysResource(config: Config): Promise<CheckResult> {
  const status = await readFile("/proc/self/status", "utf8").catch(() => "");
  const hex = /^CapBnd:\s*([0-9a-f]+)/m.exec(status)?.[1];
  const has = hex !== undefined && ((BigInt(`0x${hex}`) >> BigInt(CAP_SYS_RESOURCE)) & 1n) === 1n;
  if (has) return ok("CAP_SYS_RESOURCE", "present: oom_score_adj can be lowered");
  if (config.restrictOomScoreAdj) return ok("CAP_SYS_RESOURCE", "absent from the bounding set; --restrict-oom-score-adj is set, so podshim never asks for a lower oom_score_adj");
  return fail("CAP_SYS_RESOURCE", "absent from the bounding set: runc fails to start pods asking for a lower oom_score_adj", "run podshim with --restrict-oom-score-adj (restrict_oom_score_adj = true)");
}

async function checkIpForward(): Promise<CheckResult> {
  const v = (await readFile("/proc/sys/net/ipv4/ip_forward", "utf8").catch(() => "")).trim();
  if (v === "1") return ok("ip_forward", "net.ipv4.ip_forward = 1");
  return warn("ip_forward", `net.ipv4.ip_forward = ${v || "unknown"}: pods cannot reach beyond the node unless the CNI plugin enables it`, "sysctl -w net.ipv4.ip_forward=1 (and persist it in /etc/sysctl.d)");
}

async function checkNetnsDir(): Promise<CheckResult> {
  const name = `podshim-doctor-${randomBytes(3).toString("hex")}`;
  try {
    const path = await createNetns(name);
    await deleteNetns(path);
    return ok("netns", `${NETNS_RUN_DIR} is mountable (created and removed ${name})`);
  } catch (err) {
    await deleteNetns(name).catch(() => undefined);
    return fail("netns", `cannot pin a network namespace under ${NETNS_RUN_DIR}: ${messageOf(err)}`, `run as root with ${NETNS_RUN_DIR} on a writable filesystem that allows bind mounts (shared propagation); install iproute2`);
  }
}

async function checkFreeSpace(root: string): Promise<CheckResult> {
  let dir = root;
  while (!(await exists(dir)) && dir !== "/") dir = dirname(dir);
  try {
    const s = await statfs(dir);
    const free = s.bavail * s.bsize;
    const text = `${(free / 1024 ** 3).toFixed(1)} GiB free under ${dir}${dir === root ? "" : ` (${root} does not exist yet)`}`;
    if (free < MIN_FREE_FAIL) return fail("disk", text, `free space under ${root} (container state and logs live there)`);
    if (free < MIN_FREE_WARN) return warn("disk", text, `free space under ${root}; below 2 GiB pods may fail to start`);
    return ok("disk", text);
  } catch (err) {
    return warn("disk", `cannot statfs ${dir}: ${messageOf(err)}`, "check --root");
  }
}

async function checkLeaks(client: ContainerdClient, config: Config): Promise<CheckResult> {
  const ids = (await client.call(ContainersService.list, { filters: [] })).containers.map((c) => c.id);
  const known = (prefix: string) => ids.some((id) => id.startsWith(prefix));
  // Pods' netns are named podshim-<first 12 of the sandbox id>-<random>; another podshim on
  // the node (another namespace) shares the prefix, so a leak is a warning, never a failure.
  const netns = (await readdir(NETNS_RUN_DIR).catch(() => [] as string[]))
    .filter((n) => /^podshim-[0-9a-f]{12}-[0-9a-f]{4}$/.test(n) && !known(n.slice(8, 20)));
  const shmDir = join(config.state, "sandboxes");
  const mounts = (await readFile("/proc/self/mounts", "utf8")).split("\n").map((l) => l.split(" ")[1] ?? "")
    .filter((m) => m.startsWith(`${shmDir}/`))
    .filter((m) => !known(m.slice(shmDir.length + 1).split("/")[0] ?? ""));
  if (netns.length === 0 && mounts.length === 0) return ok("leaks", `no podshim network namespace or mount without a sandbox in namespace ${config.namespace}`);
  const what = [...netns.map((n) => `${NETNS_RUN_DIR}/${n}`), ...mounts];
  return warn("leaks", `${what.length} without a sandbox in namespace ${config.namespace}: ${what.slice(0, 5).join(", ")}${what.length > 5 ? ", ..." : ""}`,
    "if no other podshim runs on this node: ip netns delete <name> / umount <path> (podshim's recovery sweeps its own)");
}

async function checkPauseImage(client: ContainerdClient, config: Config, reachable: boolean): Promise<CheckResult> {
  let name: string;
  try {
    name = refString(parseImageRef(config.pauseImage));
  } catch (err) {
    return fail("pause image", `--pause-image ${config.pauseImage}: ${messageOf(err)}`, "give a valid image reference");
  }
  if (reachable) {
    try {
      await client.call(ImagesService.get, { name });
      return ok("pause image", `${name} present in namespace ${config.namespace}`);
    } catch (err) {
      if (!isNotFound(err)) return warn("pause image", `cannot look up ${name}: ${messageOf(err)}`, "check containerd's log");
    }
  }
  const registry = new RegistryClient({ configDir: config.registryConfigDir, logger: pino({ level: "silent" }) });
  try {
    await registry.resolve(parseImageRef(config.pauseImage), undefined, AbortSignal.timeout(10_000));
    return ok("pause image", `${name} not present yet, but pullable`);
  } catch (err) {
    const builtin = findPauseBinary();
    if (builtin) return warn("pause image", `${name} not present and not pullable (${messageOf(err)}); podshim will load its built-in pause image under that name`, "nothing needed; or make the registry reachable / mirror it in --registry-config-dir");
    return fail("pause image", `${name} not present and not pullable: ${messageOf(err)}`, "make the registry reachable (mirror in --registry-config-dir), or import the image into containerd's namespace");
  } finally {
    registry.close();
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/** The report's lines: one per check, the fix on the same line. */
export function formatResults(results: readonly CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.name.length));
  return results.map((r) => `${r.status.padEnd(4)}  ${r.name.padEnd(width)}  ${r.detail}${r.fix ? `  -> fix: ${r.fix}` : ""}\n`).join("");
}
