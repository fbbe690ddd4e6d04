// Sysctls by the namespace they live in. A namespaced one in a namespace the pod shares with the
// node would change the node for everyone, so checkSysctls refuses it; node-wide ones never get
// this far (cri/validate.ts refuses them at the boundary).
import { InvalidArgumentError } from "../errors/errors.js";

/** The namespace a sysctl belongs to, by the kubelet's table; undefined for node-wide ones. */
export function sysctlNamespace(key: string): "ipc" | "net" | undefined {
  const k = key.replace(/\//g, ".");
  if (k === "kernel.sem" || k.startsWith("kernel.shm") || k.startsWith("kernel.msg") || k.startsWith("fs.mqueue.")) return "ipc";
  if (k.startsWith("net.")) return "net";
  return undefined;
}

/** Throws for a namespaced sysctl whose namespace is the node's; returns a copy otherwise. */
export function checkSysctls(requested: Readonly<Record<string, string>>, host: { hostNetwork: boolean; hostIpc: boolean }): Record<string, string> {
  for (const key of Object.keys(requested)) {
    const owner = sysctlNamespace(key);
    if (owner === "net" && host.hostNetwork) throw new InvalidArgumentError(`sysctl ${key} is not allowed with host networking`);
    if (owner === "ipc" && host.hostIpc) throw new InvalidArgumentError(`sysctl ${key} is not allowed with host IPC`);
  }
  return { ...requested };
}
