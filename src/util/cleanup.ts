import { messageOf } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";

/**
 * Undo steps registered right after each side effect of a multi-step operation. On failure
 * they run in reverse, each tried even when an earlier one failed (a leak is worse than a
 * second error); on success they are dropped.
 */
export class CleanupStack {
  private readonly steps: Array<{ name: string; undo: () => Promise<unknown> }> = [];

  constructor(private readonly logger: Logger) {}

  push(name: string, undo: () => Promise<unknown>): void {
    this.steps.push({ name, undo });
  }

  /** Runs every undo, newest first; returns the names of those that failed. */
  async unwind(): Promise<string[]> {
    const failed: string[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step.undo();
      } catch (err) {
        failed.push(step.name);
        this.logger.error({ step: step.name, err: messageOf(err) }, "cleanup step failed; something may be left behind");
      }
    }
    return failed;
  }

  dismiss(): void {
    this.steps.length = 0;
  }
}
