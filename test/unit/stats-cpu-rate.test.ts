import { describe, expect, it } from "vitest";
import { CpuRateTracker } from "../../src/stats/cpu-rate.js";

const S = 1_000_000_000n;

describe("CpuRateTracker", () => {
  it("gives no rate on a key's first sample, then usage delta over time delta in nano-cores", () => {
    const t = new CpuRateTracker();
    expect(t.rate("a", 10n * S, 100n * S)).toBeUndefined();
    // Half a core for 2 s: 1 s of CPU.
    expect(t.rate("a", 11n * S, 102n * S)).toBe(500_000_000n);
    // Two cores for 1 s.
    expect(t.rate("a", 13n * S, 103n * S)).toBe(2n * S);
  });

  it("keys are independent", () => {
    const t = new CpuRateTracker();
    t.rate("a", 0n, 0n);
    t.rate("b", 0n, 0n);
    expect(t.rate("a", S, S)).toBe(S);
    expect(t.rate("b", S / 4n, S)).toBe(S / 4n);
  });

  it("hands out the last rate again to samples closer than the minimum window", () => {
    const t = new CpuRateTracker({ minIntervalNs: S });
    t.rate("a", 0n, 0n);
    expect(t.rate("a", S / 10n, S / 2n)).toBeUndefined();
    // The window still starts at 0: 1 s of CPU over 2 s.
    expect(t.rate("a", S, 2n * S)).toBe(S / 2n);
    expect(t.rate("a", S + 5n, 2n * S + 1000n)).toBe(S / 2n);
    // Next window from 2 s: 1 s of CPU over 1 s.
    expect(t.rate("a", 2n * S, 3n * S)).toBe(S);
  });

  it("starts over when the counter goes back", () => {
    const t = new CpuRateTracker();
    t.rate("a", 10n * S, 0n);
    expect(t.rate("a", S, 2n * S)).toBeUndefined();
    expect(t.rate("a", 2n * S, 3n * S)).toBe(S);
  });

  it("an idle container is 0, not absent", () => {
    const t = new CpuRateTracker();
    t.rate("a", 5n, 0n);
    expect(t.rate("a", 5n, 10n * S)).toBe(0n);
  });

  it("forgets keys not seen within the eviction window", () => {
    const t = new CpuRateTracker({ evictAfterNs: 60n * S });
    t.rate("old", 0n, 0n);
    t.rate("new", 0n, 50n * S);
    t.sweep(100n * S);
    expect(t.size).toBe(1);
    // Sampling sweeps on its own once half a window has passed.
    t.rate("newer", 0n, 200n * S);
    expect(t.size).toBe(1);
    expect(t.rate("new", S, 201n * S)).toBeUndefined();
  });
});
