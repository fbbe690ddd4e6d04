// Localhost seccomp profiles: JSON files on the node that a pod or container names by path.
import { readFile, stat } from "node:fs/promises";
import { InvalidArgumentError } from "../errors/errors.js";
import { SecurityProfile_ProfileType, type SecurityProfile } from "../gen/cri/runtime/v1/api.js";
import type { LinuxSeccomp } from "./spec-types.js";

/**
 * The Localhost profile a security context names (localhost_ref, or the deprecated
 * seccomp_profile_path "localhost/<path>"), read from the node and keyed by the reference the
 * spec builders look it up by. Docker-format profiles load too, without their extra fields:
 * rules they condition on capabilities (includes/excludes) apply to every container.
 */
export async function loadLocalhostSeccomp(sc: { seccomp?: SecurityProfile | undefined; seccompProfilePath: string } | undefined): Promise<Record<string, LinuxSeccomp>> {
  let ref: string | undefined;
  if (sc?.seccomp?.profileType === SecurityProfile_ProfileType.Localhost) ref = sc.seccomp.localhostRef;
  else if (sc?.seccomp === undefined && sc?.seccompProfilePath.startsWith("localhost/")) ref = sc.seccompProfilePath.slice("localhost/".length);
  if (ref === undefined) return {};
  const path = ref.replace(/^localhost\//, "");
  if (!path.startsWith("/")) throw new InvalidArgumentError(`seccomp profile ${JSON.stringify(ref)} must be an absolute path on the node`);
  let text: string;
  try {
    if (!(await stat(path)).isFile()) throw new Error("not a regular file");
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new InvalidArgumentError(`seccomp profile ${path} cannot be read: ${(err as Error).message}`, { cause: err });
  }
  let raw: Partial<LinuxSeccomp>;
  try {
    raw = JSON.parse(text) as Partial<LinuxSeccomp>;
  } catch (err) {
    throw new InvalidArgumentError(`seccomp profile ${path} is not valid JSON`, { cause: err });
  }
  if (typeof raw.defaultAction !== "string") throw new InvalidArgumentError(`seccomp profile ${path} has no defaultAction`);
  const profile: LinuxSeccomp = { defaultAction: raw.defaultAction };
  if (raw.defaultErrnoRet !== undefined) profile.defaultErrnoRet = raw.defaultErrnoRet;
  if (raw.architectures !== undefined) profile.architectures = raw.architectures;
  if (raw.flags !== undefined) profile.flags = raw.flags;
  if (raw.syscalls !== undefined) {
    profile.syscalls = raw.syscalls.map((s) => ({
      names: s.names, action: s.action,
      ...(s.errnoRet !== undefined ? { errnoRet: s.errnoRet } : {}),
      ...(s.args !== undefined ? { args: s.args } : {}),
    }));
  }
  return { [path]: profile, [ref]: profile };
}
