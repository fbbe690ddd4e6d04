// User and group ids as the kubelet and containerd bound them.
import { InvalidArgumentError } from "../errors/errors.js";

/** The largest id the kubelet and containerd accept for a user or group. */
export const MAX_ID = 2 ** 31 - 1;

export function checkId(value: bigint | number, what: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > MAX_ID) throw new InvalidArgumentError(`${what} ${value} is out of range 0..${MAX_ID}`);
  return n;
}
