import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/errors/errors.js";
import { renderHostname, renderHosts, renderResolvConf } from "../../src/sandbox/sandbox-files.js";

const HEADER =
  "# Kubernetes-managed hosts file.\n" +
  "127.0.0.1\tlocalhost\n" +
  "::1\tlocalhost ip6-localhost ip6-loopback\n" +
  "fe00::0\tip6-localnet\n" +
  "fe00::0\tip6-mcastprefix\n" +
  "fe00::1\tip6-allnodes\n" +
  "fe00::2\tip6-allrouters\n";

describe("renderHosts", () => {
  it.each([
    ["no pod IP (host network)", [], "node-1", [], "", HEADER],
    ["one IP", ["10.200.0.4"], "nginx", [], "", `${HEADER}10.200.0.4\tnginx\n`],
    ["dual stack", ["10.200.0.4", "fd00::4"], "nginx", [], "", `${HEADER}10.200.0.4\tnginx\nfd00::4\tnginx\n`],
    ["with a domain", ["10.200.0.4"], "web-0", [], "web.default.svc.cluster.local", `${HEADER}10.200.0.4\tweb-0.web.default.svc.cluster.local\tweb-0\n`],
    [
      "with host aliases",
      ["10.200.0.5"],
      "hostaliases-pod",
      [
        { ip: "127.0.0.1", hostnames: ["foo.local", "bar.local"] },
        { ip: "10.1.2.3", hostnames: ["foo.remote", "bar.remote"] },
      ],
      "",
      `${HEADER}10.200.0.5\thostaliases-pod\n\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\tbar.remote\n`,
    ],
  ])("%s", (_, ips, hostname, aliases, domain, want) => {
    expect(renderHosts(ips, hostname, aliases, domain)).toBe(want);
  });

  it("defaults to no aliases and no domain", () => {
    expect(renderHosts(["10.0.0.1"], "a")).toBe(`${HEADER}10.0.0.1\ta\n`);
  });

  it.each([
    ["a hostname with a newline", () => renderHosts([], "a\n1.2.3.4 evil")],
    ["an empty hostname", () => renderHosts(["10.0.0.1"], "")],
    ["an IP with a space", () => renderHosts(["10.0.0.1 x"], "a")],
    ["an alias with a tab", () => renderHosts([], "a", [{ ip: "1.1.1.1", hostnames: ["x\ty"] }])],
  ])("refuses %s", (_, f) => {
    expect(f).toThrow(InvalidArgumentError);
  });
});

describe("renderResolvConf", () => {
  const host = "# host\nnameserver 192.168.1.1\nsearch lan\n";

  it("copies the node's file without a DNSConfig", () => {
    expect(renderResolvConf(undefined, host)).toBe(host);
  });

  it("writes search, then one nameserver per server, then options (critest's DNS test)", () => {
    expect(renderResolvConf({ servers: ["10.10.10.10"], searches: ["google.com"], options: ["ndots:8"] }, host)).toBe(
      "search google.com\nnameserver 10.10.10.10\noptions ndots:8\n",
    );
  });

  it("joins several searches and options on one line each", () => {
    expect(
      renderResolvConf(
        { servers: ["10.96.0.10", "fd00::10"], searches: ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"], options: ["ndots:5", "edns0"] },
        host,
      ),
    ).toBe("search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\nnameserver fd00::10\noptions ndots:5 edns0\n");
  });

  it("an empty DNSConfig gives an empty file, not the node's", () => {
    expect(renderResolvConf({ servers: [], searches: [], options: [] }, host)).toBe("");
  });

  it("refuses entries that would add lines", () => {
    expect(() => renderResolvConf({ servers: ["1.1.1.1\nnameserver 6.6.6.6"], searches: [], options: [] }, host)).toThrow(InvalidArgumentError);
    expect(() => renderResolvConf({ servers: [], searches: ["a\nb"], options: [] }, host)).toThrow(InvalidArgumentError);
    expect(() => renderResolvConf({ servers: [], searches: [], options: ["ndots:1\nx"] }, host)).toThrow(InvalidArgumentError);
  });
});

describe("renderHostname", () => {
  it("the pod's name, else the node's, with a newline", () => {
    expect(renderHostname("test-hostname", "node-1")).toBe("test-hostname\n");
    expect(renderHostname("", "node-1")).toBe("node-1\n");
  });

  it("refuses a name with a line break", () => {
    expect(() => renderHostname("a\nb", "node-1")).toThrow(InvalidArgumentError);
  });
});
