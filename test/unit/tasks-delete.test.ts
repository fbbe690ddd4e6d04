// Tasks.delete when the shim's connection closes under containerd's delete (critest's attach
// spec met it once: StopPodSandbox failed INTERNAL "ttrpc: closed" while containerd's log said
// "shim disconnected"): asked again, containerd has the task deleted or gone.
import { describe, expect, it } from "vitest";
import { Tasks } from "../../src/containerd/tasks.js";
import type { ContainerdClient } from "../../src/containerd/client.js";
import { InternalError, NotFoundError } from "../../src/errors/errors.js";

function tasksAnswering(...answers: Array<Error | object>): { tasks: Tasks; calls: () => number } {
  let n = 0;
  const client = {
    call: async () => {
      const a = answers[Math.min(n++, answers.length - 1)]!;
      if (a instanceof Error) throw a;
      return a;
    },
  } as unknown as ContainerdClient;
  return { tasks: new Tasks(client), calls: () => n };
}

const shimLost = () => new InternalError("containerd Tasks.Delete: failed to delete task: ttrpc: closed");

describe("Tasks.delete", () => {
  it("asks again when the shim's connection closed, and takes a task gone by then as deleted", async () => {
    const { tasks, calls } = tasksAnswering(shimLost(), new NotFoundError("containerd Tasks.Delete: no such task"));
    expect(await tasks.delete("c1")).toBeUndefined();
    expect(calls()).toBe(2);
  });

  it("returns the exit when the second ask deletes it", async () => {
    const { tasks } = tasksAnswering(shimLost(), { exitStatus: 137, exitedAt: undefined });
    expect((await tasks.delete("c1"))?.exitStatus).toBe(137);
  });

  it("gives up after four tries, and fails at once on any other error", async () => {
    const lost = tasksAnswering(shimLost());
    await expect(lost.tasks.delete("c1")).rejects.toThrow(/ttrpc: closed/);
    expect(lost.calls()).toBe(4);
    const other = tasksAnswering(new InternalError("containerd Tasks.Delete: disk on fire"));
    await expect(other.tasks.delete("c1")).rejects.toThrow(/disk on fire/);
    expect(other.calls()).toBe(1);
  });
});
