import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  cgroupDir,
  cgroupFiles,
  detectCgroupLayout,
  expandSlice,
  parseKeyedValues,
  parseLimit,
  parseMountInfo,
  parseProcCgroup,
  parsePsi,
  parseUint,
  readCgroup,
  resolveCgroupPath,
  sumCgroupStats,
  v1Stats,
  v2Stats,
  type CgroupLayout,
} from "../../src/stats/cgroup.js";

// This host's mountinfo (hybrid: v1 controllers each on its own mount, cgroup2 at unified).
const HYBRID_MOUNTINFO = `22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;

// A systemd distribution on v1: cpu and cpuacct share one hierarchy, optional fields present.
const SYSTEMD_V1_MOUNTINFO = `25 30 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
31 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
32 25 0:30 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
33 25 0:31 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
`;

const PURE_V2_MOUNTINFO = `25 30 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;

const V1_MEMORY_STAT = `cache 409600
rss 1740800
rss_huge 0
shmem 0
mapped_file 8192
swap 0
pgfault 50538
pgmajfault 17
inactive_anon 1593344
active_anon 12288
inactive_file 20480
active_file 389120
hierarchical_memory_limit 9223372036854771712
total_cache 409600
total_rss 1740800
total_mapped_file 8192
total_swap 4096
total_pgfault 50538
total_pgmajfault 17
total_inactive_file 20480
total_active_file 389120
`;

const V2_MEMORY_STAT = `anon 1232896
file 4096000
kernel 450560
file_mapped 1212416
file_dirty 0
inactive_anon 1224704
active_anon 8192
inactive_file 2560000
active_file 1536000
unevictable 0
pgfault 3010
pgmajfault 12
`;

const V2_CPU_STAT = `usage_usec 123456
user_usec 100000
system_usec 23456
nice_usec 0
nr_periods 10
nr_throttled 2
throttled_usec 5000
nr_bursts 0
burst_usec 0
`;

const PSI = `some avg10=11.68 avg60=13.10 avg300=12.78 total=666575194
full avg10=0.00 avg60=0.00 avg300=0.00 total=0
`;

describe("parseMountInfo", () => {
  it("finds each v1 controller of a hybrid host and counts it as v1", () => {
    expect(parseMountInfo(HYBRID_MOUNTINFO)).toEqual({
      version: 1,
      controllers: {
        cpu: { dir: "/sys/fs/cgroup/cpu", root: "/" },
        cpuacct: { dir: "/sys/fs/cgroup/cpuacct", root: "/" },
        memory: { dir: "/sys/fs/cgroup/memory", root: "/" },
        pids: { dir: "/sys/fs/cgroup/pids", root: "/" },
      },
    });
  });

  it("maps co-mounted controllers to one directory", () => {
    const l = parseMountInfo(SYSTEMD_V1_MOUNTINFO);
    expect(l?.version).toBe(1);
    if (l?.version !== 1) return;
    expect(l.controllers.cpu?.dir).toBe("/sys/fs/cgroup/cpu,cpuacct");
    expect(l.controllers.cpuacct?.dir).toBe("/sys/fs/cgroup/cpu,cpuacct");
    expect(l.controllers.memory?.dir).toBe("/sys/fs/cgroup/memory");
  });

  it("takes a host with only cgroup2 as v2", () => {
    expect(parseMountInfo(PURE_V2_MOUNTINFO)).toEqual({ version: 2, unified: { dir: "/sys/fs/cgroup", root: "/" } });
  });

  it("prefers the whole hierarchy over a bind-mounted subtree and decodes escapes", () => {
    const text = `50 1 0:32 /kubepods /mnt/memory\\040sub rw - cgroup cgroup rw,memory
51 1 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
52 1 0:30 /a\\040b /x rw - cgroup cgroup rw,cpuacct
`;
    const l = parseMountInfo(text);
    if (l?.version !== 1) throw new Error("v1 expected");
    expect(l.controllers.memory).toEqual({ dir: "/sys/fs/cgroup/memory", root: "/" });
    expect(l.controllers.cpuacct).toEqual({ dir: "/x", root: "/a b" });
  });

  it("gives undefined without any cgroup mount", () => {
    expect(parseMountInfo("22 27 0:21 / /proc rw,relatime - proc proc rw\n")).toBeUndefined();
  });
});

describe("parseProcCgroup", () => {
  it("maps every controller of a line, named hierarchies and v2", () => {
    const m = parseProcCgroup("12:cpu,cpuacct:/kubepods/pod1/c1\n4:memory:/process_api/x\n1:name=systemd:/\n0::/user.slice\n");
    expect(m.get("cpu")).toBe("/kubepods/pod1/c1");
    expect(m.get("cpuacct")).toBe("/kubepods/pod1/c1");
    expect(m.get("memory")).toBe("/process_api/x");
    expect(m.get("name=systemd")).toBe("/");
    expect(m.get("")).toBe("/user.slice");
  });
});

describe("expandSlice", () => {
  it.each([
    ["-.slice", "/"],
    ["system.slice", "/system.slice"],
    ["kubepods-burstable-pod1.slice", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice"],
    ["a-.slice", undefined],
    ["a--b.slice", undefined],
    ["a/b.slice", undefined],
    ["kubepods", undefined],
  ])("%s", (slice, want) => {
    expect(expandSlice(slice)).toBe(want);
  });
});

describe("resolveCgroupPath", () => {
  it.each([
    ["cgroupfs container", "/podshim/abc", "/podshim/abc"],
    ["cgroupfs under a kubelet parent", "/kubepods/burstable/pod1/abc", "/kubepods/burstable/pod1/abc"],
    ["relative path", "podshim/abc/", "/podshim/abc"],
    ["root", "/", "/"],
    ["systemd triple", "kubepods-burstable-pod1.slice:cri-podshim:abc",
      "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-podshim-abc.scope"],
    ["systemd triple with default slice", ":cri-podshim:abc", "/system.slice/cri-podshim-abc.scope"],
    ["systemd triple, root slice", "-.slice:p:abc", "/p-abc.scope"],
    ["systemd triple without prefix", "system.slice::abc", "/system.slice/abc.scope"],
    ["systemd name that is a slice", "system.slice:p:my-app.slice", "/my.slice/my-app.slice"],
    ["kubelet parent under systemd (a full path)", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod2.slice",
      "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod2.slice"],
    ["bare slice name", "kubepods-pod3.slice", "/kubepods.slice/kubepods-pod3.slice"],
    ["empty", "", undefined],
    ["malformed triple", "a:b", undefined],
    ["triple with a bad slice", "nota:b:c", undefined],
  ])("%s", (_, spec, want) => {
    expect(resolveCgroupPath(spec)).toBe(want);
  });
});

describe("cgroupDir", () => {
  it("joins a path to the mount, stripping the mount's root", () => {
    expect(cgroupDir({ dir: "/sys/fs/cgroup/memory", root: "/" }, "/podshim/a")).toBe("/sys/fs/cgroup/memory/podshim/a");
    expect(cgroupDir({ dir: "/sys/fs/cgroup/memory", root: "/" }, "/")).toBe("/sys/fs/cgroup/memory");
    expect(cgroupDir({ dir: "/mnt/m", root: "/kubepods" }, "/kubepods/pod1")).toBe("/mnt/m/pod1");
    expect(cgroupDir({ dir: "/mnt/m", root: "/kubepods" }, "/kubepods")).toBe("/mnt/m");
    expect(cgroupDir({ dir: "/mnt/m", root: "/kubepods" }, "/other")).toBe("/mnt/m/other");
  });
});

describe("value parsers", () => {
  it("parseUint", () => {
    expect(parseUint("1968799641054\n")).toBe(1968799641054n);
    expect(parseUint("max\n")).toBeUndefined();
    expect(parseUint("")).toBeUndefined();
    expect(parseUint(undefined)).toBeUndefined();
    expect(parseUint("-1")).toBeUndefined();
  });

  it("parseLimit takes max and v1's near-2^63 as no limit", () => {
    expect(parseLimit("max\n")).toBeUndefined();
    expect(parseLimit("9223372036854771712\n")).toBeUndefined();
    expect(parseLimit("268435456\n")).toBe(268435456n);
  });

  it("parseKeyedValues keeps numeric lines only", () => {
    const m = parseKeyedValues("a 1\nb x\n\nc  2\nd\n");
    expect([...m]).toEqual([["a", 1n], ["c", 2n]]);
  });

  it("parsePsi", () => {
    expect(parsePsi(PSI)).toEqual({
      some: { avg10: 11.68, avg60: 13.1, avg300: 12.78, total: 666575194n },
      full: { avg10: 0, avg60: 0, avg300: 0, total: 0n },
    });
    expect(parsePsi("some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n")).toEqual({ some: { avg10: 0, avg60: 0, avg300: 0, total: 5n } });
    expect(parsePsi("garbage\n")).toBeUndefined();
    expect(parsePsi(undefined)).toBeUndefined();
  });
});

describe("v1Stats", () => {
  it("derives the CRI numbers from the total_* keys", () => {
    const s = v1Stats({
      "cpuacct.usage": "5000000000\n",
      "cpuacct.usage_user": "3000000000\n",
      "cpuacct.usage_sys": "2000000000\n",
      "cpu.stat": "nr_periods 7\nnr_throttled 3\nthrottled_time 900\nnr_bursts 0\nburst_time 0\n",
      "memory.usage_in_bytes": "3428352\n",
      "memory.limit_in_bytes": "268435456\n",
      "memory.max_usage_in_bytes": "4000000\n",
      "memory.failcnt": "2\n",
      "memory.stat": V1_MEMORY_STAT,
      "pids.current": "4\n",
    });
    expect(s).toEqual({
      cpu: { usageNs: 5000000000n, userNs: 3000000000n, systemNs: 2000000000n, periods: 7n, throttledPeriods: 3n, throttledNs: 900n },
      memory: {
        usage: 3428352n, limit: 268435456n, workingSet: 3428352n - 20480n, rss: 1740800n, cache: 409600n, mappedFile: 8192n,
        activeFile: 389120n, inactiveFile: 20480n, pgfault: 50538n, pgmajfault: 17n, swap: 4096n, maxUsage: 4000000n, failcnt: 2n,
      },
      pids: 4n,
    });
  });

  it("falls back to the plain keys, leaves out what is missing, and never goes below 0", () => {
    const s = v1Stats({
      "memory.usage_in_bytes": "100\n",
      "memory.limit_in_bytes": "9223372036854771712\n",
      "memory.stat": "rss 50\ninactive_file 400\npgfault 1\n",
    });
    expect(s).toEqual({ memory: { usage: 100n, workingSet: 0n, rss: 50n, inactiveFile: 400n, pgfault: 1n } });
  });

  it("gives nothing for nothing", () => {
    expect(v1Stats({})).toEqual({});
  });
});

describe("v2Stats", () => {
  it("converts microseconds and maps anon/file as cAdvisor does", () => {
    const s = v2Stats({
      "cpu.stat": V2_CPU_STAT,
      "cpu.pressure": PSI,
      "memory.current": "8192000\n",
      "memory.max": "max\n",
      "memory.peak": "9000000\n",
      "memory.stat": V2_MEMORY_STAT,
      "memory.swap.current": "1024\n",
      "memory.swap.max": "4096\n",
      "memory.pressure": PSI,
      "io.pressure": PSI,
      "pids.current": "3\n",
    });
    const psi = parsePsi(PSI);
    expect(s).toEqual({
      cpu: { usageNs: 123456000n, userNs: 100000000n, systemNs: 23456000n, periods: 10n, throttledPeriods: 2n, throttledNs: 5000000n, psi },
      memory: {
        usage: 8192000n, workingSet: 8192000n - 2560000n, rss: 1232896n, cache: 4096000n, mappedFile: 1212416n, activeFile: 1536000n,
        inactiveFile: 2560000n, pgfault: 3010n, pgmajfault: 12n, swap: 1024n, swapLimit: 4096n, maxUsage: 9000000n, psi,
      },
      pids: 3n,
      ioPsi: psi,
    });
  });

  it("works with the files every cgroup has (no controllers enabled)", () => {
    expect(v2Stats({ "cpu.stat": "usage_usec 10\nuser_usec 6\nsystem_usec 4\n" })).toEqual({ cpu: { usageNs: 10000n, userNs: 6000n, systemNs: 4000n } });
  });
});

describe("sumCgroupStats", () => {
  it("adds counters and sizes, drops limits", () => {
    const a = v1Stats({ "cpuacct.usage": "10\n", "memory.usage_in_bytes": "100\n", "memory.limit_in_bytes": "1000\n", "memory.stat": "total_rss 40\ntotal_inactive_file 10\n", "pids.current": "1\n" });
    const b = v1Stats({ "cpuacct.usage": "5\n", "memory.usage_in_bytes": "50\n", "memory.stat": "total_rss 20\n", "pids.current": "2\n" });
    expect(sumCgroupStats([a, b, {}])).toEqual({
      cpu: { usageNs: 15n },
      memory: { usage: 150n, workingSet: 140n, rss: 60n, inactiveFile: 10n },
      pids: 3n,
    });
    expect(sumCgroupStats([])).toBeUndefined();
  });
});

describe("cgroupFiles", () => {
  const v1: CgroupLayout = { version: 1, controllers: { cpuacct: { dir: "/c", root: "/" }, memory: { dir: "/m", root: "/" } } };

  it("reads only what the CRI needs by default, and skips unmounted controllers", () => {
    expect(cgroupFiles(v1, "/p/a", { detail: true, pids: true })).toEqual({
      "cpuacct.usage": "/c/p/a/cpuacct.usage",
      "cpuacct.usage_user": "/c/p/a/cpuacct.usage_user",
      "cpuacct.usage_sys": "/c/p/a/cpuacct.usage_sys",
      "memory.usage_in_bytes": "/m/p/a/memory.usage_in_bytes",
      "memory.limit_in_bytes": "/m/p/a/memory.limit_in_bytes",
      "memory.stat": "/m/p/a/memory.stat",
      "memory.max_usage_in_bytes": "/m/p/a/memory.max_usage_in_bytes",
      "memory.failcnt": "/m/p/a/memory.failcnt",
    });
    expect(Object.keys(cgroupFiles(v1, "/p/a"))).toEqual(["cpuacct.usage", "memory.usage_in_bytes", "memory.limit_in_bytes", "memory.stat"]);
  });

  it("reads v2 files from one directory", () => {
    const files = cgroupFiles({ version: 2, unified: { dir: "/u", root: "/" } }, "/p/a", { pids: true });
    expect(files["memory.current"]).toBe("/u/p/a/memory.current");
    expect(files["pids.current"]).toBe("/u/p/a/pids.current");
    expect(files["memory.peak"]).toBeUndefined();
  });
});

describe("readCgroup on a directory tree", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "podshim-stats-cgroup-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function write(path: string, files: Record<string, string>) {
    await mkdir(path, { recursive: true });
    for (const [n, t] of Object.entries(files)) await writeFile(join(path, n), t);
  }

  it("v1: the same cgroup path under each controller", async () => {
    await write(join(dir, "v1/cpuacct/podshim/c1"), { "cpuacct.usage": "42\n" });
    await write(join(dir, "v1/memory/podshim/c1"), { "memory.usage_in_bytes": "1000\n", "memory.limit_in_bytes": "4000\n", "memory.stat": "total_inactive_file 100\n" });
    const layout: CgroupLayout = {
      version: 1,
      controllers: { cpuacct: { dir: join(dir, "v1/cpuacct"), root: "/" }, memory: { dir: join(dir, "v1/memory"), root: "/" }, pids: { dir: join(dir, "v1/pids"), root: "/" } },
    };
    expect(await readCgroup(layout, "/podshim/c1", { pids: true })).toEqual({
      cpu: { usageNs: 42n },
      memory: { usage: 1000n, limit: 4000n, workingSet: 900n, inactiveFile: 100n },
    });
    expect(await readCgroup(layout, "/podshim/gone")).toBeUndefined();
  });

  it("v2: one directory; a big memory.stat is read whole", async () => {
    const padding = Array.from({ length: 2000 }, (_, i) => `padding_key_${i} ${i}`).join("\n");
    await write(join(dir, "v2/kubepods.slice/x.scope"), {
      "cpu.stat": V2_CPU_STAT, "memory.current": "5000\n", "memory.max": "max\n",
      "memory.stat": `${padding}\ninactive_file 1000\nanon 7\n`,
    });
    const layout: CgroupLayout = { version: 2, unified: { dir: join(dir, "v2"), root: "/" } };
    const s = await readCgroup(layout, "/kubepods.slice/x.scope");
    expect(s?.memory).toEqual({ usage: 5000n, workingSet: 4000n, rss: 7n, inactiveFile: 1000n });
    expect(s?.cpu?.usageNs).toBe(123456000n);
    expect(Buffer.byteLength(padding)).toBeGreaterThan(8192 * 3);
  });
});

// The reader against this host's real cgroups: the test process's own, found through
// /proc/self/cgroup. Here that is v1 (hybrid host); on a pure v2 host the same test reads v2.
describe("readCgroup on this host", () => {
  it("reads the test process's own cgroup", async () => {
    const layout = await detectCgroupLayout();
    expect(layout).toBeDefined();
    const own = parseProcCgroup(await readFile("/proc/self/cgroup", "utf8"));
    if (layout!.version === 2) {
      const s = await readCgroup(layout!, own.get("")!, { detail: true, pids: true });
      expect(s?.cpu?.usageNs).toBeGreaterThan(0n);
      return;
    }
    const cpu = await readCgroup(layout!, own.get("cpuacct")!, { detail: true });
    expect(cpu?.cpu?.usageNs).toBeGreaterThan(0n);
    const mem = await readCgroup(layout!, own.get("memory")!, { detail: true });
    expect(mem?.memory?.usage).toBeGreaterThan(0n);
    expect(mem!.memory!.workingSet).toBeLessThanOrEqual(mem!.memory!.usage);
    expect(mem!.memory!.rss).toBeGreaterThan(0n);
    expect(mem!.memory!.pgfault).toBeGreaterThan(0n);
  });
});
