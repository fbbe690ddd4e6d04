/** Waits for every promise to settle, then throws the first failure (in the order given), if
 * any: work started side by side that must all be over before a caller unwinds. */
export async function allSettledOrThrow<T>(work: ReadonlyArray<Promise<T>>): Promise<T[]> {
  const settled = await Promise.allSettled(work);
  const failed = settled.find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<T>).value);
}
