import { join } from "node:path";
import type { ContainerRecord } from "./container-store.js";

/** Where a container's files live: its record dir under --root (status checkpoint), and
 * its runtime dir under --state (FIFOs, exec FIFOs), gone at reboot like its task. */
export class ContainerPaths {
  constructor(
    private readonly root: string,
    private readonly state: string,
  ) {}

  get containersDir(): string {
    return join(this.root, "containers");
  }

  get stateContainersDir(): string {
    return join(this.state, "containers");
  }

  rootDir(id: string): string {
    return join(this.containersDir, id);
  }

  stateDir(id: string): string {
    return join(this.stateContainersDir, id);
  }

  ioDir(id: string): string {
    return join(this.stateDir(id), "io");
  }

  execDir(id: string): string {
    return join(this.stateDir(id), "exec");
  }

  statusFile(id: string): string {
    return join(this.rootDir(id), "status.json");
  }

  /** The container's stdio FIFOs; "" for a stream it does not have. */
  fifos(rec: Pick<ContainerRecord, "id" | "config">): { stdin: string; stdout: string; stderr: string } {
    const dir = this.ioDir(rec.id);
    return {
      stdin: rec.config.stdin ? join(dir, "stdin") : "",
      stdout: join(dir, "stdout"),
      // A terminal merges both streams into one.
      stderr: rec.config.tty ? "" : join(dir, "stderr"),
    };
  }
}
