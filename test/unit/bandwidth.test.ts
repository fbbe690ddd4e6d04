import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/errors/errors.js";
import { bandwidthFromAnnotations, defaultBurstBits, parseBitRate, parseQuantity } from "../../src/network/bandwidth.js";

const value = (s: string): string | undefined => {
  const q = parseQuantity(s);
  if (!q) return undefined;
  // Exact: an integer when it divides, else the reduced fraction.
  const gcd = (a: bigint, b: bigint): bigint => (b === 0n ? (a < 0n ? -a : a) : gcd(b, a % b));
  const g = gcd(q.num, q.den);
  return q.num % q.den === 0n ? String(q.num / q.den) : `${q.num / g}/${q.den / g}`;
};

describe("parseQuantity", () => {
  it.each([
    ["1", "1"],
    ["1k", "1000"],
    ["1M", "1000000"],
    ["10M", "10000000"],
    ["1G", "1000000000"],
    ["1P", "1000000000000000"],
    ["1Ki", "1024"],
    ["10Mi", "10485760"],
    ["1Gi", "1073741824"],
    ["500k", "500000"],
    ["1.1k", "1100"],
    ["1.5Mi", "1572864"],
    [".5M", "500000"],
    ["2.", "2"],
    ["1e3", "1000"],
    ["1E6", "1000000"],
    ["1E", "1000000000000000000"],
    ["1500m", "3/2"],
    ["+3k", "3000"],
    ["-1k", "-1000"],
    [" 10M ", "10000000"],
  ])("%s is %s", (s, want) => expect(value(s)).toBe(want));

  it.each(["", "M", "1 M", "1MB", "1mi", "1KB", "ten", "1.2.3", "1e", "0x10", "1e999"])("%s is not a quantity", (s) =>
    expect(parseQuantity(s)).toBeUndefined());
});

describe("parseBitRate", () => {
  it("rounds up like Quantity.Value()", () => {
    expect(parseBitRate("1.0005k", "x")).toBe(1001);
    expect(parseBitRate("1Mi", "x")).toBe(1_048_576);
  });

  it("refuses what the kubelet refuses, naming the annotation", () => {
    expect(() => parseBitRate("999", "kubernetes.io/ingress-bandwidth")).toThrow("kubernetes.io/ingress-bandwidth: 999 is unreasonably small (< 1kbit)");
    expect(() => parseBitRate("999.9", "a")).toThrow(InvalidArgumentError);
    expect(parseBitRate("1k", "a")).toBe(1000);
    expect(parseBitRate("1P", "a")).toBe(1e15);
    expect(() => parseBitRate("1.001P", "a")).toThrow("unreasonably large (> 1Pbit)");
    expect(() => parseBitRate("-10M", "a")).toThrow("unreasonably small");
    expect(() => parseBitRate("10MB", "a")).toThrow('a: "10MB" is not a quantity like 10M or 1Mi');
  });
});

describe("bandwidthFromAnnotations", () => {
  it("is undefined without the annotations", () => {
    expect(bandwidthFromAnnotations({})).toBeUndefined();
    expect(bandwidthFromAnnotations({ "other": "1M" })).toBeUndefined();
  });

  it("sets rate and burst per direction", () => {
    expect(bandwidthFromAnnotations({ "kubernetes.io/ingress-bandwidth": "1M" })).toEqual({ ingressRate: 1_000_000, ingressBurst: 524_288 });
    expect(bandwidthFromAnnotations({ "kubernetes.io/egress-bandwidth": "100M" })).toEqual({ egressRate: 100_000_000, egressBurst: 10_000_000 });
    expect(bandwidthFromAnnotations({ "kubernetes.io/ingress-bandwidth": "10Mi", "kubernetes.io/egress-bandwidth": "500k" })).toEqual({
      ingressRate: 10_485_760, ingressBurst: 1_048_576, egressRate: 500_000, egressBurst: 524_288,
    });
  });

  it("throws InvalidArgumentError for a bad value", () => {
    expect(() => bandwidthFromAnnotations({ "kubernetes.io/egress-bandwidth": "lots" })).toThrow(InvalidArgumentError);
  });
});

describe("defaultBurstBits", () => {
  it("is 100 ms of traffic, at least 64 KiB, at most the kubelet's MaxInt32 bits", () => {
    expect(defaultBurstBits(1000)).toBe(524_288);
    expect(defaultBurstBits(1e9)).toBe(1e8);
    expect(defaultBurstBits(1e15)).toBe(2 ** 31 - 1);
  });
});
