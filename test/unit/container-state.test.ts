import { describe, expect, it } from "vitest";
import { canMove, finishContainer, freshStatus, moveContainer } from "../../src/container/container-state.js";
import { ContainerState, type ContainerRecord } from "../../src/container/container-store.js";

const rec = (state: ContainerRecord["status"]["state"]): ContainerRecord => ({ id: "c1", status: { ...freshStatus(undefined), state } } as unknown as ContainerRecord);

describe("the container transition table", () => {
  it.each([
    ["created", "running", true],
    ["created", "exited", true],
    ["created", "unknown", true],
    ["running", "exited", true],
    ["running", "unknown", true],
    ["running", "created", false],
    ["exited", "running", false],
    ["exited", "exited", false],
    ["unknown", "running", false],
  ] as const)("%s -> %s allowed: %s", (from, to, ok) => {
    expect(canMove(from, to)).toBe(ok);
    const r = rec(from);
    if (ok) {
      moveContainer(r, to, { pid: 7 });
      expect(r.status).toMatchObject({ state: to, pid: 7 });
    } else {
      expect(() => moveContainer(r, to, {})).toThrow(`container c1 cannot go from ${from} to ${to}`);
      expect(r.status.state).toBe(from);
    }
  });

  it("finishes with the reason the exit implies and never before the start", () => {
    const ok = rec(ContainerState.Running);
    ok.status.startedAt = 100n;
    finishContainer(ok, 0, 50n, 200n);
    expect(ok.status).toMatchObject({ state: "exited", exitCode: 0, reason: "Completed", finishedAt: 100n });
    const oom = rec(ContainerState.Running);
    oom.status.oomKilled = true;
    finishContainer(oom, 137, 0n, 300n);
    expect(oom.status).toMatchObject({ reason: "OOMKilled", finishedAt: 300n });
    const bad = rec(ContainerState.Running);
    finishContainer(bad, 2, 10n, 300n);
    expect(bad.status).toMatchObject({ reason: "Error", exitCode: 2, finishedAt: 10n });
  });
});
