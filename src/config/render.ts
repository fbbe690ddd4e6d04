// Config as TOML: `podshim config default` (every key with its default and a comment) and
// `podshim config dump` (the effective values). Both load back through applyToml unchanged.
import { OPTIONS, defaultConfig, type Config, type OptionSpec } from "./options.js";
import type { RuntimeHandlerConfig } from "./runtimes.js";

// TOML basic strings accept JSON's escapes, so JSON.stringify quotes a string for both.
const quote = (s: string) => JSON.stringify(s);

function valueText(value: unknown): string {
  if (typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return `[${value.map((v) => quote(String(v))).join(", ")}]`;
  if (value === undefined || value === null) return quote("");
  if (typeof value === "object" && "host" in value && "port" in value) {
    const { host, port } = value as { host: string; port: number };
    return quote(host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`);
  }
  return quote(String(value));
}

const RUNC_OPTION_KEYS: Array<[keyof RuntimeHandlerConfig["options"], string, string]> = [
  ["binaryName", "BinaryName", "the OCI runtime binary (default: runc on PATH)"],
  ["root", "Root", "the runtime's state root (default: the runtime's own)"],
  ["systemdCgroup", "SystemdCgroup", "let systemd manage cgroups; must match cgroup_driver"],
  ["noPivotRoot", "NoPivotRoot", "use chroot instead of pivot_root (ramdisk roots only)"],
];

function runtimeTables(runtimes: Record<string, RuntimeHandlerConfig>, withComments: boolean): string[] {
  const lines: string[] = [];
  // The empty handler is runc's twin unless configured otherwise, and cannot be named in TOML.
  for (const [name, h] of Object.entries(runtimes)) {
    if (name === "") continue;
    lines.push("", `[runtimes.${name}]`);
    if (withComments) lines.push("# the containerd shim that runs this handler's pods");
    lines.push(`runtime_type = ${quote(h.runtimeType)}`);
    if (withComments) lines.push("# pod annotations (globs) copied into the pause container's spec, for runtimes that read them");
    if (h.podAnnotations !== undefined) lines.push(`pod_annotations = ${valueText(h.podAnnotations)}`);
    else if (withComments) lines.push("# pod_annotations = []");
    if (withComments) lines.push("# privileged containers get only their own devices, not all of the node's");
    if (h.privilegedWithoutHostDevices !== undefined) lines.push(`privileged_without_host_devices = ${valueText(h.privilegedWithoutHostDevices)}`);
    else if (withComments) lines.push("# privileged_without_host_devices = false");
    lines.push(`[runtimes.${name}.options]`);
    for (const [field, key, help] of RUNC_OPTION_KEYS) {
      const v = h.options[field];
      if (v !== undefined) {
        if (withComments) lines.push(`# ${help}`);
        lines.push(`${key} = ${valueText(v)}`);
      } else if (withComments) {
        lines.push(`# ${help}`, `# ${key} = ${field === "systemdCgroup" || field === "noPivotRoot" ? "false" : quote("")}`);
      }
    }
  }
  return lines;
}

/** Every key podshim reads, at its default, each under a one-line comment. */
export function renderDefaultToml(): string {
  const config = defaultConfig();
  const lines = ["# podshim configuration (podshim config default). Flags given on the command line win over this file.", ""];
  for (const o of OPTIONS as readonly OptionSpec[]) {
    lines.push(`# ${o.help}`, `${o.toml} = ${valueText(config[o.key])}`, "");
  }
  lines.push("# RuntimeClass handlers: [runtimes.<handler>]; the empty handler (the default) follows runtimes.runc.");
  lines.push(...runtimeTables(config.runtimes, true).slice(1));
  return `${lines.join("\n")}\n`;
}

/** The effective configuration, file and flags applied. */
export function renderConfigToml(config: Config): string {
  const lines = ["# podshim effective configuration (podshim config dump)"];
  for (const o of OPTIONS as readonly OptionSpec[]) lines.push(`${o.toml} = ${valueText(config[o.key])}`);
  lines.push(...runtimeTables(config.runtimes, false));
  return `${lines.join("\n")}\n`;
}
