import { describe, expect, it } from "vitest";
import { StepTimer } from "../../src/util/step-timer.js";

describe("StepTimer", () => {
  it("marks the time since the previous mark, one entry per step", async () => {
    const steps = new StepTimer();
    steps.mark("first");
    await new Promise((r) => setTimeout(r, 5));
    steps.mark("second");
    expect(Object.keys(steps.ms)).toEqual(["first", "second"]);
    expect(steps.ms.second).toBeGreaterThanOrEqual(4);
  });

  it("times work beside other steps by its own duration, and leaves the marks alone", async () => {
    const steps = new StepTimer();
    const slow = steps.span("slow", () => new Promise((r) => setTimeout(r, 20)));
    const quick = steps.span("quick", async () => 1);
    expect(await quick).toBe(1);
    expect(steps.ms.quick).toBeDefined();
    expect(steps.ms.slow).toBeUndefined();
    await slow;
    steps.mark("both");
    expect(steps.ms.slow).toBeGreaterThanOrEqual(19);
    expect(steps.ms.both).toBeGreaterThanOrEqual(steps.ms.slow! - 1);
  });

  it("records a span that fails, and passes the failure on", async () => {
    const steps = new StepTimer();
    await expect(steps.span("broken", () => Promise.reject(new Error("no")))).rejects.toThrow("no");
    expect(steps.ms.broken).toBeGreaterThanOrEqual(0);
  });
});
