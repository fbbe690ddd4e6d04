// What Exec and Attach both refuse before handing out a URL.
import { InvalidArgumentError } from "../errors/errors.js";

export function checkStdio(rpc: string, req: { containerId: string; tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }): void {
  if (!req.containerId) throw new InvalidArgumentError(`${rpc}: container_id is required`);
  if (req.tty && req.stderr) throw new InvalidArgumentError(`${rpc}: tty and stderr cannot both be true (a terminal has one output stream)`);
  if (!req.stdin && !req.stdout && !req.stderr) throw new InvalidArgumentError(`${rpc}: at least one of stdin, stdout and stderr must be requested`);
}
