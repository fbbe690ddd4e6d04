import { InternalError } from "../errors/errors.js";
import { ContainerState, ExitReason, type ContainerRecord, type ContainerStatusFields } from "./container-store.js";

/**
 * Every move a container's state may make, and nothing else:
 *   created -> running   StartContainer, or recovery finding a started task
 *   created -> exited    a start that failed (StartError)
 *   running -> exited    its process ended (the event, a wait, or recovery reading the task)
 *   running -> unknown   recovery found the task gone with its exit status
 *   created -> unknown   the same, for a start whose checkpoint never landed
 * A move that is not here is a bug: it throws instead of corrupting the record.
 */
const ALLOWED: Readonly<Record<ContainerState, readonly ContainerState[]>> = {
  [ContainerState.Created]: [ContainerState.Running, ContainerState.Exited, ContainerState.Unknown],
  [ContainerState.Running]: [ContainerState.Exited, ContainerState.Unknown],
  [ContainerState.Exited]: [],
  [ContainerState.Unknown]: [],
};

export function canMove(from: ContainerState, to: ContainerState): boolean {
  return ALLOWED[from].includes(to);
}

/** Moves a record to `to` with the fields that go with it; the caller persists it. */
export function moveContainer(rec: ContainerRecord, to: ContainerState, fields: Partial<Omit<ContainerStatusFields, "state">>): void {
  if (!canMove(rec.status.state, to)) throw new InternalError(`container ${rec.id} cannot go from ${rec.status.state} to ${to}`);
  rec.status = { ...rec.status, ...fields, state: to };
}

/** containerd's exit code for a container whose fate was lost. */
export const UNKNOWN_EXIT_CODE = 255;

/** running -> exited: the reason follows from the exit status and a recorded OOM kill. */
export function finishContainer(rec: ContainerRecord, exitStatus: number, exitedAt: bigint, now: bigint): void {
  const reason = rec.status.oomKilled ? ExitReason.OOMKilled : exitStatus === 0 ? ExitReason.Completed : ExitReason.Error;
  // The shim's clock stamps the exit, podshim's the start: a process that exits at once can
  // look as if it ended before it began.
  let finishedAt = exitedAt > 0n ? exitedAt : now;
  if (finishedAt < rec.status.startedAt) finishedAt = rec.status.startedAt;
  moveContainer(rec, ContainerState.Exited, { pid: 0, finishedAt, exitCode: exitStatus, reason });
}

/** The status of a container nothing has happened to yet. */
export function freshStatus(resources: ContainerStatusFields["resources"]): ContainerStatusFields {
  return { state: ContainerState.Created, pid: 0, startedAt: 0n, finishedAt: 0n, exitCode: 0, reason: "", message: "", oomKilled: false, resources };
}
