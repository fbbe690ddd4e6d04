const NS_PER_MS = 1_000_000n;

// Wall-clock epoch nanoseconds minus hrtime at the last anchoring; undefined until first use.
let clockOffset: bigint | undefined;
let lastNs = 0n;
// Date.now() only has millisecond resolution, so an hrtime-based estimate legitimately sits
// up to 1 ms off it. Past this much the wall clock was stepped (NTP, suspend) and we follow it.
const REANCHOR_NS = 50n * NS_PER_MS;

/**
 * Epoch nanoseconds that never go backwards between calls. Date.now() gives the wall clock
 * but only to the millisecond; process.hrtime.bigint() gives nanoseconds but from an
 * arbitrary origin. The sum of an anchor and hrtime gives both; the result is clamped to the
 * previous value, because `kubectl logs --since-time` and readers merging stdout and stderr
 * rely on the order of timestamps within one file.
 */
export function nowUnixNanos(): bigint {
  const hr = process.hrtime.bigint();
  const wall = BigInt(Date.now()) * NS_PER_MS;
  let t = clockOffset === undefined ? undefined : clockOffset + hr;
  if (t === undefined || t < wall - REANCHOR_NS || t > wall + REANCHOR_NS) {
    clockOffset = wall - hr;
    t = wall;
  }
  if (t < lastNs) t = lastNs;
  lastNs = t;
  return t;
}

