// One cgroup's CPU, memory and task counters, read straight from cgroupfs: no containerd or
// shim round trip (containerd's CRI plugin asks every shim for task metrics, which is what
// makes its ListContainerStats cost ~300 ms at 200 containers).
//
// The parsers and the text -> numbers step are pure; `readCgroup` only decides which files
// to read and reads them in parallel, without blocking the event loop.
import { readPseudoFile, readPseudoFiles, type ReadText } from "./read.js";

/** A mounted cgroup hierarchy: where it is mounted and which cgroup its root shows. */
export interface CgroupMount {
  dir: string;
  /** The mountinfo root: "/" unless only a subtree is mounted (a cgroup namespace, a bind). */
  root: string;
}

/** The v1 controllers stats read. */
export type V1Controller = "cpu" | "cpuacct" | "memory" | "pids";
const V1_CONTROLLERS: readonly V1Controller[] = ["cpu", "cpuacct", "memory", "pids"];

export type CgroupLayout =
  | { version: 1; controllers: Partial<Record<V1Controller, CgroupMount>> }
  | { version: 2; unified: CgroupMount };

/** Pressure stall information of one resource (cgroup v2 only). */
export interface PsiLine {
  avg10: number;
  avg60: number;
  avg300: number;
  /** Microseconds stalled, cumulative. */
  total: bigint;
}
export interface Psi {
  some?: PsiLine;
  full?: PsiLine;
}

export interface CpuStats {
  /** Cumulative CPU time of every task in the cgroup, nanoseconds. */
  usageNs: bigint;
  userNs?: bigint;
  systemNs?: bigint;
  /** CFS quota enforcement: elapsed periods, throttled periods, time throttled (ns). */
  periods?: bigint;
  throttledPeriods?: bigint;
  throttledNs?: bigint;
  psi?: Psi;
}

export interface MemoryStats {
  usage: bigint;
  /** Absent when unlimited. */
  limit?: bigint;
  /** usage - inactive_file, never below 0: what the kubelet evicts and OOM-ranks on. */
  workingSet: bigint;
  rss?: bigint;
  cache?: bigint;
  mappedFile?: bigint;
  activeFile?: bigint;
  inactiveFile?: bigint;
  pgfault?: bigint;
  pgmajfault?: bigint;
  swap?: bigint;
  /** Absent when unlimited or unknown (v1 has no swap-only limit). */
  swapLimit?: bigint;
  maxUsage?: bigint;
  /** v1 only: times usage hit the limit. */
  failcnt?: bigint;
  psi?: Psi;
}

export interface CgroupStats {
  cpu?: CpuStats;
  memory?: MemoryStats;
  /** Tasks (threads included) in the cgroup and below, from pids.current. */
  pids?: bigint;
  ioPsi?: Psi;
}

/** What to read beyond the CRI stats fields. */
export interface CgroupQuery {
  /** user/system split, throttling, max usage, failcnt: what the metrics need. */
  detail?: boolean;
  pids?: boolean;
}

// ---------------------------------------------------------------------------------------
// Layout

function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * The cgroup layout from /proc/self/mountinfo. A host with v1 memory or cpuacct controllers
 * counts as v1 even when a cgroup2 hierarchy is mounted on the side (the hybrid layout, where
 * runc puts limits and usage in the v1 controllers and the cgroup2 mount holds none). Without
 * them it is pure v2: the cgroup2 mount (the one at /sys/fs/cgroup when there are several,
 * which is where /sys/fs/cgroup/cgroup.controllers exists). Undefined: no cgroups at all.
 */
export function parseMountInfo(text: string): CgroupLayout | undefined {
  const v1: Partial<Record<V1Controller, CgroupMount>> = {};
  const v2: CgroupMount[] = [];
  for (const line of text.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(" ");
    const right = line.slice(sep + 3).split(" ");
    if (left.length < 6 || right.length < 3) continue;
    const mount = { root: unescapeMountField(left[3]!), dir: unescapeMountField(left[4]!) };
    if (right[0] === "cgroup2") {
      v2.push(mount);
    } else if (right[0] === "cgroup") {
      const opts = new Set(right[2]!.split(","));
      for (const c of V1_CONTROLLERS) {
        // A controller mounted twice (a bind mount of a subtree): the whole hierarchy wins.
        if (opts.has(c) && (!v1[c] || (v1[c]!.root !== "/" && mount.root === "/"))) v1[c] = mount;
      }
    }
  }
  if (v1.memory || v1.cpuacct) return { version: 1, controllers: v1 };
  if (v2.length === 0) return undefined;
  return { version: 2, unified: v2.find((m) => m.dir === "/sys/fs/cgroup") ?? v2[0]! };
}

/** The layout of this host, read once per process by the stats service. */
export async function detectCgroupLayout(mountinfo = "/proc/self/mountinfo"): Promise<CgroupLayout | undefined> {
  const text = await readPseudoFile(mountinfo);
  if (text !== undefined) return parseMountInfo(text);
  // No procfs view (should not happen on Linux): fall back to the usual mount points.
  if ((await readPseudoFile("/sys/fs/cgroup/cgroup.controllers")) !== undefined) {
    return { version: 2, unified: { dir: "/sys/fs/cgroup", root: "/" } };
  }
  const controllers: Partial<Record<V1Controller, CgroupMount>> = {};
  for (const c of V1_CONTROLLERS) controllers[c] = { dir: `/sys/fs/cgroup/${c}`, root: "/" };
  return { version: 1, controllers };
}

/**
 * The cgroup a process belongs to per hierarchy, from /proc/<pid>/cgroup: v1 controllers by
 * name ("cpu,cpuacct" lines give both), named hierarchies as "name=systemd", v2 under "".
 */
export function parseProcCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const first = line.indexOf(":");
    const second = line.indexOf(":", first + 1);
    if (first < 0 || second < 0) continue;
    const names = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    for (const n of names.split(",")) out.set(n, path);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Paths

/**
 * A systemd slice name as a cgroup path: each dash opens a nested slice, so
 * "kubepods-burstable-pod1.slice" is /kubepods.slice/kubepods-burstable.slice/
 * kubepods-burstable-pod1.slice, and "-.slice" is the root. This is systemd's own rule,
 * which runc applies to the slice part of a systemd cgroupsPath.
 */
export function expandSlice(slice: string): string | undefined {
  if (!slice.endsWith(".slice") || slice.includes("/")) return undefined;
  const name = slice.slice(0, -".slice".length);
  if (name === "-") return "/";
  if (name === "" || name.startsWith("-") || name.endsWith("-") || name.includes("--")) return undefined;
  let path = "";
  let prefix = "";
  for (const part of name.split("-")) {
    prefix = prefix ? `${prefix}-${part}` : part;
    path += `/${prefix}.slice`;
  }
  return path;
}

/**
 * The cgroup path (from the hierarchy's root) of a cgroupsPath as podshim writes it into OCI
 * specs, or of a pod's cgroup parent:
 * - "slice:prefix:name" (systemd driver): runc's unit <prefix>-<name>.scope inside the
 *   expanded slice (system.slice when the slice is empty); a name that is itself a slice
 *   stands alone;
 * - a bare "<name>.slice" (a systemd cgroup parent given as a unit name): the expanded slice;
 * - anything else (cgroupfs driver, or a kubelet parent, which the kubelet sends as a full
 *   path with either driver): the path itself, made absolute.
 * Undefined for "" or a malformed systemd form.
 */
export function resolveCgroupPath(spec: string): string | undefined {
  if (spec === "") return undefined;
  if (spec.includes(":")) {
    const parts = spec.split(":");
    if (parts.length !== 3) return undefined;
    const [slice, prefix, name] = parts as [string, string, string];
    if (name === "") return undefined;
    if (name.endsWith(".slice")) return expandSlice(name);
    const parent = expandSlice(slice || "system.slice");
    if (parent === undefined) return undefined;
    const unit = prefix ? `${prefix}-${name}.scope` : `${name}.scope`;
    return `${parent === "/" ? "" : parent}/${unit}`;
  }
  if (!spec.includes("/") && spec.endsWith(".slice")) return expandSlice(spec);
  const trimmed = spec.replace(/\/+$/, "");
  if (trimmed === "") return "/";
  return trimmed.startsWith("/") ? trimmed : `/${trimmed}`;
}

/** The directory of a cgroup in a mounted hierarchy. */
export function cgroupDir(mount: CgroupMount, path: string): string {
  let rel = path;
  if (mount.root !== "/" && (path === mount.root || path.startsWith(`${mount.root}/`))) rel = path.slice(mount.root.length);
  return rel === "/" || rel === "" ? mount.dir : `${mount.dir}${rel}`;
}

// ---------------------------------------------------------------------------------------
// Parsers (pure)

const UINT = /^\d+$/;

/** A file holding one unsigned number; undefined when it holds anything else. */
export function parseUint(text: string | undefined): bigint | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  return UINT.test(t) ? BigInt(t) : undefined;
}

// The kernel rounds "no limit" down to a page multiple near 2^63 in v1; anything above 2^62
// is taken as unlimited, the threshold the kubelet uses too.
const UNLIMITED_ABOVE = 1n << 62n;

/** A limit file: v2 "max", or a v1 value near 2^63, is no limit (undefined). */
export function parseLimit(text: string | undefined): bigint | undefined {
  const v = parseUint(text);
  return v === undefined || v > UNLIMITED_ABOVE ? undefined : v;
}

/** "key value" lines (memory.stat, cpu.stat, cpuacct.stat); malformed lines are skipped. */
export function parseKeyedValues(text: string | undefined): Map<string, bigint> {
  const out = new Map<string, bigint>();
  if (text === undefined) return out;
  for (const line of text.split("\n")) {
    const sp = line.indexOf(" ");
    if (sp <= 0) continue;
    const value = line.slice(sp + 1).trim();
    if (UINT.test(value)) out.set(line.slice(0, sp), BigInt(value));
  }
  return out;
}

function parsePsiLine(fields: string[]): PsiLine | undefined {
  const kv = new Map(fields.map((f) => f.split("=") as [string, string]));
  const avg10 = Number(kv.get("avg10"));
  const avg60 = Number(kv.get("avg60"));
  const avg300 = Number(kv.get("avg300"));
  const total = kv.get("total");
  if (![avg10, avg60, avg300].every(Number.isFinite) || total === undefined || !UINT.test(total)) return undefined;
  return { avg10, avg60, avg300, total: BigInt(total) };
}

/** A *.pressure file: "some avg10=.. avg60=.. avg300=.. total=.." and the same for "full". */
export function parsePsi(text: string | undefined): Psi | undefined {
  if (text === undefined) return undefined;
  const out: Psi = {};
  for (const line of text.split("\n")) {
    const [kind, ...fields] = line.trim().split(/\s+/);
    if (kind !== "some" && kind !== "full") continue;
    const parsed = parsePsiLine(fields);
    if (parsed) out[kind] = parsed;
  }
  return out.some || out.full ? out : undefined;
}

function workingSet(usage: bigint, inactiveFile: bigint | undefined): bigint {
  const ws = usage - (inactiveFile ?? 0n);
  return ws < 0n ? 0n : ws;
}

/** Drops the keys whose value is undefined, so optional fields are absent, not undefined. */
function defined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

export const V1_FILES = [
  "cpuacct.usage", "cpuacct.usage_user", "cpuacct.usage_sys", "cpu.stat",
  "memory.usage_in_bytes", "memory.limit_in_bytes", "memory.max_usage_in_bytes", "memory.failcnt", "memory.stat",
  "pids.current",
] as const;
export type V1File = (typeof V1_FILES)[number];

/**
 * cgroup v1 file texts to stats. memory.stat's total_* keys count the cgroup and everything
 * below it, which is what a pod cgroup needs (for a container's leaf cgroup they equal the
 * plain keys); kernels without them fall back to the plain keys. Swap is total_swap, present
 * only with swap accounting (the same number memsw.usage - usage would give).
 */
export function v1Stats(files: Partial<Record<V1File, string>>): CgroupStats {
  const out: CgroupStats = {};
  const usageNs = parseUint(files["cpuacct.usage"]);
  if (usageNs !== undefined) {
    const throttle = parseKeyedValues(files["cpu.stat"]);
    out.cpu = defined({
      usageNs,
      userNs: parseUint(files["cpuacct.usage_user"]),
      systemNs: parseUint(files["cpuacct.usage_sys"]),
      periods: throttle.get("nr_periods"),
      throttledPeriods: throttle.get("nr_throttled"),
      throttledNs: throttle.get("throttled_time"),
    });
  }
  const usage = parseUint(files["memory.usage_in_bytes"]);
  if (usage !== undefined) {
    const stat = parseKeyedValues(files["memory.stat"]);
    const get = (k: string) => stat.get(`total_${k}`) ?? stat.get(k);
    const inactiveFile = get("inactive_file");
    out.memory = defined({
      usage,
      limit: parseLimit(files["memory.limit_in_bytes"]),
      workingSet: workingSet(usage, inactiveFile),
      rss: get("rss"),
      cache: get("cache"),
      mappedFile: get("mapped_file"),
      activeFile: get("active_file"),
      inactiveFile,
      pgfault: get("pgfault"),
      pgmajfault: get("pgmajfault"),
      swap: get("swap"),
      maxUsage: parseUint(files["memory.max_usage_in_bytes"]),
      failcnt: parseUint(files["memory.failcnt"]),
    });
  }
  const pids = parseUint(files["pids.current"]);
  if (pids !== undefined) out.pids = pids;
  return out;
}

export const V2_FILES = [
  "cpu.stat", "cpu.pressure",
  "memory.current", "memory.max", "memory.peak", "memory.stat", "memory.swap.current", "memory.swap.max", "memory.pressure",
  "io.pressure", "pids.current",
] as const;
export type V2File = (typeof V2_FILES)[number];

const USEC = 1000n;

/**
 * cgroup v2 file texts to stats. memory.stat is hierarchical in v2; anon is the RSS and file
 * the page cache, as cAdvisor maps them.
 */
export function v2Stats(files: Partial<Record<V2File, string>>): CgroupStats {
  const out: CgroupStats = {};
  const cpu = parseKeyedValues(files["cpu.stat"]);
  const usageUsec = cpu.get("usage_usec");
  if (usageUsec !== undefined) {
    const user = cpu.get("user_usec");
    const system = cpu.get("system_usec");
    const throttled = cpu.get("throttled_usec");
    out.cpu = defined({
      usageNs: usageUsec * USEC,
      userNs: user === undefined ? undefined : user * USEC,
      systemNs: system === undefined ? undefined : system * USEC,
      periods: cpu.get("nr_periods"),
      throttledPeriods: cpu.get("nr_throttled"),
      throttledNs: throttled === undefined ? undefined : throttled * USEC,
      psi: parsePsi(files["cpu.pressure"]),
    });
  }
  const usage = parseUint(files["memory.current"]);
  if (usage !== undefined) {
    const stat = parseKeyedValues(files["memory.stat"]);
    const inactiveFile = stat.get("inactive_file");
    out.memory = defined({
      usage,
      limit: parseLimit(files["memory.max"]),
      workingSet: workingSet(usage, inactiveFile),
      rss: stat.get("anon"),
      cache: stat.get("file"),
      mappedFile: stat.get("file_mapped"),
      activeFile: stat.get("active_file"),
      inactiveFile,
      pgfault: stat.get("pgfault"),
      pgmajfault: stat.get("pgmajfault"),
      swap: parseUint(files["memory.swap.current"]),
      swapLimit: parseLimit(files["memory.swap.max"]),
      maxUsage: parseUint(files["memory.peak"]),
      psi: parsePsi(files["memory.pressure"]),
    });
  }
  const pids = parseUint(files["pids.current"]);
  if (pids !== undefined) out.pids = pids;
  const io = parsePsi(files["io.pressure"]);
  if (io) out.ioPsi = io;
  return out;
}

/**
 * Several cgroups as one (a pod without a cgroup of its own: its pause container's and its
 * containers' cgroups side by side). Counters and sizes add up; limits do not, so there is
 * none, and pressure is per cgroup, so there is none either.
 */
export function sumCgroupStats(parts: readonly CgroupStats[]): CgroupStats | undefined {
  if (parts.length === 0) return undefined;
  const add = (a: bigint | undefined, b: bigint | undefined) => (a === undefined ? b : b === undefined ? a : a + b);
  const out: CgroupStats = {};
  for (const p of parts) {
    if (p.cpu) {
      const c = out.cpu;
      out.cpu = defined({
        usageNs: (c?.usageNs ?? 0n) + p.cpu.usageNs,
        userNs: add(c?.userNs, p.cpu.userNs),
        systemNs: add(c?.systemNs, p.cpu.systemNs),
        periods: add(c?.periods, p.cpu.periods),
        throttledPeriods: add(c?.throttledPeriods, p.cpu.throttledPeriods),
        throttledNs: add(c?.throttledNs, p.cpu.throttledNs),
      });
    }
    if (p.memory) {
      const m = out.memory;
      out.memory = defined({
        usage: (m?.usage ?? 0n) + p.memory.usage,
        workingSet: (m?.workingSet ?? 0n) + p.memory.workingSet,
        rss: add(m?.rss, p.memory.rss),
        cache: add(m?.cache, p.memory.cache),
        mappedFile: add(m?.mappedFile, p.memory.mappedFile),
        activeFile: add(m?.activeFile, p.memory.activeFile),
        inactiveFile: add(m?.inactiveFile, p.memory.inactiveFile),
        pgfault: add(m?.pgfault, p.memory.pgfault),
        pgmajfault: add(m?.pgmajfault, p.memory.pgmajfault),
        swap: add(m?.swap, p.memory.swap),
      });
    }
    if (p.pids !== undefined) out.pids = (out.pids ?? 0n) + p.pids;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Reading

const V1_BASE: readonly V1File[] = ["cpuacct.usage", "memory.usage_in_bytes", "memory.limit_in_bytes", "memory.stat"];
const V1_DETAIL: readonly V1File[] = ["cpuacct.usage_user", "cpuacct.usage_sys", "cpu.stat", "memory.max_usage_in_bytes", "memory.failcnt"];
const V2_BASE: readonly V2File[] = [
  "cpu.stat", "cpu.pressure", "memory.current", "memory.max", "memory.stat", "memory.swap.current", "memory.swap.max",
  "memory.pressure", "io.pressure",
];
const V2_DETAIL: readonly V2File[] = ["memory.peak"];

/** The files a query needs, by name, with their full paths. */
export function cgroupFiles(layout: CgroupLayout, path: string, query: CgroupQuery = {}): Partial<Record<V1File | V2File, string>> {
  const out: Partial<Record<V1File | V2File, string>> = {};
  if (layout.version === 2) {
    const dir = cgroupDir(layout.unified, path);
    const names = [...V2_BASE, ...(query.detail ? V2_DETAIL : []), ...(query.pids ? (["pids.current"] as const) : [])];
    for (const n of names) out[n] = `${dir}/${n}`;
    return out;
  }
  const names = [...V1_BASE, ...(query.detail ? V1_DETAIL : []), ...(query.pids ? (["pids.current"] as const) : [])];
  for (const n of names) {
    const controller = n.slice(0, n.indexOf(".")) as V1Controller;
    const mount = layout.controllers[controller];
    if (mount) out[n] = `${cgroupDir(mount, path)}/${n}`;
  }
  return out;
}

/**
 * One cgroup's stats: a handful of small reads in parallel, through `readText` (which may keep
 * descriptors open). Undefined when nothing could be read (the cgroup is gone: a container
 * that just exited); partial when some files are missing (a controller not enabled for this
 * cgroup, an older kernel).
 */
export async function readCgroup(layout: CgroupLayout, path: string, query: CgroupQuery = {}, readText: ReadText = readPseudoFile): Promise<CgroupStats | undefined> {
  const files = await readPseudoFiles(cgroupFiles(layout, path, query), readText);
  if (Object.keys(files).length === 0) return undefined;
  return layout.version === 2 ? v2Stats(files) : v1Stats(files);
}
