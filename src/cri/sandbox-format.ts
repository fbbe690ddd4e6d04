import { PodSandboxState, type PodSandbox, type PodSandboxStatus } from "../gen/cri/runtime/v1/api.js";
import { SandboxState, type SandboxRecord } from "../sandbox/sandbox-store.js";

export function criSandboxState(rec: SandboxRecord): PodSandboxState {
  return rec.state === SandboxState.Ready ? PodSandboxState.SANDBOX_READY : PodSandboxState.SANDBOX_NOTREADY;
}

export function toCriSandbox(rec: SandboxRecord): PodSandbox {
  return {
    id: rec.id,
    metadata: rec.config.metadata,
    state: criSandboxState(rec),
    createdAt: rec.createdAt,
    labels: rec.config.labels,
    annotations: rec.config.annotations,
    runtimeHandler: rec.runtimeHandler,
  };
}

export function toCriSandboxStatus(rec: SandboxRecord): PodSandboxStatus {
  const [ip = "", ...more] = rec.ips;
  return {
    id: rec.id,
    metadata: rec.config.metadata,
    state: criSandboxState(rec),
    createdAt: rec.createdAt,
    network: { ip, additionalIps: more.map((a) => ({ ip: a })) },
    linux: { namespaces: { options: rec.config.linux?.securityContext?.namespaceOptions ?? { network: 0, pid: 0, ipc: 0, targetId: "", usernsOptions: undefined } } },
    labels: rec.config.labels,
    annotations: rec.config.annotations,
    runtimeHandler: rec.runtimeHandler,
  };
}

/** Kubernetes label selector semantics of CRI filters: every pair must match exactly. */
export function matchesLabels(labels: Record<string, string>, selector: Record<string, string> | undefined): boolean {
  if (!selector) return true;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}
