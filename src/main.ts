#!/usr/bin/env -S node --max-semi-space-size=2
// A 2 MB young generation instead of V8's 16 MB semi-spaces: 28 MB less committed for new
// objects, at no CPU cost the op-cpu bench could see. At 100 pods x 2 containers with the
// kubelet's list and stats calls podshim held 109 and 138 MB resident in two runs (what the old
// generation holds between its collections makes the difference) against 137 with the default;
// after the lifecycle benchmark's rounds 95 against 117-123 (docs/benchmarks.md). Whatever
// starts podshim as `node main.js` should pass the same flag (the tests read it from this line;
// the Dockerfile's entrypoint has it).
import { App } from "./app.js";
import { loadConfig, parseCommandLine, usage } from "./config/load.js";
import { ConfigError } from "./config/options.js";
import { createLogger } from "./logger/logger.js";
import { RUNTIME_COMMIT, RUNTIME_NAME, RUNTIME_VERSION } from "./version.js";
import { messageOf } from "./errors/errors.js";
import { cgroupDriverProblem } from "./config/runtimes.js";
import { runSubcommand } from "./cli/subcommands.js";

// Every file write (container logs above all) takes a libuv pool thread for its duration, and
// Node's default pool has 4: a few containers logging to a slow disk would stall every other
// file operation. Each log has at most one write in flight, so a larger pool bounds the damage.
// It must be set before the pool's first use, which is below.
process.env.UV_THREADPOOL_SIZE ??= "32";

async function main(argv: string[]): Promise<number> {
  // `podshim config ...` and `podshim doctor` run and exit; they never start the daemon.
  const sub = await runSubcommand(argv);
  if (sub !== undefined) return sub;
  let config;
  let cmd;
  try {
    cmd = parseCommandLine(argv);
    if (cmd.help) {
      process.stdout.write(usage());
      return 0;
    }
    if (cmd.version) {
      process.stdout.write(`${RUNTIME_NAME} ${RUNTIME_VERSION}\ncommit: ${RUNTIME_COMMIT}\nnode: ${process.version}\n`);
      return 0;
    }
    config = await loadConfig(cmd);
    // runc would put pods' cgroups where the kubelet does not look: refuse rather than half-work.
    const driver = cgroupDriverProblem(config.cgroupDriver, config.runtimes);
    if (driver) throw new ConfigError(`${driver.problem}: ${driver.fix}`);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`podshim: ${err.message}\n`);
      return 2;
    }
    throw err;
  }

  const logger = createLogger(config.logLevel);
  // A stray rejection is a bug to log, not a reason to take every pod's runtime down.
  process.on("unhandledRejection", (reason) => logger.error({ err: reason instanceof Error ? reason.stack : String(reason) }, "unhandled promise rejection"));
  const app = new App(config, logger);
  try {
    await app.start();
  } catch (err) {
    logger.fatal({ err }, "start-up failed");
    process.stderr.write(`podshim: ${messageOf(err)}\n`);
    await app.stop().catch(() => undefined);
    return 1;
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, "second signal: exiting now");
        resolve(130);
        return;
      }
      stopping = true;
      logger.info({ signal }, "signal received");
      app.stop().then(() => resolve(0), (err) => {
        logger.error({ err }, "shutdown failed");
        resolve(1);
      });
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    // SIGHUP re-reads the config file (and flags) for the log level; other settings need a restart.
    process.on("SIGHUP", () => {
      loadConfig(cmd).then((next) => {
        if (next.logLevel !== logger.level) logger.info({ from: logger.level, to: next.logLevel }, "SIGHUP: log level changed");
        logger.level = next.logLevel;
      }, (err: unknown) => logger.warn({ err: messageOf(err) }, "SIGHUP: config not re-read; log level unchanged"));
    });
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`podshim: unexpected error: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
