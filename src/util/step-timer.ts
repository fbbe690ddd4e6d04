/**
 * Milliseconds spent in each named step of an operation, for its one log line: where a slow
 * create or start spent its time is then in the log, not a guess.
 */
export class StepTimer {
  private last = performance.now();
  private readonly steps: Record<string, number> = {};

  mark(step: string): void {
    const now = performance.now();
    this.steps[step] = Math.round((now - this.last) * 10) / 10;
    this.last = now;
  }

  get ms(): Readonly<Record<string, number>> {
    return this.steps;
  }
}
