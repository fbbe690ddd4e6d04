import { describe, expect, it } from "vitest";
import { defaultConfig } from "../../src/config/options.js";
import { ForwardLimiter, STREAMING_LIMIT_DEFAULTS, streamingExposure } from "../../src/streaming/limits.js";

describe("ForwardLimiter", () => {
  it("caps per pod and in total, and release gives the slot back once", () => {
    const l = new ForwardLimiter({ portForwardPerPod: 2, portForwardTotal: 3 });
    const a1 = l.acquire("a");
    const a2 = l.acquire("a");
    expect("release" in a1 && "release" in a2).toBe(true);
    expect(l.acquire("a")).toEqual({ refused: expect.stringMatching(/into pod a \(at most 2 at once\)/) });
    const b1 = l.acquire("b");
    expect(l.acquire("c")).toEqual({ refused: expect.stringMatching(/on this node \(at most 3 at once\)/) });
    expect(l.active).toEqual({ total: 3, pods: 2 });
    if ("release" in a1) {
      a1.release();
      a1.release();
    }
    expect(l.active).toEqual({ total: 2, pods: 2 });
    expect("release" in l.acquire("a")).toBe(true);
    if ("release" in b1) b1.release();
    expect(l.active).toEqual({ total: 2, pods: 1 });
  });

  it("defaults match the config's", () => {
    const c = defaultConfig();
    expect([c.portForwardMaxPerPod, c.portForwardMaxTotal, c.streamMaxStreamsPerSession]).toEqual([
      STREAMING_LIMIT_DEFAULTS.portForwardPerPod, STREAMING_LIMIT_DEFAULTS.portForwardTotal, STREAMING_LIMIT_DEFAULTS.streamsPerSession,
    ]);
  });
});

describe("streamingExposure", () => {
  it.each([
    ["127.0.0.1", false, false],
    ["127.1.2.3", false, false],
    ["::1", false, false],
    ["[::1]", false, false],
    ["localhost", false, false],
    ["0.0.0.0", false, true],
    ["::", false, true],
    ["10.0.0.5", false, true],
    ["10.0.0.5", true, false],
  ])("%s tls=%s warns=%s", (host, tls, warns) => {
    const e = streamingExposure(host, tls);
    expect(e.warning !== undefined).toBe(warns);
  });
});
