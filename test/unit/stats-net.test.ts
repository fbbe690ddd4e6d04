import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseNetDev, readNetDev, splitInterfaces } from "../../src/stats/net.js";

const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 458755968   37020    0    0    0     0          0         0 458755968   37020    0    0    0     0       0          0
  eth0:16892357211    5016    3    1    0     0          0         0   372527    3506    2    4    0     0       0          0
  net1:       10       1    0    0    0     0          0         0       20       2    0    0    0     0       0          0
`;

describe("parseNetDev", () => {
  it("reads receive and transmit counters per interface, also with no space after the colon", () => {
    const all = parseNetDev(NET_DEV);
    expect(all.map((i) => i.name)).toEqual(["lo", "eth0", "net1"]);
    expect(all[1]).toEqual({
      name: "eth0", rxBytes: 16892357211n, rxPackets: 5016n, rxErrors: 3n, rxDropped: 1n,
      txBytes: 372527n, txPackets: 3506n, txErrors: 2n, txDropped: 4n,
    });
  });

  it("skips headers and short or garbled lines", () => {
    expect(parseNetDev("Inter-| x\n face |bytes\n eth0: 1 2 3\n x: a b c d e f g h i j k l m n o p\n")).toEqual([]);
  });
});

describe("splitInterfaces", () => {
  it("puts eth0 apart and leaves loopback out", () => {
    const s = splitInterfaces(parseNetDev(NET_DEV));
    expect(s.default?.name).toBe("eth0");
    expect(s.others.map((i) => i.name)).toEqual(["net1"]);
  });

  it("has no default when there is no eth0", () => {
    const s = splitInterfaces(parseNetDev(NET_DEV).filter((i) => i.name !== "eth0"));
    expect(s.default).toBeUndefined();
    expect(s.others.map((i) => i.name)).toEqual(["net1"]);
  });
});

describe("readNetDev", () => {
  it("reads /proc/<pid>/net/dev; undefined for a gone or invalid pid", async () => {
    const root = await mkdtemp(join(tmpdir(), "podshim-stats-net-"));
    try {
      await mkdir(join(root, "42/net"), { recursive: true });
      await writeFile(join(root, "42/net/dev"), NET_DEV);
      expect((await readNetDev(42, root))?.length).toBe(3);
      expect(await readNetDev(43, root)).toBeUndefined();
      expect(await readNetDev(0, root)).toBeUndefined();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("reads this process's network namespace from the real procfs", async () => {
    const all = await readNetDev(process.pid);
    expect(all?.some((i) => i.name === "lo")).toBe(true);
  });
});
