// Runs a build tool and collects what it printed; `missing` says the tool is not installed.
import { spawn } from "node:child_process";

export function run(cmd, args) {
  return new Promise((resolvePromise) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
    child.on("error", (err) => resolvePromise({ code: null, stdout, stderr: err.message, missing: err.code === "ENOENT" }));
    child.on("close", (code) => resolvePromise({ code, stdout, stderr, missing: false }));
  });
}
