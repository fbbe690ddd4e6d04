import { describe, expect, it } from "vitest";
import { FailedPreconditionError, InvalidArgumentError } from "../../src/errors/errors.js";
import { checkSeccompLoadable } from "../../src/oci/seccomp-check.js";
import { baselineSeccomp } from "../../src/oci/seccomp.js";
import { DEFAULT_CAPABILITIES } from "../../src/oci/defaults.js";
import type { LinuxSeccomp } from "../../src/oci/spec-types.js";

const full = { actions: new Set(["kill_process", "kill_thread", "trap", "errno", "user_notif", "trace", "log", "allow"]) };

describe("checkSeccompLoadable", () => {
  it("accepts the baseline and the deny-list shapes", async () => {
    await checkSeccompLoadable(baselineSeccomp(DEFAULT_CAPABILITIES, "x64"), full);
    await checkSeccompLoadable({ defaultAction: "SCMP_ACT_ALLOW" }, full);
  });

  it.each<[string, LinuxSeccomp]>([
    ["an unknown default action", { defaultAction: "SCMP_ACT_MAYBE" }],
    ["an unknown architecture", { defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_Z80"] }],
    ["an unknown flag", { defaultAction: "SCMP_ACT_ALLOW", flags: ["SECCOMP_FILTER_FLAG_NOPE"] }],
    ["a rule without names", { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: [], action: "SCMP_ACT_ERRNO" }] }],
    ["a bad name", { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["../x"], action: "SCMP_ACT_ERRNO" }] }],
    ["argument index 6", { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["read"], action: "SCMP_ACT_ERRNO", args: [{ index: 6, value: 0, op: "SCMP_CMP_EQ" }] }] }],
    ["an unknown operator", { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["read"], action: "SCMP_ACT_ERRNO", args: [{ index: 0, value: 0, op: "SCMP_CMP_ISH" }] }] }],
    ["a negative value", { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["read"], action: "SCMP_ACT_ERRNO", args: [{ index: 0, value: -1, op: "SCMP_CMP_EQ" }] }] }],
    ["errno out of range", { defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: 70000 }],
  ])("refuses %s with INVALID_ARGUMENT", async (_, p) => {
    await expect(checkSeccompLoadable(p, full)).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it("refuses an action the kernel lacks, and any profile on a kernel without seccomp, with FAILED_PRECONDITION", async () => {
    const old = { actions: new Set(["kill_thread", "trap", "errno", "trace", "allow"]) };
    await expect(checkSeccompLoadable({ defaultAction: "SCMP_ACT_LOG" }, old)).rejects.toThrow(/does not offer/);
    await expect(checkSeccompLoadable({ defaultAction: "SCMP_ACT_LOG" }, old)).rejects.toBeInstanceOf(FailedPreconditionError);
  });
});
