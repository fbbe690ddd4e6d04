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

  /** Times work that runs beside other steps: its own duration, not the time since the last
   * mark (which it leaves alone). Recorded whether the work succeeds or not. */
  async span<T>(step: string, work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await work();
    } finally {
      this.steps[step] = Math.round((performance.now() - started) * 10) / 10;
    }
  }

  get ms(): Readonly<Record<string, number>> {
    return this.steps;
  }
}
