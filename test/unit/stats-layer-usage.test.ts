import { describe, expect, it } from "vitest";
import { NotFoundError, UnavailableError } from "../../src/errors/errors.js";
import { LayerUsageCache, type SnapshotUsageSource } from "../../src/stats/layer-usage.js";

/** A snapshots service whose answers the test controls, counting calls and concurrency. */
class FakeSnapshots implements SnapshotUsageSource {
  sizes = new Map<string, bigint>();
  fail = new Map<string, Error>();
  calls: string[] = [];
  inFlight = 0;
  maxInFlight = 0;
  gate: Promise<void> = Promise.resolve();

  async usage(key: string) {
    this.calls.push(key);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await this.gate;
      await new Promise((r) => setImmediate(r));
      const err = this.fail.get(key);
      if (err) throw err;
      const size = this.sizes.get(key);
      if (size === undefined) throw new NotFoundError(`snapshot ${key} not found`);
      return { size, inodes: size / 100n };
    } finally {
      this.inFlight--;
    }
  }
}

describe("LayerUsageCache", () => {
  it("get never waits: a miss queues one measurement, later gets see it", async () => {
    const s = new FakeSnapshots();
    s.sizes.set("a", 1000n);
    const c = new LayerUsageCache({ snapshots: s, nowNs: () => 7n });
    expect(c.get("a")).toBeUndefined();
    expect(c.get("a")).toBeUndefined();
    await c.measure("a");
    expect(s.calls).toEqual(["a"]);
    expect(c.get("a")).toEqual({ bytes: 1000n, inodes: 10n, timestampNs: 7n });
  });

  it("refresh re-measures the given keys and forgets the others", async () => {
    const s = new FakeSnapshots();
    s.sizes.set("a", 100n).set("b", 200n);
    const c = new LayerUsageCache({ snapshots: s });
    await c.refresh(["a", "b"]);
    s.sizes.set("a", 300n);
    await c.refresh(["a"]);
    expect(c.peek("a")?.bytes).toBe(300n);
    expect(c.peek("b")).toBeUndefined();
  });

  it("a refresh under way is joined, not doubled", async () => {
    const s = new FakeSnapshots();
    s.sizes.set("a", 1n);
    let open!: () => void;
    s.gate = new Promise((r) => (open = r));
    const c = new LayerUsageCache({ snapshots: s });
    const r1 = c.refresh(["a"]);
    const r2 = c.refresh(["a"]);
    expect(r2).toBe(r1);
    open();
    await r1;
    expect(s.calls).toEqual(["a"]);
  });

  it("keeps the last value when containerd fails, drops it when the snapshot is gone", async () => {
    const s = new FakeSnapshots();
    s.sizes.set("a", 5n);
    const c = new LayerUsageCache({ snapshots: s });
    await c.measure("a");
    s.fail.set("a", new UnavailableError("containerd down"));
    expect((await c.measure("a"))?.bytes).toBe(5n);
    s.fail.delete("a");
    s.sizes.delete("a");
    expect(await c.measure("a")).toBeUndefined();
    expect(c.peek("a")).toBeUndefined();
  });

  it("runs at most `concurrency` measurements at once", async () => {
    const s = new FakeSnapshots();
    const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
    for (const k of keys) s.sizes.set(k, 1n);
    const c = new LayerUsageCache({ snapshots: s, concurrency: 3 });
    await c.refresh(keys);
    expect(s.maxInFlight).toBe(3);
    expect(c.size).toBe(20);
  });
});
