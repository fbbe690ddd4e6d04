import { readdir, readFile } from "node:fs/promises";

/** A shim process serving one task of one namespace of one containerd. */
export interface ShimProcess {
  pid: number;
  id: string;
  /** Processes whose parent it is (a shim reaps the processes of its containers). */
  children: number;
}

/**
 * Shim processes as the OS shows them. containerd starts one per task and normally reaps it;
 * a containerd that restarts while a Tasks.Create is under way can lose the task and leave
 * its shim running with nothing below it. Only a shim whose command line names this
 * containerd's socket and this namespace is ever considered ours.
 */
export async function listShims(namespace: string, address: string): Promise<ShimProcess[]> {
  const found: ShimProcess[] = [];
  for (const name of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, "utf8").catch(() => "");
    const argv = cmdline.split("\0");
    if (!argv[0]?.includes("containerd-shim")) continue;
    if (flag(argv, "-namespace") !== namespace || flag(argv, "-address") !== address) continue;
    const id = flag(argv, "-id");
    if (id) found.push({ pid: Number(name), id, children: await childrenOf(Number(name)) });
  }
  return found;
}

/** How many processes a process is the parent of, summed over its threads (any of a Go
 * program's threads may fork); one that cannot be read counts as having some. */
async function childrenOf(pid: number): Promise<number> {
  try {
    let n = 0;
    for (const tid of await readdir(`/proc/${pid}/task`)) {
      n += (await readFile(`/proc/${pid}/task/${tid}/children`, "utf8")).split(" ").filter((c) => c.trim() !== "").length;
    }
    return n;
  } catch {
    return 1;
  }
}

/** Kills the shims of `id` (a task containerd no longer knows); returns how many there were. */
export async function killStrayShims(namespace: string, address: string, id: string): Promise<number> {
  const strays = (await listShims(namespace, address)).filter((s) => s.id === id);
  for (const s of strays) killShim(s.pid);
  return strays.length;
}

/** Sends SIGKILL; a process already gone is not an error. */
export function killShim(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}
