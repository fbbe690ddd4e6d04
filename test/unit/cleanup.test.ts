import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "../../src/logger/logger.js";
import { CleanupStack } from "../../src/util/cleanup.js";

const quiet = createLogger("silent", new Writable({ write: (_c, _e, done) => done() }));

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("CleanupStack", () => {
  it("undoes newest first and tries every step even when one fails", async () => {
    const ran: string[] = [];
    const c = new CleanupStack(quiet);
    c.push("a", async () => ran.push("a"));
    c.push("b", async () => {
      ran.push("b");
      throw new Error("b failed");
    });
    c.push("c", async () => ran.push("c"));
    expect(await c.unwind()).toEqual(["b"]);
    expect(ran).toEqual(["c", "b", "a"]);
  });

  it("retries failed steps in the background, in their order, until each succeeds", async () => {
    const done: string[] = [];
    let containerdUp = false;
    const c = new CleanupStack(quiet);
    c.push("remove snapshot", async () => {
      if (!containerdUp || !done.includes("delete container")) throw new Error("unavailable");
      done.push("remove snapshot");
    });
    c.push("delete container", async () => {
      if (!containerdUp) throw new Error("unavailable");
      done.push("delete container");
    });
    expect(await c.unwind()).toEqual(["delete container", "remove snapshot"]);
    expect(done).toEqual([]);
    containerdUp = true;
    await until("both steps to be retried", () => done.length === 2);
    expect(done).toEqual(["delete container", "remove snapshot"]);
  });

  it("drops its steps on success", async () => {
    let ran = false;
    const c = new CleanupStack(quiet);
    c.push("x", async () => {
      ran = true;
    });
    c.dismiss();
    expect(await c.unwind()).toEqual([]);
    expect(ran).toBe(false);
  });
});
