import { DeadlineExceededError } from "../errors/errors.js";

/** The longest delay setTimeout honours (about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Milliseconds left until a deadline given as epoch ms; never negative. */
export function msUntil(deadline: number): number {
  return Math.max(0, deadline - Date.now());
}

/**
 * Races a promise against a timer. The timer is unref'd so it never keeps the process
 * alive; the error names what was being waited for.
 */
export async function withTimeout<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  // Node fires a timer past 2^31-1 ms at once; a limit that far away is no limit.
  if (!(ms <= MAX_TIMER_MS)) return work;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineExceededError(`${what} did not finish within ${ms} ms`)), ms);
    timer.unref();
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    timer.unref();
    function done() {
      signal?.removeEventListener("abort", done);
      clearTimeout(timer);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
