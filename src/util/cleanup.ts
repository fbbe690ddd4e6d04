import { messageOf } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import { backoffDelays } from "./retry.js";
import { sleep } from "./timeout.js";

/** How long undo steps that failed keep being retried in the background (containerd restarting). */
const RETRY_LATER_FOR_MS = 10 * 60_000;

type Step = { name: string; undo: () => Promise<unknown> };

/**
 * Undo steps registered right after each side effect of a multi-step operation. On failure
 * they run in reverse, each tried even when an earlier one failed (a leak is worse than a
 * second error); on success they are dropped. Steps that fail (typically because containerd
 * is restarting) are retried in the background until they succeed; a podshim that dies first
 * leaves them to the sweep at its next start.
 */
export class CleanupStack {
  private readonly steps: Step[] = [];

  constructor(private readonly logger: Logger) {}

  push(name: string, undo: () => Promise<unknown>): void {
    this.steps.push({ name, undo });
  }

  /** Runs every undo, newest first; returns the names of those that failed (and are retried later). */
  async unwind(): Promise<string[]> {
    const failed: Step[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step.undo();
      } catch (err) {
        failed.push(step);
        this.logger.error({ step: step.name, err: messageOf(err) }, "cleanup step failed; retrying it in the background");
      }
    }
    if (failed.length > 0) retryLater(this.logger, failed);
    return failed.map((s) => s.name);
  }

  dismiss(): void {
    this.steps.length = 0;
  }
}

/**
 * Retries the steps, in the order given, until each has succeeded once or the time is up.
 * A step that keeps failing does not hold back the ones after it (a snapshot can go even
 * when its lease cannot, yet), and every pass tries all that are left.
 */
export function retryLater(logger: Logger, steps: readonly Step[], forMs = RETRY_LATER_FOR_MS): void {
  const left = [...steps];
  const until = Date.now() + forMs;
  void (async () => {
    for (const delay of backoffDelays(250, 5_000)) {
      if (left.length === 0) return;
      if (Date.now() + delay > until) break;
      await sleep(delay);
      for (const step of [...left]) {
        try {
          await step.undo();
          left.splice(left.indexOf(step), 1);
          logger.info({ step: step.name }, "finished a cleanup step that had failed");
        } catch (err) {
          logger.debug({ step: step.name, err: messageOf(err) }, "cleanup step failed again");
        }
      }
    }
    logger.error({ steps: left.map((s) => s.name) }, "cleanup steps still failing; the next start's sweep reclaims what they leave");
  })();
}
