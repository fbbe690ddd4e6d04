import { describe, expect, it } from "vitest";
import { InvalidArgumentError, UnavailableError } from "../../src/errors/errors.js";
import { backoffDelays, retryTransient } from "../../src/util/retry.js";
import { InFlightCalls } from "../../src/server/boundary.js";
import { decodeTaskEvent } from "../../src/containerd/events.js";
import { TaskExit, TaskOOM } from "../../src/gen/containerd/events/task.js";

describe("retryTransient", () => {
  it("retries transient errors and returns the first success", async () => {
    let calls = 0;
    const v = await retryTransient(async () => {
      calls++;
      if (calls < 3) throw new UnavailableError("containerd went away");
      return "ok";
    }, { firstDelayMs: 1 });
    expect([v, calls]).toEqual(["ok", 3]);
  });

  it("throws other errors at once, and the last transient one after the attempts", async () => {
    let calls = 0;
    await expect(retryTransient(async () => {
      calls++;
      throw new InvalidArgumentError("bad record");
    }, { firstDelayMs: 1 })).rejects.toThrow("bad record");
    expect(calls).toBe(1);
    calls = 0;
    await expect(retryTransient(async () => {
      calls++;
      throw new UnavailableError("down");
    }, { attempts: 4, firstDelayMs: 1 })).rejects.toThrow("down");
    expect(calls).toBe(4);
  });

  it("backs off by doubling up to a ceiling", () => {
    const d = backoffDelays(500, 3000);
    expect([0, 1, 2, 3, 4].map(() => d.next().value)).toEqual([500, 1000, 2000, 3000, 3000]);
  });
});

describe("InFlightCalls", () => {
  it("counts runs until they settle, and waits for them", async () => {
    const calls = new InFlightCalls();
    let release!: () => void;
    const run = new Promise<void>((r) => (release = r));
    calls.track(run);
    const failed = Promise.reject(new Error("x"));
    failed.catch(() => undefined);
    calls.track(failed);
    expect(calls.size).toBe(2);
    const settled = calls.settled();
    release();
    await run;
    await settled;
    expect(calls.size).toBe(0);
  });
});

describe("decodeTaskEvent", () => {
  it("turns containerd's envelopes into typed events once", () => {
    const exit = TaskExit.encode(TaskExit.fromPartial({ containerId: "c", id: "c", pid: 5, exitStatus: 3, exitedAt: { seconds: 2n, nanos: 5 } })).finish();
    expect(decodeTaskEvent({ timestamp: undefined, namespace: "n", topic: "/tasks/exit", event: { typeUrl: "containerd.events.TaskExit", value: Buffer.from(exit) } })).toEqual({ kind: "exit", containerId: "c", processId: "c", exitStatus: 3, exitedAt: 2_000_000_005n });
    const oom = TaskOOM.encode(TaskOOM.fromPartial({ containerId: "c" })).finish();
    expect(decodeTaskEvent({ timestamp: undefined, namespace: "n", topic: "/tasks/oom", event: { typeUrl: "containerd.events.TaskOOM", value: Buffer.from(oom) } })).toEqual({ kind: "oom", containerId: "c" });
    expect(decodeTaskEvent({ timestamp: undefined, namespace: "n", topic: "/tasks/start", event: { typeUrl: "containerd.events.TaskStart", value: Buffer.alloc(0) } })).toBeUndefined();
  });
});
