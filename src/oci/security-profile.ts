// Seccomp and AppArmor choices from a CRI SecurityProfile, shared by the pause container and app
// containers so both read the kubelet's fields (and their deprecated string forms) alike.
import { InvalidArgumentError } from "../errors/errors.js";
import type { SecurityProfile } from "../gen/cri/runtime/v1/api.js";
import { SecurityProfile_ProfileType } from "../gen/cri/runtime/v1/api.js";
import type { LinuxSeccomp } from "./spec-types.js";

const LOCALHOST_PREFIX = "localhost/";

/** The deprecated string forms (seccomp_profile_path, apparmor_profile), used only when the
 * structured field is absent. "" means no choice was made. */
export function profileFromPath(path: string, what: "seccomp" | "apparmor"): SecurityProfile | undefined {
  if (path === "") return undefined;
  if (path === "runtime/default" || path === "docker/default") return { profileType: SecurityProfile_ProfileType.RuntimeDefault, localhostRef: "" };
  if (path === "unconfined") return { profileType: SecurityProfile_ProfileType.Unconfined, localhostRef: "" };
  if (path.startsWith(LOCALHOST_PREFIX)) return { profileType: SecurityProfile_ProfileType.Localhost, localhostRef: path.slice(LOCALHOST_PREFIX.length) };
  throw new InvalidArgumentError(`invalid ${what} profile ${JSON.stringify(path)} (want runtime/default, unconfined or localhost/<name>)`);
}

function checkRef(profile: SecurityProfile, what: string): void {
  if (profile.profileType !== SecurityProfile_ProfileType.Localhost && profile.localhostRef !== "") {
    throw new InvalidArgumentError(`${what} localhostRef is only valid with profile type Localhost`);
  }
}

export interface SeccompSources {
  /** The runtime default profile, or a function building it on demand; absent = RuntimeDefault
   * means unconfined. */
  defaultSeccomp?: LinuxSeccomp | (() => LinuxSeccomp);
  /** Localhost profiles, read from the node by the caller, by their localhost_ref. */
  localhostSeccomp?: Readonly<Record<string, LinuxSeccomp>>;
}

/** The seccomp filter for a profile: none for nil (the CRI's unconfined default) and
 * Unconfined. Callers skip this for privileged containers. Returns a copy the caller may change. */
export function seccompFor(profile: SecurityProfile | undefined, sources: SeccompSources): LinuxSeccomp | undefined {
  if (profile === undefined) return undefined;
  checkRef(profile, "seccomp");
  switch (profile.profileType) {
    case SecurityProfile_ProfileType.Unconfined:
      return undefined;
    case SecurityProfile_ProfileType.RuntimeDefault: {
      const d = sources.defaultSeccomp;
      if (d === undefined) return undefined;
      return structuredClone(typeof d === "function" ? d() : d);
    }
    case SecurityProfile_ProfileType.Localhost: {
      const ref = profile.localhostRef.replace(/^localhost\//, "");
      const loaded = sources.localhostSeccomp?.[ref];
      if (loaded === undefined) throw new InvalidArgumentError(`seccomp profile ${JSON.stringify(ref)} is not loaded`);
      return structuredClone(loaded);
    }
    default:
      throw new InvalidArgumentError(`unknown seccomp profile type ${profile.profileType}`);
  }
}

/** What the node offers for AppArmor; pass none when the host has no AppArmor at all. */
export interface AppArmorHost {
  /** The runtime default profile's name, already loaded by the caller; absent = none. */
  defaultProfile?: string;
  /** Profile names loaded in the kernel (the first word of each line of
   * /sys/kernel/security/apparmor/profiles). */
  loadedProfiles: readonly string[];
}

/** The AppArmor profile name for a process, or undefined for none. containerd's rules: nil means
 * the runtime default; privileged drops the default but keeps a profile named explicitly. */
export function apparmorFor(profile: SecurityProfile | undefined, privileged: boolean, host: AppArmorHost | undefined): string | undefined {
  if (profile !== undefined) checkRef(profile, "apparmor");
  const type = profile?.profileType ?? SecurityProfile_ProfileType.RuntimeDefault;
  if (host === undefined) {
    // Quietly running without a profile someone named would be a weaker container than asked for.
    if (type === SecurityProfile_ProfileType.Localhost) {
      throw new InvalidArgumentError(`AppArmor profile ${JSON.stringify(profile!.localhostRef)} was requested but AppArmor is not enabled on this node`);
    }
    return undefined;
  }
  switch (type) {
    case SecurityProfile_ProfileType.Unconfined:
      return undefined;
    case SecurityProfile_ProfileType.RuntimeDefault:
      return privileged ? undefined : host.defaultProfile;
    case SecurityProfile_ProfileType.Localhost: {
      const name = profile!.localhostRef.replace(/^localhost\//, "");
      if (name === "") throw new InvalidArgumentError("AppArmor profile type Localhost needs a localhostRef");
      if (!host.loadedProfiles.includes(name)) throw new InvalidArgumentError(`AppArmor profile ${JSON.stringify(name)} is not loaded on this node`);
      return name;
    }
    default:
      throw new InvalidArgumentError(`unknown AppArmor profile type ${type}`);
  }
}
