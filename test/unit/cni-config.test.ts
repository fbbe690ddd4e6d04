import { afterAll, describe, expect, it } from "vitest";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadCniNetwork } from "../../src/network/cni-config.js";
import { isCidr } from "../../src/network/pod-cidr.js";

const root = mkdtempSync(join(tmpdir(), "podshim-cni-"));
const bin = join(root, "bin");
mkdirSync(bin);
for (const p of ["bridge", "host-local", "loopback", "portmap"]) {
  writeFileSync(join(bin, p), "#!/bin/sh\n");
  chmodSync(join(bin, p), 0o755);
}
afterAll(() => rmSync(root, { recursive: true, force: true }));

function confDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(root, "conf-"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const conflist = (name: string, types: string[]) =>
  JSON.stringify({ cniVersion: "1.0.0", name, plugins: types.map((type) => ({ type })) });

describe("loadCniNetwork", () => {
  it("says the directory is missing", async () => {
    const r = await loadCniNetwork(join(root, "absent"), [bin]);
    expect(r).toMatchObject({ ok: false, reason: "NetworkPluginNotReady" });
    expect(!r.ok && r.message).toContain("cannot read");
  });

  it("says there is no config", async () => {
    const r = await loadCniNetwork(confDir({ "README": "x" }), [bin]);
    expect(!r.ok && r.message).toContain("no CNI network config in");
  });

  it("takes the first usable file in name order and skips broken ones with reasons", async () => {
    const dir = confDir({
      "05-broken.conflist": "{",
      "07-missing.conflist": conflist("m", ["bridge", "nonexistent"]),
      "10-good.conflist": conflist("good", ["bridge", "host-local"]),
      "20-later.conflist": conflist("later", ["bridge"]),
    });
    const r = await loadCniNetwork(dir, ["/nonexistent-dir", bin]);
    expect(r.ok && r.network.name).toBe("good");
    expect(r.ok && r.network.plugins.map((p) => p.type)).toEqual(["bridge", "host-local"]);
  });

  it("wraps a single .conf into a list", async () => {
    const r = await loadCniNetwork(confDir({ "10-one.conf": JSON.stringify({ cniVersion: "0.4.0", name: "one", type: "bridge" }) }), [bin]);
    expect(r.ok && r.network.plugins).toEqual([{ cniVersion: "0.4.0", name: "one", type: "bridge" }]);
  });

  it("explains every refused file when none is usable", async () => {
    const dir = confDir({ "a.conflist": "[]", "b.conflist": conflist("b", ["nope"]), "c.conf": JSON.stringify({ name: "c", type: "bridge" }) });
    const r = await loadCniNetwork(dir, [bin]);
    expect(r.ok).toBe(false);
    const msg = !r.ok ? r.message : "";
    expect(msg).toContain("a.conflist: not a JSON object");
    expect(msg).toContain(`b.conflist: plugin nope not found in ${bin}`);
    expect(msg).toContain('c.conf: has no "cniVersion"');
  });
});

describe("isCidr", () => {
  it.each([["10.244.0.0/24", true], ["fd00::/64", true], ["10.0.0.0/33", false], ["300.0.0.0/8", false], ["nope", false], ["10.0.0.0", false]])(
    "%s -> %s", (s, ok) => expect(isCidr(s)).toBe(ok));
});
