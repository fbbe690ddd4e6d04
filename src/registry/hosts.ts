// Registry host configuration in containerd's certs.d layout (docs/hosts.md in containerd):
// <configDir>/<registry>/hosts.toml lists mirrors to try before the registry itself, with
// per-host TLS material, headers and capabilities. Read on every pull, like containerd, so
// edits apply without a restart.
import { readFile, readdir, stat } from "node:fs/promises";
import { isIP } from "node:net";
import { isAbsolute, join, posix } from "node:path";
import { parse as parseToml, type TomlTableWithoutBigInt } from "smol-toml";
import { FailedPreconditionError, InvalidArgumentError, type PodshimError } from "../errors/errors.js";

export interface HostCapabilities {
  pull: boolean;
  resolve: boolean;
  push: boolean;
}

export interface RegistryHost {
  /** scheme://host[:port] plus the API root path, normally /v2. */
  url: URL;
  capabilities: HostCapabilities;
  skipVerify: boolean;
  /** Extra CA certificates (PEM), trusted in addition to the built-in roots. */
  ca: Buffer[];
  /** Client certificates; a missing key means the cert file holds the key too. */
  clientCert?: { cert: Buffer; key?: Buffer }[];
  header: Record<string, string | string[]>;
  /** The URL path is the API root as given: no /v2 was appended. */
  overridePath: boolean;
  /** hosts.toml dial_timeout: how long a TCP connect may take. */
  dialTimeoutMs?: number;
}

const DOCKER_HUB = "docker.io";
const DOCKER_HUB_API = "registry-1.docker.io";
const DEFAULT_NAMESPACE = "_default";
const HOSTS_FILE = "hosts.toml";
const ALL_CAPABILITIES: HostCapabilities = { pull: true, resolve: true, push: true };

/** Splits "host:port", "[v6]:port", "host" or "[v6]". */
export function splitHostPort(registry: string): { host: string; port?: string } {
  if (registry.startsWith("[")) {
    const end = registry.indexOf("]");
    if (end !== -1) {
      const rest = registry.slice(end + 1);
      return rest.startsWith(":") ? { host: registry.slice(0, end + 1), port: rest.slice(1) } : { host: registry };
    }
  }
  const i = registry.lastIndexOf(":");
  if (i > 0 && registry.indexOf(":") === i) return { host: registry.slice(0, i), port: registry.slice(i + 1) };
  return { host: registry };
}

/** localhost or a loopback address, with or without a port (containerd's IsLocalhost). */
export function isLocalhost(registry: string): boolean {
  const { host } = splitHostPort(registry);
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (bare === "localhost") return true;
  if (isIP(bare) === 4) return bare.startsWith("127.");
  if (isIP(bare) === 6) {
    try {
      return new URL(`http://[${bare}]/`).hostname === "[::1]";
    } catch {
      return false;
    }
  }
  return false;
}

/**
 * Directories that may configure `registry`, most specific first. containerd looks for
 * "host_port_" before "host:port" (the former also works where ':' cannot be in a file name).
 */
export function hostDirCandidates(registry: string): string[] {
  const { host, port } = splitHostPort(registry);
  const out = port !== undefined ? [`${host}_${port}_`, registry] : [registry];
  out.push(DEFAULT_NAMESPACE);
  return out;
}

/** The registry's own endpoint when nothing configures it. */
function upstream(registry: string): { url: URL; skipVerify: boolean } {
  if (registry === DOCKER_HUB) return { url: new URL(`https://${DOCKER_HUB_API}/v2`), skipVerify: false };
  if (isLocalhost(registry)) {
    // containerd's CRI talks plain HTTP to local registries; only an explicit :443 means TLS,
    // and then a local certificate is not worth verifying.
    if (splitHostPort(registry).port === "443") return { url: new URL(`https://${registry}/v2`), skipVerify: true };
    return { url: new URL(`http://${registry}/v2`), skipVerify: false };
  }
  return { url: new URL(`https://${registry}/v2`), skipVerify: false };
}

function defaultHost(registry: string): RegistryHost {
  const { url, skipVerify } = upstream(registry);
  return { url, capabilities: { ...ALL_CAPABILITIES }, skipVerify, ca: [], header: {}, overridePath: false };
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ENOTDIR") return false;
    throw err;
  }
}

async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/**
 * The hosts to try for `registry`, in order: the [host."..."] entries of its hosts.toml in
 * file order, then its `server` (the registry itself when absent). Without any configuration
 * the registry itself is the only host.
 */
export async function loadRegistryHosts(configDir: string, registry: string): Promise<RegistryHost[]> {
  for (const name of hostDirCandidates(registry)) {
    const dir = join(configDir, name);
    if (!(await isDirectory(dir))) continue;
    const file = join(dir, HOSTS_FILE);
    let text: Buffer | undefined;
    try {
      text = await readIfExists(file);
    } catch (err) {
      throw new FailedPreconditionError(`cannot read registry host config ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
    // An empty hosts.toml counts as none, as in containerd.
    if (text !== undefined && text.length > 0) return parseHostsFile(text.toString("utf8"), file, dir, registry);
    return [await dockerCertsHost(dir, registry)];
  }
  return [defaultHost(registry)];
}

/** Docker's certs.d layout, which containerd honours when a host dir has no hosts.toml:
 * *.crt are CAs, *.cert are client certificates with an optional *.key beside them. */
async function dockerCertsHost(dir: string, registry: string): Promise<RegistryHost> {
  const host = defaultHost(registry);
  const names = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name).sort();
  for (const name of names) {
    if (name.endsWith(".crt")) host.ca.push(await readFile(join(dir, name)));
    if (name.endsWith(".cert")) {
      const cert = await readFile(join(dir, name));
      const key = await readIfExists(join(dir, `${name.slice(0, -".cert".length)}.key`));
      (host.clientCert ??= []).push(key ? { cert, key } : { cert });
    }
  }
  return host;
}

type Table = TomlTableWithoutBigInt;

function isTable(v: unknown): v is Table {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

class HostsFileReader {
  constructor(
    private readonly file: string,
    private readonly dir: string,
  ) {}

  fail(what: string, cause?: unknown): PodshimError {
    return new InvalidArgumentError(`registry host config ${this.file}: ${what}`, cause === undefined ? undefined : { cause });
  }

  private stringList(value: unknown, key: string): string[] {
    if (typeof value === "string") return [value];
    if (Array.isArray(value) && value.every((v) => typeof v === "string")) return value as string[];
    throw this.fail(`${key} must be a string or an array of strings`);
  }

  private path(p: string): string {
    return isAbsolute(p) ? p : join(this.dir, p);
  }

  private async read(p: string, key: string): Promise<Buffer> {
    const path = this.path(p);
    try {
      return await readFile(path);
    } catch (err) {
      throw this.fail(`cannot read ${key} file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, err);
    }
  }

  /** The part of a host entry (or the top level, for `server`) that configures one host. */
  async host(where: string, t: Table, url: URL | undefined, registry: string): Promise<RegistryHost> {
    const overridePath = t.override_path ?? false;
    if (typeof overridePath !== "boolean") throw this.fail(`${where}override_path must be true or false`);
    const base: { url: URL; skipVerify: boolean } = url ? { url: apiRoot(url, overridePath), skipVerify: false } : upstream(registry);

    let capabilities = { ...ALL_CAPABILITIES };
    if (t.capabilities !== undefined) {
      const list = this.stringList(t.capabilities, `${where}capabilities`);
      if (list.length > 0) {
        capabilities = { pull: false, resolve: false, push: false };
        for (const c of list) {
          const lc = c.toLowerCase();
          if (lc === "pull" || lc === "resolve" || lc === "push") capabilities[lc] = true;
          // containerd knows "referrers"; podshim has no use for it.
          else if (lc !== "referrers") throw this.fail(`${where}capabilities: unknown capability ${JSON.stringify(c)}`);
        }
      }
    }
    // The defaulted upstream may always do everything, as in containerd.
    if (!url) capabilities = { ...ALL_CAPABILITIES };

    const skipVerify = t.skip_verify ?? base.skipVerify;
    if (typeof skipVerify !== "boolean") throw this.fail(`${where}skip_verify must be true or false`);

    const ca: Buffer[] = [];
    if (t.ca !== undefined) for (const p of this.stringList(t.ca, `${where}ca`)) ca.push(await this.read(p, "ca"));

    let clientCert: { cert: Buffer; key?: Buffer }[] | undefined;
    if (t.client !== undefined) {
      const pairs: [string, string][] = [];
      if (typeof t.client === "string") pairs.push([t.client, ""]);
      else if (Array.isArray(t.client)) {
        for (const item of t.client) {
          if (typeof item === "string") pairs.push([item, ""]);
          else if (Array.isArray(item) && item.length === 2 && item.every((s) => typeof s === "string")) {
            pairs.push([item[0] as string, item[1] as string]);
          } else throw this.fail(`${where}client entries must be a path or a [cert, key] pair of paths`);
        }
      } else throw this.fail(`${where}client must be a path, an array of paths or of [cert, key] pairs`);
      clientCert = [];
      for (const [certPath, keyPath] of pairs) {
        const cert = await this.read(certPath, "client certificate");
        clientCert.push(keyPath === "" ? { cert } : { cert, key: await this.read(keyPath, "client key") });
      }
    }

    const header: Record<string, string | string[]> = {};
    if (t.header !== undefined) {
      if (!isTable(t.header)) throw this.fail(`${where}header must be a table`);
      for (const [name, value] of Object.entries(t.header)) {
        if (typeof value === "string") header[name] = value;
        else if (Array.isArray(value) && value.every((v) => typeof v === "string")) header[name] = [...(value as string[])];
        else throw this.fail(`${where}header ${JSON.stringify(name)} must be a string or an array of strings`);
      }
    }

    let dialTimeoutMs: number | undefined;
    if (t.dial_timeout !== undefined) {
      if (typeof t.dial_timeout !== "string") throw this.fail(`${where}dial_timeout must be a duration string such as "5s"`);
      dialTimeoutMs = parseGoDuration(t.dial_timeout);
      if (dialTimeoutMs === undefined) throw this.fail(`${where}dial_timeout ${JSON.stringify(t.dial_timeout)} is not a duration such as "5s"`);
    }

    const host: RegistryHost = { url: base.url, capabilities, skipVerify, ca, header, overridePath };
    if (clientCert) host.clientCert = clientCert;
    if (dialTimeoutMs !== undefined) host.dialTimeoutMs = dialTimeoutMs;
    return host;
  }

  parseUrl(where: string, raw: string): URL {
    // containerd assumes https for a bare host name.
    const withScheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(raw) ? raw : `https://${raw}`;
    let url: URL;
    try {
      url = new URL(withScheme);
    } catch (err) {
      throw this.fail(`${where}${JSON.stringify(raw)} is not a URL`, err);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw this.fail(`${where}${JSON.stringify(raw)} must be http or https`);
    if (url.hostname === "") throw this.fail(`${where}${JSON.stringify(raw)} has no host`);
    return url;
  }
}

/** scheme://host[:port] plus the cleaned path, with /v2 appended unless override_path says
 * the path already is the API root. */
function apiRoot(url: URL, overridePath: boolean): URL {
  let path = posix.normalize(url.pathname || "/").replace(/\/+$/, "");
  if (!overridePath && !path.endsWith("/v2")) path += "/v2";
  return new URL(`${url.protocol}//${url.host}${path}`);
}

async function parseHostsFile(text: string, file: string, dir: string, registry: string): Promise<RegistryHost[]> {
  const reader = new HostsFileReader(file, dir);
  let doc: Table;
  try {
    doc = parseToml(text, { integersAsBigInt: false });
  } catch (err) {
    throw reader.fail(`not valid TOML: ${(err as Error).message.split("\n")[0]}`, err);
  }
  const hosts: RegistryHost[] = [];
  if (doc.host !== undefined) {
    if (!isTable(doc.host)) throw reader.fail(`host must be a table of [host."<url>"] entries`);
    // TOML tables keep their file order here (object keys that are URLs are never reordered),
    // and that order is the order of preference.
    for (const [raw, entry] of Object.entries(doc.host)) {
      const where = `host ${JSON.stringify(raw)}: `;
      if (!isTable(entry)) throw reader.fail(`${where}must be a table`);
      hosts.push(await reader.host(where, entry, reader.parseUrl(where, raw), registry));
    }
  }
  if (doc.server !== undefined && typeof doc.server !== "string") throw reader.fail("server must be a string");
  const server = doc.server === undefined || doc.server === "" ? undefined : reader.parseUrl("server ", doc.server);
  // The server comes last, always: containerd has no way to leave the upstream out except
  // naming a mirror as the server.
  hosts.push(await reader.host("", doc, server, registry));
  return hosts;
}

const DURATION_UNITS_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, "μs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration for non-negative durations, in milliseconds; undefined when invalid. */
export function parseGoDuration(s: string): number | undefined {
  if (s === "0") return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * DURATION_UNITS_MS[m[2] as string]!;
    pos = re.lastIndex;
  }
  return pos === 0 ? undefined : total;
}

/** A host as messages name it: its origin, plus the API root when that is not /v2. */
export function hostLabel(host: RegistryHost): string {
  return host.url.pathname === "/v2" ? host.url.origin : `${host.url.origin}${host.url.pathname}`;
}
