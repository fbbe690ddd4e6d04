/**
 * Test-only fault injection: with PODSHIM_CRASH_AT=<step>[,<step>...] in the environment,
 * podshim SIGKILLs itself the first time it reaches a named step, so tests can prove that a
 * crash at that exact moment leaves nothing recovery cannot account for. A step may carry
 * `@N` to crash at its Nth arrival instead (`sandbox.cni-added@3`). Unset, it costs one
 * Set lookup.
 */
const wanted = parse(process.env.PODSHIM_CRASH_AT ?? "");
const seen = new Map<string, number>();

function parse(spec: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const part of spec.split(",").map((s) => s.trim()).filter(Boolean)) {
    const [step, nth] = part.split("@");
    out.set(step!, nth ? Math.max(1, Number(nth) || 1) : 1);
  }
  return out;
}

/** Every step podshim can be told to crash at; tests iterate over this list. */
export const CRASH_STEPS = [
  // RunPodSandbox
  "sandbox.reserved",
  "sandbox.dir-made",
  "sandbox.netns-pinned",
  "sandbox.shm-mounted",
  "sandbox.cni-added",
  "sandbox.snapshot-prepared",
  "sandbox.container-recorded",
  "sandbox.task-created",
  "sandbox.task-started",
  "sandbox.ready",
  // CreateContainer
  "container.reserved",
  "container.fifos-made",
  "container.snapshot-prepared",
  "container.container-recorded",
  "container.created",
  // StartContainer
  "start.io-attached",
  "start.task-created",
  "start.task-started",
  "start.running",
] as const;
export type CrashStep = (typeof CRASH_STEPS)[number];

export function crashPoint(step: CrashStep): void {
  if (wanted.size === 0) return;
  const nth = wanted.get(step);
  if (nth === undefined) return;
  const count = (seen.get(step) ?? 0) + 1;
  seen.set(step, count);
  if (count === nth) process.kill(process.pid, "SIGKILL");
}
