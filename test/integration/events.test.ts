// GetContainerEvents through the CRI socket: every transition of a container's life, in order,
// for two subscribers at once, with the pod's status attached.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startPodFixture, type PodFixture } from "../support/pod-fixture.js";

const bed = inject("bed");
let fx: PodFixture;
beforeAll(async () => {
  fx = await startPodFixture(bed, "events", [bed.images.busybox]);
});
afterAll(async () => {
  await fx?.cleanup();
});

interface Seen {
  container_id: string;
  container_event_type: string;
  created_at: string;
  pod_sandbox_status?: { id: string };
  containers_statuses: Array<{ id: string; state: string }>;
}

function subscribe() {
  const stream = fx.podshim.cri.runtimeStream("GetContainerEvents", {});
  const seen: Seen[] = [];
  stream.on("data", (e: Seen) => seen.push(e));
  stream.on("error", () => undefined);
  return { stream, seen };
}

describe("GetContainerEvents", () => {
  it("delivers a container's whole life in order to two subscribers", async () => {
    const a = subscribe();
    const b = subscribe();
    await new Promise((r) => setTimeout(r, 300));
    const id = await fx.container("short", { command: ["sleep", "0.3"] });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !a.seen.some((e) => e.container_id === id && e.container_event_type === "CONTAINER_STOPPED_EVENT")) await new Promise((r) => setTimeout(r, 100));
    await fx.podshim.cri.runtime("RemoveContainer", { container_id: id });
    await new Promise((r) => setTimeout(r, 300));
    for (const sub of [a, b]) {
      const mine = sub.seen.filter((e) => e.container_id === id);
      expect(mine.map((e) => e.container_event_type)).toEqual(["CONTAINER_CREATED_EVENT", "CONTAINER_STARTED_EVENT", "CONTAINER_STOPPED_EVENT", "CONTAINER_DELETED_EVENT"]);
      expect(mine.map((e) => BigInt(e.created_at))).toEqual([...mine.map((e) => BigInt(e.created_at))].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));
      expect(mine[0]!.pod_sandbox_status?.id).toBe(fx.pod);
      expect(mine[2]!.containers_statuses.find((c) => c.id === id)?.state).toBe("CONTAINER_EXITED");
    }
    a.stream.cancel();
    b.stream.cancel();
  });
});
