// What an aborted pull reports, shared by the requests and the bodies they return.
import { CanceledError, DeadlineExceededError, PodshimError } from "../errors/errors.js";

/** The error an aborted signal stands for: its reason when that is one of ours, a deadline for
 * AbortSignal.timeout, otherwise a cancellation. */
export function abortError(signal: AbortSignal, what: string): PodshimError {
  const reason: unknown = signal.reason;
  if (reason instanceof PodshimError) return reason;
  if (reason instanceof Error && reason.name === "TimeoutError") {
    return new DeadlineExceededError(`${what}: deadline exceeded`, { cause: reason });
  }
  return new CanceledError(`${what}: canceled`, { cause: reason });
}
