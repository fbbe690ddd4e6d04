import { describe, expect, it } from "vitest";
import { ErrorKind, PodshimError } from "../../src/errors/errors.js";
import { StreamKind, TokenCache, type PendingSession } from "../../src/streaming/tokens.js";

const exec: PendingSession = { kind: StreamKind.Exec, params: { containerId: "c1", cmd: ["sh"], tty: false, stdin: true, stdout: true, stderr: true } };
const forward: PendingSession = { kind: StreamKind.PortForward, params: { podSandboxId: "p1", ports: [80] } };

describe("TokenCache", () => {
  it("issues 8 base64url characters, all different", () => {
    const cache = new TokenCache();
    const tokens = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const t = cache.issue(exec);
      expect(t).toMatch(/^[A-Za-z0-9_-]{8}$/);
      tokens.add(t);
    }
    expect(tokens.size).toBe(200);
  });

  it("hands out the whole request once, then never again", () => {
    const cache = new TokenCache();
    const t = cache.issue(exec);
    expect(cache.consume(t, StreamKind.Exec)).toEqual(exec);
    expect(cache.consume(t, StreamKind.Exec)).toBeUndefined();
  });

  it("spends a token presented under the wrong kind", () => {
    const cache = new TokenCache();
    const t = cache.issue(forward);
    expect(cache.consume(t, StreamKind.Exec)).toBeUndefined();
    expect(cache.consume(t, StreamKind.PortForward)).toBeUndefined();
  });

  it("expires after the TTL, and an expired lookup spends the token too", () => {
    let now = 1_000_000;
    const cache = new TokenCache({ now: () => now });
    const fresh = cache.issue(exec);
    const stale = cache.issue(exec);
    now += 59_999;
    expect(cache.consume(fresh, StreamKind.Exec)).toEqual(exec);
    now += 1;
    expect(cache.consume(stale, StreamKind.Exec)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it("refuses past the in-flight cap with ResourceExhausted, and expiry frees room", () => {
    let now = 0;
    const cache = new TokenCache({ now: () => now, maxInFlight: 3 });
    for (let i = 0; i < 3; i++) cache.issue(exec);
    let thrown: unknown;
    try {
      cache.issue(exec);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(PodshimError);
    expect((thrown as PodshimError).kind).toBe(ErrorKind.ResourceExhausted);
    expect((thrown as PodshimError).message).toBe("maximum number of in-flight requests exceeded");
    now += 60_000;
    expect(() => cache.issue(exec)).not.toThrow();
    expect(cache.size).toBe(1);
  });

  it("has the reference's cap of 1000 by default", () => {
    const cache = new TokenCache();
    for (let i = 0; i < 1000; i++) cache.issue(exec);
    expect(() => cache.issue(exec)).toThrow(/in-flight/);
  });
});
