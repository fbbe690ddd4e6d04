// The commands besides the daemon: `podshim config default|dump` and `podshim doctor`. Each
// takes the daemon's own flags (and --config), so it sees exactly the config the daemon would.
import { ConfigError } from "../config/options.js";
import { loadConfig, parseCommandLine } from "../config/load.js";
import { renderConfigToml, renderDefaultToml } from "../config/render.js";
import { formatResults, runChecks } from "../doctor/checks.js";

const USAGE = `Usage:
  podshim config default           print every setting with its default, as TOML, and exit
  podshim config dump [flags]      print the effective config (file, then flags) as TOML, and exit
  podshim doctor [flags]           check this node for what podshim needs; exit 1 when a check fails
`;

/** Runs a subcommand and returns its exit code; undefined when argv is the daemon's. */
export async function runSubcommand(argv: readonly string[]): Promise<number | undefined> {
  const [first, second, ...rest] = argv;
  if (first !== "config" && first !== "doctor") return undefined;
  try {
    if (first === "config") {
      if (second === "default" && rest.length === 0) {
        process.stdout.write(renderDefaultToml());
        return 0;
      }
      if (second === "dump") {
        process.stdout.write(renderConfigToml(await loadConfig(parseCommandLine(rest))));
        return 0;
      }
      process.stderr.write(USAGE);
      return 2;
    }
    const results = await runChecks(await loadConfig(parseCommandLine(argv.slice(1))));
    process.stdout.write(formatResults(results));
    const failed = results.filter((r) => r.status === "fail").length;
    const warned = results.filter((r) => r.status === "warn").length;
    process.stdout.write(`${failed === 0 ? "node is ready for podshim" : `${failed} check(s) failed`}${warned ? `, ${warned} warning(s)` : ""}\n`);
    return failed === 0 ? 0 : 1;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`podshim: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
