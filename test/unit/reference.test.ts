import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/errors/errors.js";
import { isDigest, isImageId, parseDigest, parseImageRef, refName, refString } from "../../src/distribution/reference.js";
import type { ImageRef } from "../../src/distribution/reference.js";

const D = `sha256:${"a".repeat(64)}`;
const D512 = `sha512:${"b".repeat(128)}`;
const HEX = "0123456789abcdef".repeat(4);

describe("parseImageRef normalises", () => {
  const cases: Array<[string, ImageRef, string]> = [
    ["busybox", { domain: "docker.io", path: "library/busybox", tag: "latest" }, "docker.io/library/busybox:latest"],
    ["busybox:1.36", { domain: "docker.io", path: "library/busybox", tag: "1.36" }, "docker.io/library/busybox:1.36"],
    ["user/app", { domain: "docker.io", path: "user/app", tag: "latest" }, "docker.io/user/app:latest"],
    ["user/team/app:v1", { domain: "docker.io", path: "user/team/app", tag: "v1" }, "docker.io/user/team/app:v1"],
    ["docker.io/busybox", { domain: "docker.io", path: "library/busybox", tag: "latest" }, "docker.io/library/busybox:latest"],
    ["docker.io/library/busybox:latest", { domain: "docker.io", path: "library/busybox", tag: "latest" }, "docker.io/library/busybox:latest"],
    ["index.docker.io/library/busybox", { domain: "docker.io", path: "library/busybox", tag: "latest" }, "docker.io/library/busybox:latest"],
    ["index.docker.io/busybox", { domain: "docker.io", path: "library/busybox", tag: "latest" }, "docker.io/library/busybox:latest"],
    ["registry.k8s.io/pause:3.10", { domain: "registry.k8s.io", path: "pause", tag: "3.10" }, "registry.k8s.io/pause:3.10"],
    ["localhost/app", { domain: "localhost", path: "app", tag: "latest" }, "localhost/app:latest"],
    ["localhost:5000/a/b:t", { domain: "localhost:5000", path: "a/b", tag: "t" }, "localhost:5000/a/b:t"],
    ["127.0.0.1:5000/podshim-test/busybox", { domain: "127.0.0.1:5000", path: "podshim-test/busybox", tag: "latest" }, "127.0.0.1:5000/podshim-test/busybox:latest"],
    ["[::1]:5000/app:v", { domain: "[::1]:5000", path: "app", tag: "v" }, "[::1]:5000/app:v"],
    ["myhost:5000/app", { domain: "myhost:5000", path: "app", tag: "latest" }, "myhost:5000/app:latest"],
    // Uppercase cannot be a Docker Hub namespace, so distribution reads it as a host.
    ["Registry/app", { domain: "Registry", path: "app", tag: "latest" }, "Registry/app:latest"],
    [`busybox@${D}`, { domain: "docker.io", path: "library/busybox", digest: D }, `docker.io/library/busybox@${D}`],
    [`busybox:1.36@${D}`, { domain: "docker.io", path: "library/busybox", tag: "1.36", digest: D }, `docker.io/library/busybox:1.36@${D}`],
    [`quay.io/a/b@${D512}`, { domain: "quay.io", path: "a/b", digest: D512 }, `quay.io/a/b@${D512}`],
    [`ex.com/a@blake3:${HEX}`, { domain: "ex.com", path: "a", digest: `blake3:${HEX}` }, `ex.com/a@blake3:${HEX}`],
    ["a/b.c_d__e-f--g/h", { domain: "docker.io", path: "a/b.c_d__e-f--g/h", tag: "latest" }, "docker.io/a/b.c_d__e-f--g/h:latest"],
    ["app:_Under.score-1", { domain: "docker.io", path: "library/app", tag: "_Under.score-1" }, "docker.io/library/app:_Under.score-1"],
    [`app:${"t".repeat(128)}`, { domain: "docker.io", path: "library/app", tag: "t".repeat(128) }, `docker.io/library/app:${"t".repeat(128)}`],
  ];
  it.each(cases)("%s", (input, want, str) => {
    const ref = parseImageRef(input);
    expect(ref).toEqual(want);
    expect(refString(ref)).toBe(str);
    expect(refName(ref)).toBe(`${want.domain}/${want.path}`);
    // Normalising is idempotent.
    expect(parseImageRef(str)).toEqual(want);
  });
});

describe("parseImageRef refuses", () => {
  const cases: Array<[string, string]> = [
    ["", "empty"],
    [HEX, "image id"],
    ["Busybox", "must be lowercase"],
    ["docker.io/User/app", "must be lowercase"],
    ["ex.com/App", "must be lowercase"],
    ["app:", "tag"],
    ["app:-x", "tag"],
    ["app:.x", "tag"],
    [`app:${"t".repeat(129)}`, "tag"],
    ["app:a b", "tag"],
    ["app@", 'nothing follows "@"'],
    ["app@sha256:abc", "64 lowercase hex"],
    [`app@sha256:${"A".repeat(64)}`, "64 lowercase hex"],
    [`app@sha512:${"b".repeat(64)}`, "128 lowercase hex"],
    ["app@md5:1234", "at least 32 hex"],
    [`app@${D}@${D}`, 'more than one "@"'],
    [`app@SHA256:${"a".repeat(64)}`, "algorithm:hex"],
    ["ex.com//app", "empty path component"],
    ["ex.com/app/", "empty path component"],
    ["/app", "empty path component"],
    ["app-", "path component"],
    ["a/-b", "path component"],
    ["a/b___c", "path component"],
    ["a/b..c", "path component"],
    ["ex-.com/app", "registry host"],
    ["ex.com:port/app", "registry host"],
    [":tag", "repository name is empty"],
    ["docker.io/" + "a".repeat(250), "more than 255"],
  ];
  it.each(cases)("%j (%s)", (input, reason) => {
    let caught: unknown;
    try {
      parseImageRef(input);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    const message = (caught as Error).message;
    expect(message).toContain(JSON.stringify(input));
    expect(message).toContain(reason);
  });
});

describe("digests and image ids", () => {
  it.each([
    [D, true],
    [`sha256:${HEX}`, true],
    [HEX, true],
    [`sha512:${"b".repeat(128)}`, false],
    [`sha256:${HEX.slice(1)}`, false],
    [HEX.toUpperCase(), false],
    ["busybox", false],
  ])("isImageId(%s) = %s", (s, want) => {
    expect(isImageId(s)).toBe(want);
  });

  it("parseDigest splits and validates", () => {
    expect(parseDigest(D)).toEqual({ algorithm: "sha256", encoded: "a".repeat(64) });
    expect(isDigest(D512)).toBe(true);
    expect(isDigest("sha256:xyz")).toBe(false);
    expect(() => parseDigest("nope", "Docker-Content-Digest")).toThrow(/invalid Docker-Content-Digest/);
  });
});
