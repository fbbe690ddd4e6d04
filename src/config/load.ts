import { readFile } from "node:fs/promises";
import { parse as parseToml } from "smol-toml";
import { ConfigError, OPTIONS, defaultConfig, type Config, type OptionSpec } from "./options.js";
import { parseRuntimes } from "./runtimes.js";

export const DEFAULT_CONFIG_FILE = "/etc/podshim/config.toml";

export interface CommandLine {
  help: boolean;
  version: boolean;
  /** --config, when given; otherwise the default file is read if it exists. */
  configFile?: string;
  /** Raw flag values by option key, in the order given (the last one wins). */
  flags: Map<keyof Config, string | boolean>;
}

const byFlag = new Map<string, OptionSpec>((OPTIONS as readonly OptionSpec[]).map((o) => [o.flag, o]));
const byToml = new Map<string, OptionSpec>((OPTIONS as readonly OptionSpec[]).map((o) => [o.toml, o]));

/** Parses argv (without node and the script). Throws ConfigError naming the bad flag. */
export function parseCommandLine(argv: readonly string[]): CommandLine {
  const out: CommandLine = { help: false, version: false, flags: new Map() };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "-h" || arg === "--help") { out.help = true; continue; }
    if (arg === "-v" || arg === "--version") { out.version = true; continue; }
    if (!arg.startsWith("--")) throw new ConfigError(`unexpected argument "${arg}" (podshim takes only --flags; see --help)`);
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    let value: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    if (name === "config") {
      if (value === undefined) value = argv[++i];
      if (value === undefined || value === "") throw new ConfigError("--config needs a file path");
      out.configFile = value;
      continue;
    }
    const opt = byFlag.get(name);
    if (!opt) throw new ConfigError(`unknown flag --${name} (see --help)`);
    if (opt.kind === "boolean") {
      out.flags.set(opt.key, value ?? true);
      continue;
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined || value.startsWith("--")) throw new ConfigError(`--${name} needs a value (${opt.metavar ?? "VALUE"})`);
    }
    out.flags.set(opt.key, value);
  }
  return out;
}

/** Applies a TOML document over a config. Unknown keys are refused so typos do not pass silently. */
export function applyToml(config: Config, text: string, file: string): Config {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    const msg = (err as Error).message.split("\n")[0];
    throw new ConfigError(`${file}: not valid TOML: ${msg}`);
  }
  const next: Record<string, unknown> = { ...config };
  for (const [key, raw] of Object.entries(doc)) {
    if (key === "runtimes") {
      next.runtimes = parseRuntimes(raw, file);
      continue;
    }
    const opt = byToml.get(key);
    if (!opt) throw new ConfigError(`${file}: unknown key "${key}"`);
    next[opt.key] = opt.parse(raw, `${file}: ${key}`);
  }
  return next as unknown as Config;
}

export function applyFlags(config: Config, flags: CommandLine["flags"]): Config {
  const next: Record<string, unknown> = { ...config };
  for (const [key, raw] of flags) {
    const opt = (OPTIONS as readonly OptionSpec[]).find((o) => o.key === key)!;
    next[key] = opt.parse(raw, `--${opt.flag}`);
  }
  return next as unknown as Config;
}

/** Defaults, then the TOML file, then flags: flags win. */
export async function loadConfig(cmd: CommandLine): Promise<Config> {
  let config = defaultConfig();
  const file = cmd.configFile ?? DEFAULT_CONFIG_FILE;
  let text: string | undefined;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // The default file is optional; a file the user named is not.
    if (!(code === "ENOENT" && cmd.configFile === undefined)) {
      throw new ConfigError(`--config: cannot read ${file}: ${code ?? (err as Error).message}`);
    }
  }
  if (text !== undefined) config = applyToml(config, text, file);
  config = applyFlags(config, cmd.flags);
  if ((config.streamTlsCert === "") !== (config.streamTlsKey === "")) {
    throw new ConfigError("--stream-tls-cert and --stream-tls-key go together: give both for https streaming, or neither");
  }
  return config;
}

export function usage(): string {
  const rows = (OPTIONS as readonly OptionSpec[]).map((o) => {
    const left = `  --${o.flag}${o.kind === "boolean" ? "" : ` ${o.metavar ?? "VALUE"}`}`;
    return `${left.padEnd(36)}${o.help} (default ${o.defaultText === "" ? "none" : o.defaultText}; TOML key ${o.toml})`;
  });
  return [
    "Usage: podshim [flags]",
    "",
    "podshim is a Kubernetes CRI v1 runtime (RuntimeService and ImageService) that runs pods",
    "through containerd. Point a kubelet or crictl at unix://<--listen>.",
    "",
    "Flags (each may also be set in the TOML config file; flags win):",
    `  --config FILE                     TOML config file (default ${DEFAULT_CONFIG_FILE}, read if present)`,
    ...rows,
    "  -h, --help                        print this help",
    "  -v, --version                     print the version, the git commit and the Node version",
    "",
    "Commands (they take the same flags and exit):",
    "  podshim config default            print every setting with its default, as TOML",
    "  podshim config dump [flags]       print the effective config (file, then flags), as TOML",
    "  podshim doctor [flags]            check the node; one line per check; exit 1 when one fails",
    "",
  ].join("\n");
}
