import { ConfigError } from "./options.js";

/** A RuntimeClass handler: which containerd runtime runs a pod, with which runc options. */
export interface RuntimeHandlerConfig {
  runtimeType: string;
  /** containerd's pod_annotations: globs (`*`, `?`, `[...]`) of pod annotations copied into the
   * pause container's spec, for runtimes that read them (Kata, gVisor). */
  podAnnotations?: string[];
  /** containerd's privileged_without_host_devices: privileged containers get only their CRI
   * devices, not every device of the node (for VM-based runtimes). */
  privilegedWithoutHostDevices?: boolean;
  options: {
    binaryName?: string;
    root?: string;
    systemdCgroup?: boolean;
    noPivotRoot?: boolean;
  };
}

export const DEFAULT_RUNTIME_TYPE = "io.containerd.runc.v2";

/** The empty handler (and "runc", as containerd names its default) run runc through the v2 shim. */
export function defaultRuntimes(): Record<string, RuntimeHandlerConfig> {
  return { "": { runtimeType: DEFAULT_RUNTIME_TYPE, options: {} }, runc: { runtimeType: DEFAULT_RUNTIME_TYPE, options: {} } };
}

// Keys as containerd's config spells them (BinaryName) and in TOML style (binary_name).
const OPTION_KEYS: Record<string, keyof RuntimeHandlerConfig["options"]> = {
  BinaryName: "binaryName", binary_name: "binaryName",
  Root: "root", root: "root",
  SystemdCgroup: "systemdCgroup", systemd_cgroup: "systemdCgroup",
  NoPivotRoot: "noPivotRoot", no_pivot_root: "noPivotRoot",
};

const HANDLER_NAME = /^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/;

/** Parses the `[runtimes.<name>]` tables of the TOML file. */
export function parseRuntimes(raw: unknown, file: string): Record<string, RuntimeHandlerConfig> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new ConfigError(`${file}: runtimes must be a table of [runtimes.<name>] tables`);
  const out = defaultRuntimes();
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    const where = `${file}: runtimes.${name}`;
    if (!HANDLER_NAME.test(name)) throw new ConfigError(`${where}: a handler name must be a DNS label (lowercase letters, digits, - and .)`);
    if (typeof value !== "object" || value === null) throw new ConfigError(`${where} must be a table`);
    const table = value as Record<string, unknown>;
    const handler: RuntimeHandlerConfig = { runtimeType: DEFAULT_RUNTIME_TYPE, options: {} };
    for (const [key, v] of Object.entries(table)) {
      if (key === "runtime_type") {
        if (typeof v !== "string" || !/^io\.containerd\.[a-z0-9.]+\.v\d+$/.test(v)) throw new ConfigError(`${where}.runtime_type must name a containerd shim like io.containerd.runc.v2`);
        handler.runtimeType = v;
      } else if (key === "pod_annotations") {
        if (!Array.isArray(v) || !v.every((g) => typeof g === "string" && g !== "")) throw new ConfigError(`${where}.pod_annotations must be an array of non-empty glob strings`);
        handler.podAnnotations = v as string[];
      } else if (key === "privileged_without_host_devices") {
        if (typeof v !== "boolean") throw new ConfigError(`${where}.privileged_without_host_devices must be true or false`);
        handler.privilegedWithoutHostDevices = v;
      } else if (key === "options") {
        if (typeof v !== "object" || v === null) throw new ConfigError(`${where}.options must be a table`);
        for (const [ok, ov] of Object.entries(v as Record<string, unknown>)) {
          const field = OPTION_KEYS[ok];
          if (!field) throw new ConfigError(`${where}.options: unknown option "${ok}" (known: BinaryName, Root, SystemdCgroup, NoPivotRoot)`);
          const isBool = field === "systemdCgroup" || field === "noPivotRoot";
          if (isBool ? typeof ov !== "boolean" : typeof ov !== "string" || ov === "") throw new ConfigError(`${where}.options.${ok} must be ${isBool ? "true or false" : "a non-empty string"}`);
          (handler.options as Record<string, unknown>)[field] = ov;
        }
      } else {
        throw new ConfigError(`${where}: unknown key "${key}" (known: runtime_type, pod_annotations, privileged_without_host_devices, options)`);
      }
    }
    out[name] = handler;
  }
  // The empty handler is the default runtime, runc, as in containerd: [runtimes.runc] sets both.
  if (out.runc && Object.hasOwn(raw, "runc")) out[""] = out.runc;
  return out;
}

/**
 * Handlers whose runc SystemdCgroup disagrees with the cgroup driver: runc would put the
 * pod's cgroups where the kubelet does not look. Other shims' options are not runc's.
 */
export function cgroupDriverMismatches(driver: "cgroupfs" | "systemd", runtimes: Record<string, RuntimeHandlerConfig>): string[] {
  const wantSystemd = driver === "systemd";
  return Object.entries(runtimes)
    .filter(([, h]) => h.runtimeType === DEFAULT_RUNTIME_TYPE && (h.options.systemdCgroup ?? false) !== wantSystemd)
    .map(([name]) => name);
}

/** What is wrong and how to fix it, when the driver and the handlers disagree. */
export function cgroupDriverProblem(driver: "cgroupfs" | "systemd", runtimes: Record<string, RuntimeHandlerConfig>): { problem: string; fix: string } | undefined {
  const bad = cgroupDriverMismatches(driver, runtimes);
  if (bad.length === 0) return undefined;
  const names = bad.map((n) => (n === "" ? "the default handler" : `runtimes.${n}`)).join(", ");
  const want = driver === "systemd";
  return {
    problem: `--cgroup-driver is ${driver} but SystemdCgroup is ${want ? "not true" : "true"} for ${names}`,
    fix: `set SystemdCgroup = ${want} in [runtimes.runc.options] (and in each other runc handler's options), or use --cgroup-driver ${want ? "cgroupfs" : "systemd"}`,
  };
}
