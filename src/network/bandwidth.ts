import { InvalidArgumentError } from "../errors/errors.js";

/** The pod annotations the kubelet's bandwidth shaping reads (rates in bits per second). */
export const INGRESS_BANDWIDTH_ANNOTATION = "kubernetes.io/ingress-bandwidth";
export const EGRESS_BANDWIDTH_ANNOTATION = "kubernetes.io/egress-bandwidth";

/** The `bandwidth` capability of CNI's CONVENTIONS.md: rates in bit/s, bursts in bits. */
export interface CniBandwidth {
  ingressRate?: number;
  ingressBurst?: number;
  egressRate?: number;
  egressBurst?: number;
}

// The kubelet's sanity bounds for these annotations: below 1 kbit/s or above 1 Pbit/s is a typo.
const MIN_RATE = 1_000n;
const MAX_RATE = 1_000_000_000_000_000n;

// Why not the kubelet's burst (math.MaxInt32 bits, "no limit"): bandwidth 1.1.1 computes the
// tbf buffer as a uint32 count of scheduler ticks, which overflows for such a burst at low
// rates (1 Mbit/s gets a wrapped 28 MB bucket) and at higher rates lets the first 268 MB
// through unshaped, so a limit set on a pod does not bite for seconds to minutes. Instead:
// a bucket of 100 ms at the rate, at least 64 KiB (one GSO segment, and well above the
// rate/HZ bytes tbf needs to reach its rate), at most the kubelet's value.
const MIN_BURST_BITS = 64 * 1024 * 8;
const MAX_BURST_BITS = 2 ** 31 - 1;

/** The burst podshim gives a rate the pod annotations set (bits). */
export function defaultBurstBits(rateBits: number): number {
  return Math.min(MAX_BURST_BITS, Math.max(MIN_BURST_BITS, Math.ceil(rateBits / 10)));
}

/**
 * The bandwidth capability for a pod, from its annotations; undefined when neither is set.
 * Values are Kubernetes quantities (`10M` is 10 Mbit/s, `1Mi` is 1 MiBit/s).
 */
export function bandwidthFromAnnotations(annotations: Readonly<Record<string, string>>): CniBandwidth | undefined {
  const out: CniBandwidth = {};
  const ingress = annotations[INGRESS_BANDWIDTH_ANNOTATION];
  const egress = annotations[EGRESS_BANDWIDTH_ANNOTATION];
  if (ingress !== undefined) {
    out.ingressRate = parseBitRate(ingress, INGRESS_BANDWIDTH_ANNOTATION);
    out.ingressBurst = defaultBurstBits(out.ingressRate);
  }
  if (egress !== undefined) {
    out.egressRate = parseBitRate(egress, EGRESS_BANDWIDTH_ANNOTATION);
    out.egressBurst = defaultBurstBits(out.egressRate);
  }
  return ingress === undefined && egress === undefined ? undefined : out;
}

/** A rate annotation in bits per second, rounded up like Quantity.Value(); refuses values
 * the kubelet refuses (malformed, below 1k, above 1P). */
export function parseBitRate(value: string, what: string): number {
  const q = parseQuantity(value);
  if (q === undefined) throw new InvalidArgumentError(`${what}: "${value}" is not a quantity like 10M or 1Mi`);
  if (q.num < MIN_RATE * q.den) throw new InvalidArgumentError(`${what}: ${value} is unreasonably small (< 1kbit)`);
  if (q.num > MAX_RATE * q.den) throw new InvalidArgumentError(`${what}: ${value} is unreasonably large (> 1Pbit)`);
  return Number((q.num + q.den - 1n) / q.den);
}

const BINARY_SUFFIX: Readonly<Record<string, bigint>> = { Ki: 10n, Mi: 20n, Gi: 30n, Ti: 40n, Pi: 50n, Ei: 60n };
const DECIMAL_SUFFIX: Readonly<Record<string, number>> = { n: -9, u: -6, m: -3, "": 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
// Kubernetes' grammar: <signedNumber><suffix>, the suffix a binary SI one, a decimal SI one,
// or a decimal exponent (1e3, 1E-3). "1E" alone is one exa; "1E3" is a thousand.
const QUANTITY = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:[eE]([+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$/;

/**
 * A Kubernetes quantity as an exact fraction num/den (den > 0), so that `1.1k` is 1100 and
 * not 1100.0000000000002; undefined when it is not one.
 */
export function parseQuantity(value: string): { num: bigint; den: bigint } | undefined {
  const m = QUANTITY.exec(value.trim());
  if (!m) return undefined;
  const [, sign, number, exponent, suffix] = m;
  const [intPart, fracPart = ""] = number!.split(".");
  let num = BigInt(`${intPart || "0"}${fracPart}`);
  let den = 10n ** BigInt(fracPart.length);
  if (sign === "-") num = -num;
  if (suffix !== undefined && suffix in BINARY_SUFFIX) {
    num *= 2n ** BINARY_SUFFIX[suffix]!;
  } else {
    const exp = exponent !== undefined ? Number(exponent) : DECIMAL_SUFFIX[suffix ?? ""]!;
    // Anything this far out is not a bandwidth; refuse rather than build a huge bigint.
    if (Math.abs(exp) > 100) return undefined;
    if (exp >= 0) num *= 10n ** BigInt(exp);
    else den *= 10n ** BigInt(-exp);
  }
  return { num, den };
}
