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
  const parents = new Map<number, number>();
  for (const name of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    // The parent is the 4th field of stat, after the command in parentheses.
    const stat = await readFile(`/proc/${name}/stat`, "utf8").catch(() => "");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid > 0) parents.set(pid, ppid);
    const cmdline = await readFile(`/proc/${name}/cmdline`, "utf8").catch(() => "");
    const argv = cmdline.split("\0");
    if (!argv[0]?.includes("containerd-shim")) continue;
    if (flag(argv, "-namespace") !== namespace || flag(argv, "-address") !== address) continue;
    const id = flag(argv, "-id");
    if (id) found.push({ pid, id, children: 0 });
  }
  for (const s of found) s.children = [...parents.values()].filter((p) => p === s.pid).length;
  return found;
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
