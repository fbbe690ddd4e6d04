import { describe, expect, it } from "vitest";
import { apparmorProfileText, appArmorHost, DEFAULT_APPARMOR_PROFILE, setUpAppArmor, type AppArmorDeps } from "../../src/oci/apparmor.js";
import { apparmorFor } from "../../src/oci/security-profile.js";
import { InvalidArgumentError } from "../../src/errors/errors.js";
import { SecurityProfile_ProfileType } from "../../src/gen/cri/runtime/v1/api.js";

function fakeNode(enabled: boolean, loaded: string[], parser: (text: string) => Promise<void> = async () => undefined): AppArmorDeps & { loads: string[] } {
  const loads: string[] = [];
  return {
    loads,
    async readFile(path) {
      if (path.endsWith("/enabled")) return enabled ? "Y\n" : "N\n";
      if (path.endsWith("/profiles")) return loaded.map((p) => `${p} (enforce)\n`).join("");
      throw new Error(`unexpected read ${path}`);
    },
    async loadProfile(text) {
      await parser(text);
      loads.push(text);
      const name = /^profile (\S+)/m.exec(text)![1]!;
      if (!loaded.includes(name)) loaded.push(name);
    },
  };
}

describe("apparmorProfileText", () => {
  const text = apparmorProfileText();

  it("is one profile named podshim-default, attached to disconnected paths", () => {
    expect(text).toMatch(/^profile podshim-default flags=\(attach_disconnected,mediate_deleted\) \{$/m);
    expect(text.match(/^profile /gm)).toHaveLength(1);
    expect(text.trimEnd().endsWith("}")).toBe(true);
    expect(text).toContain("#include <tunables/global>");
  });

  it("denies mounts and writes to the node's kernel knobs, and reads of its memory", () => {
    for (const rule of ["deny mount,", "deny @{PROC}/sysrq-trigger rwklx,", "deny @{PROC}/kcore rwklx,", "deny /sys/firmware/** rwklx,", "deny /sys/kernel/security/** rwklx,", "deny @{PROC}/* w,"]) {
      expect(text).toContain(rule);
    }
  });

  it("lets the container signal and trace itself, and the node signal it", () => {
    expect(text).toContain("signal (send,receive) peer=podshim-default,");
    expect(text).toContain("ptrace (trace,read,tracedby,readby) peer=podshim-default,");
    expect(text).toContain("signal (receive) peer=unconfined,");
  });

  it("every rule line ends with a comma, braces balance", () => {
    const body = text.split("\n").filter((l) => l.startsWith("  ") && !l.trim().startsWith("#")).map((l) => l.replace(/\s+#.*$/, "").trim()).filter((l) => l !== "");
    for (const l of body) expect(l.endsWith(",") || l.startsWith("#include"), l).toBe(true);
    expect(text.split("{").length).toBe(text.split("}").length);
    expect(() => apparmorProfileText("bad name; x")).toThrow();
  });
});

describe("setUpAppArmor and the RuntimeDefault decision", () => {
  it("on a host without AppArmor: unconfined, said so; RuntimeDefault applies nothing, Localhost is refused by name", async () => {
    const node = fakeNode(false, []);
    const st = await setUpAppArmor(node);
    expect(st).toEqual({ enabled: false, message: expect.stringMatching(/not enabled.*unconfined/) });
    expect(node.loads).toEqual([]);
    const host = await appArmorHost(node, st);
    expect(host).toBeUndefined();
    expect(apparmorFor(undefined, false, host)).toBeUndefined();
    expect(() => apparmorFor({ profileType: SecurityProfile_ProfileType.Localhost, localhostRef: "my-prof" }, false, host)).toThrow(/"my-prof".*not enabled/);
  });

  it("on an AppArmor host: loads podshim-default and applies it for RuntimeDefault, not for privileged", async () => {
    const node = fakeNode(true, ["docker-default"]);
    const st = await setUpAppArmor(node);
    expect(st).toMatchObject({ enabled: true, defaultProfile: DEFAULT_APPARMOR_PROFILE });
    expect(node.loads).toEqual([apparmorProfileText()]);
    const host = (await appArmorHost(node, st))!;
    expect(host.loadedProfiles).toContain("podshim-default");
    expect(apparmorFor(undefined, false, host)).toBe("podshim-default");
    expect(apparmorFor({ profileType: SecurityProfile_ProfileType.RuntimeDefault, localhostRef: "" }, false, host)).toBe("podshim-default");
    expect(apparmorFor(undefined, true, host)).toBeUndefined();
    expect(apparmorFor({ profileType: SecurityProfile_ProfileType.Unconfined, localhostRef: "" }, false, host)).toBeUndefined();
    expect(apparmorFor({ profileType: SecurityProfile_ProfileType.Localhost, localhostRef: "docker-default" }, false, host)).toBe("docker-default");
    let err: unknown;
    try {
      apparmorFor({ profileType: SecurityProfile_ProfileType.Localhost, localhostRef: "missing-one" }, false, host);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toContain('"missing-one" is not loaded');
  });

  it("when apparmor_parser fails: RuntimeDefault unconfined, and the message says why", async () => {
    const node = fakeNode(true, [], async () => { throw new Error("apparmor_parser: not found"); });
    const st = await setUpAppArmor(node);
    expect(st.defaultProfile).toBeUndefined();
    expect(st.message).toMatch(/cannot load podshim-default \(apparmor_parser: not found\)/);
    expect(apparmorFor(undefined, false, await appArmorHost(node, st))).toBeUndefined();
  });

  it("sees a Localhost profile loaded after start", async () => {
    const loaded = ["podshim-default"];
    const node = fakeNode(true, loaded);
    const st = await setUpAppArmor(node);
    loaded.push("late-profile");
    expect(apparmorFor({ profileType: SecurityProfile_ProfileType.Localhost, localhostRef: "late-profile" }, false, await appArmorHost(node, st))).toBe("late-profile");
  });
});
