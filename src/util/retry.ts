import { ErrorKind, isKind } from "../errors/errors.js";
import { sleep } from "./timeout.js";

/** Errors worth another try: containerd was briefly away, slow, or busy. */
export function isTransient(err: unknown): boolean {
  return isKind(err, ErrorKind.Unavailable) || isKind(err, ErrorKind.DeadlineExceeded) || isKind(err, ErrorKind.ResourceExhausted);
}

/**
 * Runs `work` until it succeeds, retrying the failures `retryable` picks with doubling pauses
 * (100 ms, 200 ms, ... up to 5 tries by default); any other error, or the last retryable one,
 * is thrown as it is.
 */
export async function retry<T>(work: () => Promise<T>, retryable: (err: unknown) => boolean, opts: { attempts?: number; firstDelayMs?: number; signal?: AbortSignal } = {}): Promise<T> {
  const attempts = opts.attempts ?? 5;
  let delay = opts.firstDelayMs ?? 100;
  for (let i = 1; ; i++) {
    try {
      return await work();
    } catch (err) {
      if (i >= attempts || !retryable(err) || opts.signal?.aborted) throw err;
      await sleep(delay, opts.signal);
      delay *= 2;
    }
  }
}

/** retry() of transient failures: containerd briefly away, slow, or busy. */
export function retryTransient<T>(work: () => Promise<T>, opts: { attempts?: number; firstDelayMs?: number; signal?: AbortSignal } = {}): Promise<T> {
  return retry(work, isTransient, opts);
}

/** Delays for a loop that retries until it succeeds: doubling from `firstMs` up to `maxMs`. */
export function* backoffDelays(firstMs: number, maxMs: number): Generator<number, never> {
  let d = firstMs;
  for (;;) {
    yield d;
    d = Math.min(d * 2, maxMs);
  }
}
