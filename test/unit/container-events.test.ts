import { describe, expect, it } from "vitest";
import { ContainerEventHub, LifecycleEvent, MAX_PENDING_EVENTS } from "../../src/lifecycle-events/container-events.js";
import { ResourceExhaustedError } from "../../src/errors/errors.js";

describe("ContainerEventHub", () => {
  it("delivers events in order to every subscriber and ends on abort", async () => {
    const hub = new ContainerEventHub();
    const ac = new AbortController();
    const a = hub.subscribe(ac.signal);
    const b = hub.subscribe(ac.signal);
    const first = [a.next(), b.next()];
    await Promise.resolve();
    hub.publish("c1", "s1", LifecycleEvent.Created);
    hub.publish("c1", "s1", LifecycleEvent.Started);
    expect((await first[0]!).value).toMatchObject({ containerId: "c1", type: "created" });
    expect((await first[1]!).value).toMatchObject({ containerId: "c1", type: "created" });
    expect((await a.next()).value).toMatchObject({ type: "started" });
    ac.abort();
    expect((await b.next()).value).toMatchObject({ type: "started" });
    expect((await b.next()).done).toBe(true);
    expect((await a.next()).done).toBe(true);
    expect(hub.subscriberCount).toBe(0);
  });

  it("cuts off a subscriber that falls too far behind instead of buffering without end", async () => {
    const hub = new ContainerEventHub();
    const slow = hub.subscribe(new AbortController().signal);
    const pending = slow.next();
    await Promise.resolve();
    for (let i = 0; i <= MAX_PENDING_EVENTS + 1; i++) hub.publish(`c${i}`, "s", LifecycleEvent.Created);
    // The waiting read either got the first event before the overflow or the error itself.
    const [first] = await Promise.allSettled([pending]);
    if (first!.status === "fulfilled") await expect(slow.next()).rejects.toBeInstanceOf(ResourceExhaustedError);
    else expect(first!.reason).toBeInstanceOf(ResourceExhaustedError);
    expect(hub.subscriberCount).toBe(0);
  });

  it("close() completes every subscription", async () => {
    const hub = new ContainerEventHub();
    const s = hub.subscribe(new AbortController().signal);
    const next = s.next();
    await Promise.resolve();
    hub.close();
    expect((await next).done).toBe(true);
  });
});
