// The gRPC wire format both podshim's client and server use: grpc-timeout read back, and
// grpc-message percent-encoding that survives a decode.
import { describe, expect, it } from "vitest";
import { decodeMessage, Deframer, encodeMessage, framed, parseTimeout, timeoutHeader } from "../../src/util/grpc-wire.js";

describe("timeoutHeader", () => {
  it("uses the finest unit whose count fits in 8 digits", () => {
    expect(timeoutHeader(1)).toBe("1m");
    expect(timeoutHeader(1.2)).toBe("2m");
    expect(timeoutHeader(99_999_999)).toBe("99999999m");
    expect(timeoutHeader(100_000_000)).toBe("100000S");
    expect(timeoutHeader(7 * 24 * 3600 * 1000)).toBe("604800S");
    expect(timeoutHeader(1e12)).toBe("16666667M");
    expect(timeoutHeader(1e15)).toBe("99999999H");
  });
});

describe("parseTimeout", () => {
  it("reads each unit, and refuses what is not the header's form", () => {
    expect(parseTimeout("1H")).toBe(3_600_000);
    expect(parseTimeout("2M")).toBe(120_000);
    expect(parseTimeout("3S")).toBe(3000);
    expect(parseTimeout("250m")).toBe(250);
    expect(parseTimeout("1500u")).toBe(1.5);
    expect(parseTimeout("2000000n")).toBe(2);
    for (const bad of ["", "5", "S", "123456789S", "1.5S", "-1S", "5s ", "5D"]) expect(parseTimeout(bad)).toBeUndefined();
  });

  it("reads what timeoutHeader writes", () => {
    for (const ms of [1, 999, 120_000, 7 * 24 * 3600 * 1000]) expect(parseTimeout(timeoutHeader(ms))).toBeGreaterThanOrEqual(ms);
  });
});

describe("grpc-message", () => {
  it("leaves plain ASCII as it is and percent-encodes '%', control characters and UTF-8", () => {
    expect(encodeMessage('pod "x" not found')).toBe('pod "x" not found');
    expect(encodeMessage("100% café\n")).toBe("100%25 caf%C3%A9%0A");
    for (const text of ["100% café\n", "中文 \u0000 end", "plain"]) expect(decodeMessage(encodeMessage(text))).toBe(text);
  });
});

describe("Deframer", () => {
  it("splits messages however they arrive, and names what it cannot read", () => {
    const d = new Deframer(100);
    const two = Buffer.concat([framed(Buffer.from("abc")), framed(Buffer.from("de"))]);
    expect(d.push(two.subarray(0, 2))).toEqual([]);
    const text = (got: ReturnType<Deframer["push"]>) => (Array.isArray(got) ? got.map(String) : got);
    expect(text(d.push(two.subarray(2, 9)))).toEqual(["abc"]);
    expect(text(d.push(two.subarray(9)))).toEqual(["de"]);
    expect(new Deframer(100).push(Buffer.from([1, 0, 0, 0, 1, 7]))).toEqual({ problem: "compressed" });
    expect(new Deframer(100).push(Buffer.from([0, 0, 0, 0, 101]))).toEqual({ problem: "too-large", length: 101 });
  });
});
