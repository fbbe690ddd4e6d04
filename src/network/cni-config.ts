import { access, constants, readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";

/** A network as CNI runs it: a list of plugin configs chained in order. */
export interface CniNetwork {
  name: string;
  cniVersion: string;
  /** The file it was loaded from. */
  file: string;
  plugins: Array<Record<string, unknown> & { type: string }>;
  /** The whole document, as a conflist (a single .conf is wrapped into one). */
  raw: Record<string, unknown>;
}

export type CniLoadResult =
  | { ok: true; network: CniNetwork }
  | { ok: false; reason: string; message: string };

const CONF_EXTENSIONS = [".conf", ".conflist", ".json"];

/**
 * Loads the network podshim wires pods into: the first valid config in the conf dir, in
 * file-name order, the way libcni-based runtimes pick it. A file that does not parse or
 * names a plugin no bin dir has is skipped; when none is usable the result says why, in
 * words an operator can act on (Status puts it into NetworkReady's message).
 */
export async function loadCniNetwork(confDir: string, binDirs: readonly string[]): Promise<CniLoadResult> {
  let names: string[];
  try {
    names = (await readdir(confDir)).filter((n) => CONF_EXTENSIONS.some((e) => n.endsWith(e))).sort();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, reason: "NetworkPluginNotReady", message: `no CNI network config: cannot read ${confDir} (${code})` };
  }
  if (names.length === 0) {
    return { ok: false, reason: "NetworkPluginNotReady", message: `no CNI network config in ${confDir} (add a .conflist there; podshim picks it up without a restart)` };
  }
  const problems: string[] = [];
  for (const name of names) {
    const file = join(confDir, name);
    const parsed = await parseFile(file);
    if (typeof parsed === "string") {
      problems.push(`${name}: ${parsed}`);
      continue;
    }
    const missing = await missingPlugins(parsed.plugins.map((p) => p.type), binDirs);
    if (missing.length > 0) {
      problems.push(`${name}: plugin ${missing.join(", ")} not found in ${binDirs.join(":")}`);
      continue;
    }
    return { ok: true, network: parsed };
  }
  return { ok: false, reason: "NetworkPluginNotReady", message: `no usable CNI network config in ${confDir}: ${problems.join("; ")}` };
}

async function parseFile(file: string): Promise<CniNetwork | string> {
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(file, "utf8"));
  } catch (err) {
    return err instanceof SyntaxError ? `not valid JSON (${err.message})` : `unreadable (${(err as NodeJS.ErrnoException).code})`;
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return "not a JSON object";
  const d = doc as Record<string, unknown>;
  const list: Record<string, unknown> = Array.isArray(d.plugins)
    ? d
    : { cniVersion: d.cniVersion, name: d.name, plugins: [d] };
  if (typeof list.name !== "string" || list.name === "") return `has no "name"`;
  if (typeof list.cniVersion !== "string" || list.cniVersion === "") return `has no "cniVersion"`;
  const plugins = list.plugins as unknown[];
  if (plugins.length === 0) return `has an empty "plugins" list`;
  for (const [i, p] of plugins.entries()) {
    if (typeof p !== "object" || p === null || typeof (p as { type?: unknown }).type !== "string") {
      return `plugin ${i} has no "type"`;
    }
  }
  return { name: list.name, cniVersion: list.cniVersion, file, plugins: plugins as CniNetwork["plugins"], raw: list };
}

async function missingPlugins(types: string[], binDirs: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const type of new Set(types)) {
    if (!(await findPlugin(type, binDirs))) missing.push(type);
  }
  return missing;
}

/** The path of an executable plugin binary in the first bin dir that has it. */
export async function findPlugin(type: string, binDirs: readonly string[]): Promise<string | undefined> {
  if (type.includes("/")) return undefined;
  for (const dir of binDirs) {
    const path = join(dir, type);
    try {
      if ((await stat(path)).isFile()) {
        await access(path, constants.X_OK);
        return path;
      }
    } catch {
      // not in this dir
    }
  }
  return undefined;
}
