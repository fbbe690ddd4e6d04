// Where a container's cgroup goes, for both drivers. Shared by the pause container and the app
// containers of a pod, which must land under the same parent.
import { InvalidArgumentError } from "../errors/errors.js";

export const CgroupDriver = { Cgroupfs: "cgroupfs", Systemd: "systemd" } as const;
export type CgroupDriver = (typeof CgroupDriver)[keyof typeof CgroupDriver];

/** Used when the kubelet names no cgroup parent (crictl, critest). */
export const DEFAULT_CGROUP_PARENT = "/podshim";
export const DEFAULT_SYSTEMD_SLICE = "system.slice";
/** The middle part of systemd cgroup paths: runc names the scope `<prefix>-<id>.scope`. */
export const SYSTEMD_SCOPE_PREFIX = "cri-podshim";

/** cgroupfs: a path under the parent. systemd: runc's "slice:prefix:name", which becomes the
 * scope <prefix>-<id>.scope in the parent's slice. */
export function cgroupsPath(id: string, cgroupParent: string, driver: CgroupDriver): string {
  if (driver === CgroupDriver.Systemd) {
    const parent = cgroupParent.replace(/\/+$/, "");
    const slice = parent === "" ? DEFAULT_SYSTEMD_SLICE : parent.slice(parent.lastIndexOf("/") + 1);
    if (!slice.endsWith(".slice")) {
      throw new InvalidArgumentError(`cgroup parent ${JSON.stringify(cgroupParent)} is not a systemd slice (the systemd cgroup driver is in use)`);
    }
    return `${slice}:${SYSTEMD_SCOPE_PREFIX}:${id}`;
  }
  const parent = (cgroupParent || DEFAULT_CGROUP_PARENT).replace(/\/+$/, "");
  return `${parent.startsWith("/") ? "" : "/"}${parent}/${id}`;
}
