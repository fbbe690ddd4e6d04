import { pino, type Logger } from "pino";
import pretty from "pino-pretty";
import type { LogLevel } from "../config/options.js";

export type { Logger };

// Credentials can reach a log line through a request (AuthConfig in PullImage); never print them.
const REDACT = [
  "*.auth.password", "*.auth.auth", "*.auth.identityToken", "*.auth.registryToken",
  "*.password", "*.identityToken", "*.registryToken",
];

/**
 * The root logger: JSON lines on stderr for machines, pretty text when a person is watching
 * a terminal. pino-pretty runs in-process (no worker thread) so a crash cannot lose the tail.
 */
export function createLogger(level: LogLevel, destination: NodeJS.WritableStream = process.stderr): Logger {
  const options = { level, base: { pid: process.pid }, redact: { paths: REDACT, censor: "[redacted]" } };
  const isTty = (destination as { isTTY?: boolean }).isTTY === true;
  if (isTty) return pino(options, pretty({ destination, colorize: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid" }));
  return pino(options, destination);
}
