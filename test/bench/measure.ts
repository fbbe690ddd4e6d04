// Latency sampling for benchmarks: run an async operation many times with a fixed
// concurrency and report percentiles.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export interface Latency {
  name: string;
  n: number;
  concurrency: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** Completed operations per second over the whole run. */
  rate: number;
}

/** `intervalMs` paces each worker: an operation starts at most every intervalMs. */
export async function sample(name: string, n: number, concurrency: number, op: (i: number) => Promise<unknown>, intervalMs = 0): Promise<Latency> {
  const times: number[] = [];
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const t = performance.now();
      await op(i);
      const took = performance.now() - t;
      times.push(took);
      if (intervalMs > took) await new Promise((r) => setTimeout(r, intervalMs - took));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const total = performance.now() - started;
  times.sort((a, b) => a - b);
  const at = (q: number) => round(times[Math.min(times.length - 1, Math.floor(q * times.length))]!);
  return { name, n, concurrency, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: round(times[times.length - 1]!), rate: Math.round((n / total) * 1000) };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

export function report(title: string, rows: Latency[], extra: Record<string, unknown> = {}): void {
  const lines = [
    `\n${title}`,
    `${"operation".padEnd(34)}${"n".padStart(6)}${"conc".padStart(6)}${"p50 ms".padStart(10)}${"p90 ms".padStart(10)}${"p99 ms".padStart(10)}${"max ms".padStart(10)}${"ops/s".padStart(9)}`,
    ...rows.map((r) => `${r.name.padEnd(34)}${String(r.n).padStart(6)}${String(r.concurrency).padStart(6)}${String(r.p50).padStart(10)}${String(r.p90).padStart(10)}${String(r.p99).padStart(10)}${String(r.max).padStart(10)}${String(r.rate).padStart(9)}`),
    ...Object.entries(extra).map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`),
  ];
  console.log(lines.join("\n"));
  const dir = fileURLToPath(new URL("../../.tmp/bench/", import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}${title.replace(/[^A-Za-z0-9]+/g, "-").toLowerCase()}.json`, JSON.stringify({ title, at: new Date().toISOString(), rows, extra }, null, 2));
}

/** A process's resident memory, MB (VmRSS: pages it shares with others count in full). */
export function rssMB(pid: number): number {
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return Math.round(Number(kb) / 1024);
}

/** podshim's helper processes among its direct children (the spawner, native or node);
 * the programs it runs come and go. */
export function helperPids(pid: number): number[] {
  const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter((x) => x !== "").map(Number);
  return kids.filter((k) => {
    try {
      return ["node", "podshim-spawner"].includes(readFileSync(`/proc/${k}/comm`, "utf8").trim());
    } catch {
      return false;
    }
  });
}

/** podshim's and its helpers' resident memory, MB. */
export function podshimMemory(pid: number): { podshim: number; helpers: number } {
  return { podshim: rssMB(pid), helpers: helperPids(pid).reduce((a, k) => a + rssMB(k), 0) };
}

/** Where a process's resident memory is, MB: anonymous pages (heap, stacks, malloc) and pages
 * of mapped files (the node or containerd binary itself, shared libraries). */
export function rssParts(pid: number): { anonMB: number; fileMB: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB$`, "m").exec(status)?.[1] ?? 0);
  return { anonMB: Math.round(kb("RssAnon") / 1024), fileMB: Math.round(kb("RssFile") / 1024) };
}

/** podshim's V8 heap by space (used / committed, MB) and its memory outside the heap (Buffers),
 * from its /metrics (prom-client's process metrics). */
export async function heapSpaces(metricsUrl: string): Promise<Record<string, string>> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const out: Record<string, string> = {};
  const mb = (v: string) => (Number(v) / 1048576).toFixed(1);
  const sizes: Record<string, Record<string, string>> = { used: {}, total: {} };
  for (const m of text.matchAll(/^podshim_nodejs_heap_space_size_(used|total)_bytes\{space="(\w+)"\} (\S+)$/gm)) sizes[m[1]!]![m[2]!] = m[3]!;
  for (const [space, total] of Object.entries(sizes.total!)) out[space] = `${mb(sizes.used![space] ?? "0")} / ${mb(total)}`;
  const external = /^podshim_nodejs_external_memory_bytes (\S+)$/m.exec(text)?.[1];
  if (external) out.external = mb(external);
  return out;
}

/** CPU time a process has used, ms: its own (user + system), plus, with `children`, that of
 * the children it has waited for (cutime + cstime: the programs a spawner ran, the CNI plugins
 * containerd ran). */
export function cpuMs(pid: number, children = false): number {
  // Fields after the command (which may hold spaces) start at the state, field 3.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
  const [utime, stime, cutime, cstime] = [f[11]!, f[12]!, f[13]!, f[14]!];
  return ((utime + stime + (children ? cutime + cstime : 0)) * 1000) / CLOCK_TICKS;
}
/** The pid of the one running process whose command line holds `fragment` (the bed's
 * containerd, by its directory). */
export function pidWithArg(fragment: string): number {
  const hits = readdirSync("/proc").filter((d) => /^\d+$/.test(d)).filter((d) => {
    try {
      return readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0").some((a) => a.includes(fragment));
    } catch {
      return false;
    }
  });
  if (hits.length !== 1) throw new Error(`${hits.length} processes name ${fragment} on their command line`);
  return Number(hits[0]);
}

/** USER_HZ: 100 on every Linux architecture podshim builds for. */
const CLOCK_TICKS = 100;

/** CPU ms a runtime has used so far: podshim's own (0 for containerd's CRI, which has no
 * podshim), its spawner's with the programs it ran, and containerd's with its children. */
export interface RuntimeCpu {
  own: number;
  programs: number;
  containerd: number;
}

export function runtimeCpu(containerdPid: number, podshimPid?: number): RuntimeCpu {
  const containerd = cpuMs(containerdPid, true);
  if (podshimPid === undefined) return { own: 0, programs: 0, containerd };
  return { own: cpuMs(podshimPid), programs: helperPids(podshimPid).reduce((a, k) => a + cpuMs(k, true), 0), containerd };
}
