// The per-pod files a runtime keeps next to the pause container: /etc/hosts, /etc/resolv.conf,
// /etc/hostname and the shared /dev/shm. Only their contents are computed here; writing them and
// mounting the shm tmpfs belong to the sandbox service.
import type { DNSConfig } from "../gen/cri/runtime/v1/api.js";
import { InvalidArgumentError } from "../errors/errors.js";

/** Where a sandbox's files are on the node. */
export interface SandboxFilePaths {
  hostname: string;
  hosts: string;
  resolvConf: string;
  /** A tmpfs shared by the pod's containers; absent when the sandbox keeps a private one. */
  shm?: string;
}

/** A pod's spec.hostAliases entry. The CRI does not carry these (the kubelet writes /etc/hosts
 * itself for most pods), so callers that render a hosts file pass them in directly. */
export interface HostAlias {
  ip: string;
  hostnames: string[];
}

// Values are spliced into line-oriented files: one with a line break could add lines of its
// own, one with a space would silently become two entries.
function oneWord(value: string, what: string): string {
  if (value === "" || /\s/.test(value)) throw new InvalidArgumentError(`${what} ${JSON.stringify(value)} is empty or contains whitespace`);
  return value;
}

/** The kubelet's managed hosts file, byte for byte: the same header and loopback lines, one
 * line per pod IP naming the pod, then the host aliases after a blank line. With a domain the
 * pod's line gives the fully qualified name first. */
export function renderHosts(ips: readonly string[], hostname: string, hostAliases: readonly HostAlias[] = [], domain = ""): string {
  let out =
    "# Kubernetes-managed hosts file.\n" +
    "127.0.0.1\tlocalhost\n" +
    "::1\tlocalhost ip6-localhost ip6-loopback\n" +
    "fe00::0\tip6-localnet\n" +
    "fe00::0\tip6-mcastprefix\n" +
    "fe00::1\tip6-allnodes\n" +
    "fe00::2\tip6-allrouters\n";
  oneWord(hostname, "hostname");
  const names = domain === "" ? hostname : `${hostname}.${oneWord(domain, "domain")}\t${hostname}`;
  for (const ip of ips) out += `${oneWord(ip, "pod IP")}\t${names}\n`;
  if (hostAliases.length > 0) {
    out += "\n# Entries added by HostAliases.\n";
    for (const alias of hostAliases) {
      const aliasNames = alias.hostnames.map((h) => oneWord(h, "host alias"));
      out += `${oneWord(alias.ip, "host alias IP")}\t${aliasNames.join("\t")}\n`;
    }
  }
  return out;
}

/** A pod's resolv.conf. With a DNSConfig the file is built from it alone (containerd's order:
 * one search line, one nameserver line per server, one options line; an all-empty config gives
 * an empty file). Without one the pod gets the node's resolv.conf unchanged, as containerd does. */
export function renderResolvConf(dns: DNSConfig | undefined, hostResolvConf: string): string {
  if (dns === undefined) return hostResolvConf;
  let out = "";
  if (dns.searches.length > 0) out += `search ${dns.searches.map((s) => oneWord(s, "DNS search domain")).join(" ")}\n`;
  for (const server of dns.servers) out += `nameserver ${oneWord(server, "DNS server")}\n`;
  if (dns.options.length > 0) out += `options ${dns.options.map((o) => oneWord(o, "DNS option")).join(" ")}\n`;
  return out;
}

/** /etc/hostname of the pod: the requested name, else the node's (what a host-network pod or a
 * pod without a hostname sees from uname too). */
export function renderHostname(hostname: string, nodeHostname: string): string {
  const name = hostname !== "" ? hostname : nodeHostname;
  return `${oneWord(name, "hostname")}\n`;
}
