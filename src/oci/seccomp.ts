// podshim's RuntimeDefault seccomp profile: the baseline allow-list (seccomp-baseline.ts) by
// default, or the older deny-list (seccomp-denylist.ts) when the operator chooses it.
//
// Allow-list shape: every call not named fails with EPERM, so a call a newer kernel adds stays
// closed until the list names it. All ABIs of the host CPU are listed so 32-bit binaries run
// under the same rules instead of dying on a foreign-architecture kill.
import type { SeccompDefaultProfile } from "../config/options.js";
import { UnimplementedError } from "../errors/errors.js";
import { BASELINE_GROUPS, SECCOMP_ARCHITECTURES, type AllowGroup } from "./seccomp-baseline.js";
import { denylistSeccomp } from "./seccomp-denylist.js";
import type { LinuxSeccomp, LinuxSyscall } from "./spec-types.js";


const EPERM = 1;

function capName(c: string): string {
  const u = c.toUpperCase();
  return u.startsWith("CAP_") ? u : `CAP_${u}`;
}

function applies(g: AllowGroup, arch: string, held: ReadonlySet<string>): boolean {
  if (g.arches !== undefined && !g.arches.includes(arch)) return false;
  if (g.withCap !== undefined && !g.withCap.some((c) => held.has(c))) return false;
  if (g.withoutCap !== undefined && g.withoutCap.some((c) => held.has(c))) return false;
  return true;
}

/** The baseline allow-list for a container holding `capabilities` (CAP_* or bare names). */
export function baselineSeccomp(capabilities: readonly string[], arch: string = process.arch): LinuxSeccomp {
  const architectures = SECCOMP_ARCHITECTURES[arch];
  if (architectures === undefined) throw new UnimplementedError(`podshim has no RuntimeDefault seccomp profile for architecture ${arch}`);
  const held = new Set(capabilities.map(capName));
  const syscalls: LinuxSyscall[] = [];
  for (const g of BASELINE_GROUPS) {
    if (!applies(g, arch, held)) continue;
    const base: LinuxSyscall = g.errno !== undefined
      ? { names: [...g.names], action: "SCMP_ACT_ERRNO", errnoRet: g.errno }
      : { names: [...g.names], action: "SCMP_ACT_ALLOW" };
    if (g.argsAnyOf === undefined) {
      syscalls.push(base);
      continue;
    }
    // Conditions inside one rule are ANDed; separate rules give the OR the group means.
    for (const c of g.argsAnyOf) {
      syscalls.push({ ...base, names: [...g.names], args: [{ index: c.index, value: c.value, ...(c.valueTwo !== undefined ? { valueTwo: c.valueTwo } : {}), op: c.op }] });
    }
  }
  return { defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: EPERM, architectures: [...architectures], syscalls };
}

/** The RuntimeDefault profile the node applies: `profile` is the operator's choice
 * (seccomp_default_profile). */
export function runtimeDefaultSeccomp(capabilities: readonly string[], arch: string = process.arch, profile: SeccompDefaultProfile = "baseline"): LinuxSeccomp {
  return profile === "denylist" ? denylistSeccomp(capabilities, arch) : baselineSeccomp(capabilities, arch);
}
