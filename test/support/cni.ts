// A CNI bridge network of a test's own: unique bridge name, subnet and host-local lease dir,
// so test files running in parallel (and a node's real network) never collide.
import { mkdirSync, writeFileSync } from "node:fs";
import { randomInt } from "node:crypto";
import { join } from "node:path";
import { run } from "../bed/proc.js";

export interface TestNetwork {
  confDir: string;
  name: string;
  bridge: string;
  subnet: string;
  gateway: string;
  leaseDir: string;
  /** Removes the bridge and the lease dir's leftovers (after every pod was torn down). */
  cleanup(): Promise<void>;
}

export function testNetwork(dir: string, opts: { subnet?: string; extraPlugins?: object[]; ipam?: object } = {}): TestNetwork {
  const tag = randomInt(0, 0xffffff).toString(16).padStart(6, "0");
  const octet = randomInt(0, 250);
  const subnet = opts.subnet ?? `10.${200 + (octet % 50)}.${randomInt(0, 255)}.0/24`;
  const gateway = subnet.replace(/\.0\/24$/, ".1");
  const name = `podshim-test-${tag}`;
  const bridge = `pst${tag}`;
  const confDir = join(dir, `net.d-${tag}`);
  const leaseDir = join(dir, `leases-${tag}`);
  mkdirSync(confDir, { recursive: true });
  writeFileSync(join(confDir, "10-test.conflist"), JSON.stringify({
    cniVersion: "1.0.0",
    name,
    plugins: [
      { type: "bridge", bridge, isGateway: true, ipMasq: true, hairpinMode: true,
        ipam: opts.ipam ?? { type: "host-local", dataDir: leaseDir, ranges: [[{ subnet }]], routes: [{ dst: "0.0.0.0/0" }] } },
      { type: "portmap", capabilities: { portMappings: true } },
      { type: "bandwidth", capabilities: { bandwidth: true } },
      ...(opts.extraPlugins ?? []),
    ],
  }, null, 2));
  return {
    confDir, name, bridge, subnet, gateway, leaseDir,
    async cleanup() {
      await run("ip", ["link", "del", bridge]);
    },
  };
}
