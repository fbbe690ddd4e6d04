import { describe, expect, it } from "vitest";
import { featuresFromRuncAnswer, kernelAtLeast, RuntimeFeatureProbe } from "../../src/oci/runtime-features.js";

describe("kernelAtLeast", () => {
  it("compares major.minor of a release string", () => {
    expect(kernelAtLeast("5.12.0-1-amd64", 5, 12)).toBe(true);
    expect(kernelAtLeast("5.11.22", 5, 12)).toBe(false);
    expect(kernelAtLeast("6.1.0", 5, 12)).toBe(true);
    expect(kernelAtLeast("4.19.0", 5, 12)).toBe(false);
    expect(kernelAtLeast("weird", 5, 12)).toBe(false);
  });
});

describe("featuresFromRuncAnswer", () => {
  it("recursive read-only mounts need rro from runc and a kernel with mount_setattr", () => {
    const answer = JSON.stringify({ ociVersionMin: "1.0.0", mountOptions: ["ro", "rro", "rbind"] });
    expect(featuresFromRuncAnswer(answer, "6.1.0")).toEqual({ recursiveReadOnlyMounts: true, userNamespaces: false });
    expect(featuresFromRuncAnswer(answer, "5.10.0").recursiveReadOnlyMounts).toBe(false);
    expect(featuresFromRuncAnswer(JSON.stringify({ mountOptions: ["ro"] }), "6.1.0").recursiveReadOnlyMounts).toBe(false);
    expect(featuresFromRuncAnswer("not json", "6.1.0").recursiveReadOnlyMounts).toBe(false);
  });
});

describe("RuntimeFeatureProbe", () => {
  it("reports nothing for a binary that cannot run and for other runtime types", async () => {
    const probe = new RuntimeFeatureProbe();
    expect(await probe.features({ runtimeType: "io.containerd.runc.v2", options: { binaryName: "/nonexistent/runc" } })).toEqual({ recursiveReadOnlyMounts: false, userNamespaces: false });
    expect(await probe.features({ runtimeType: "io.containerd.kata.v2", options: {} })).toEqual({ recursiveReadOnlyMounts: false, userNamespaces: false });
  });
});
