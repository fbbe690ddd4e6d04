// Trying hosts in turn: the first that serves wins; when none does, the error that tells most
// about how far the attempts got is the one reported, as containerd does.
import { ErrorKind, NotFoundError, isKind, messageOf } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import { hostLabel } from "./hosts.js";
import type { RegistryHost } from "./hosts.js";

export interface HostFailure {
  host: RegistryHost;
  err: unknown;
}

/** How much an error tells about where resolution got: the furthest wins, as in containerd. */
function errorRank(err: unknown): number {
  if (isKind(err, ErrorKind.Unavailable) || isKind(err, ErrorKind.DeadlineExceeded)) return 1;
  if (isKind(err, ErrorKind.NotFound)) return 2;
  return 3;
}

/** The error to report when every host failed: the furthest one, or, when that is NotFound,
 * a NotFound naming the hosts that did not have it (`notFound` words it). */
export function finalError(failures: HostFailure[], notFound: (hosts: string) => string): unknown {
  let best = failures[0]!;
  for (const f of failures) if (errorRank(f.err) > errorRank(best.err)) best = f;
  if (!isKind(best.err, ErrorKind.NotFound)) return best.err;
  const missing = failures.filter((f) => isKind(f.err, ErrorKind.NotFound)).map((f) => hostLabel(f.host));
  const others = failures.filter((f) => !isKind(f.err, ErrorKind.NotFound)).map((f) => messageOf(f.err));
  const message = notFound(missing.join(", ")) + (others.length > 0 ? ` (also tried: ${others.join("; ")})` : "");
  return new NotFoundError(message, { cause: best.err });
}

/** Runs `fn` on each host in order until one succeeds. A cancellation ends the attempts at
 * once; `what` names the content for the log and the NotFound message. */
export async function onHosts<T>(
  hosts: readonly RegistryHost[],
  o: { signal: AbortSignal | undefined; logger: Logger; what: string },
  fn: (host: RegistryHost) => Promise<T>,
): Promise<T> {
  const failures: HostFailure[] = [];
  for (const host of hosts) {
    try {
      return await fn(host);
    } catch (err) {
      if (o.signal?.aborted || isKind(err, ErrorKind.Canceled)) throw err;
      failures.push({ host, err });
      if (hosts.length > 1) o.logger.debug({ content: o.what, host: hostLabel(host), err: messageOf(err) }, "registry host could not serve content");
    }
  }
  throw finalError(failures, (notFound) => `${o.what} not found in ${notFound}`);
}
