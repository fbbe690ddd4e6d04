import { describe, expect, it } from "vitest";
import { DeadlineExceededError } from "../../src/errors/errors.js";
import { MAX_TIMER_MS, withTimeout } from "../../src/util/timeout.js";

describe("withTimeout", () => {
  it("a limit past setTimeout's range is no limit, not an immediate expiry", async () => {
    let release!: (v: string) => void;
    const work = new Promise<string>((r) => (release = r));
    const raced = withTimeout("work", 4294967296 * 1000, work);
    // A timer past 2^31-1 ms would have fired within a millisecond.
    await new Promise((r) => setTimeout(r, 20));
    release("done");
    expect(await raced).toBe("done");
    expect(MAX_TIMER_MS).toBe(2147483647);
  });

  it("still expires within range", async () => {
    await expect(withTimeout("work", 5, new Promise(() => undefined))).rejects.toBeInstanceOf(DeadlineExceededError);
  });
});
