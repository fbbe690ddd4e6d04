import { describe, expect, it } from "vitest";
import { resolveUser, parseGroup, parsePasswd } from "../../src/container/user.js";
import type { UserInput } from "../../src/container/user.js";
import { InvalidArgumentError } from "../../src/errors/errors.js";
import { LinuxContainerSecurityContext, SupplementalGroupsPolicy } from "../../src/gen/cri/runtime/v1/api.js";
import type { DeepPartial } from "../support/deep-partial.js";

// The shape of critest's test-image-user-uid-group and of busybox.
const PASSWD = [
  "root:x:0:0:root:/root:/bin/sh",
  "daemon:x:1:1:daemon:/usr/sbin:/bin/false",
  "nobody:x:65534:65534:nobody:/home:/bin/false",
  "# a comment",
  "",
  "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh",
  "broken:x:notanumber:0::/:/bin/false",
  "www:x:33:33:www-data:/var/www:/bin/false",
].join("\n");
const GROUP = [
  "root:x:0:",
  "daemon:x:1:",
  "www-data:x:33:",
  "nogroup:x:65534:",
  "user-defined-in-image:x:1000:user-defined-in-image",
  "group-defined-in-image:x:50000:user-defined-in-image",
  "other:x:60000:someone,user-defined-in-image",
  "unrelated:x:70000:nobody",
].join("\n");

type Sc = DeepPartial<LinuxContainerSecurityContext>;
const sc = (partial: Sc) => LinuxContainerSecurityContext.fromPartial(partial);
const resolve = (security: Sc | undefined, extra: Partial<UserInput> = {}) =>
  resolveUser({ ...(security ? { security: sc(security) } : {}), passwd: PASSWD, group: GROUP, ...extra });

describe("resolveUser: who the process is", () => {
  it.each([
    ["nothing: root, group 0", undefined, {}, { uid: 0, gid: 0, additionalGids: [0], username: "root" }],
    ["run_as_user looked up", { runAsUser: { value: 1n } }, {}, { uid: 1, gid: 1, additionalGids: [1], username: "daemon" }],
    ["run_as_user not in passwd: gid 0", { runAsUser: { value: 1001n } }, {}, { uid: 1001, gid: 0, additionalGids: [0] }],
    ["run_as_user and run_as_group used as they are", { runAsUser: { value: 1001n }, runAsGroup: { value: 1002n } }, {}, { uid: 1001, gid: 1002, additionalGids: [1002] }],
    ["run_as_username", { runAsUsername: "nobody" }, {}, { uid: 65534, gid: 65534, additionalGids: [65534, 70000], username: "nobody" }],
    ["run_as_username over run_as_user", { runAsUsername: "www", runAsUser: { value: 7n } }, {}, { uid: 33, gid: 33, username: "www" }],
    ["run_as_username with run_as_group", { runAsUsername: "www", runAsGroup: { value: 5n } }, {}, { uid: 33, gid: 5 }],
    ["a numeric run_as_username is an id", { runAsUsername: "1001" }, {}, { uid: 1001, gid: 0 }],
    ["run_as_user over the image's USER", { runAsUser: { value: 33n } }, { imageUser: "nobody:nogroup" }, { uid: 33, gid: 33 }],
    ["image uid:gid", undefined, { imageUser: "1001:1002" }, { uid: 1001, gid: 1002, additionalGids: [1002] }],
    ["image name", undefined, { imageUser: "nobody" }, { uid: 65534, gid: 65534, username: "nobody" }],
    ["image name:group name", undefined, { imageUser: "www:nogroup" }, { uid: 33, gid: 65534 }],
    ["image uid:group name", undefined, { imageUser: "1001:www-data" }, { uid: 1001, gid: 33 }],
    ["image name:gid", undefined, { imageUser: "www:7" }, { uid: 33, gid: 7 }],
    ["image uid found in passwd", undefined, { imageUser: "1000" }, { uid: 1000, gid: 1000, username: "user-defined-in-image" }],
  ] as [string, Sc | undefined, Partial<UserInput>, object][])("%s", (_, security, extra, want) => {
    expect(resolve(security, extra)).toMatchObject(want);
  });

  it("without /etc/passwd a numeric user gets group 0 and no name", () => {
    expect(resolveUser({ security: sc({ runAsUser: { value: 1000n } }) })).toEqual({ uid: 1000, gid: 0, additionalGids: [0] });
    expect(resolveUser({ imageUser: "1001:1002" })).toEqual({ uid: 1001, gid: 1002, additionalGids: [1002] });
  });
});

describe("resolveUser: supplemental groups (critest's image: uid 1000 in group 50000)", () => {
  it.each([
    ["Merge adds the image's memberships", SupplementalGroupsPolicy.Merge, [1000, 1234, 50000, 60000]],
    ["Strict keeps only the primary and the requested", SupplementalGroupsPolicy.Strict, [1000, 1234]],
  ])("%s", (_, policy, want) => {
    const user = resolve({ runAsUser: { value: 1000n }, supplementalGroups: [1234n], supplementalGroupsPolicy: policy });
    expect(user).toEqual({ uid: 1000, gid: 1000, additionalGids: want, username: "user-defined-in-image" });
  });

  it("matches the critest expectation exactly when only group 50000 lists the user", () => {
    const group = "user-defined-in-image:x:1000:user-defined-in-image\ngroup-defined-in-image:x:50000:user-defined-in-image\n";
    const merge = resolveUser({ security: sc({ runAsUser: { value: 1000n }, supplementalGroups: [1234n] }), passwd: PASSWD, group });
    expect(merge.additionalGids).toEqual([1000, 1234, 50000]);
    const strict = resolveUser({ security: sc({ runAsUser: { value: 1000n }, supplementalGroups: [1234n], supplementalGroupsPolicy: SupplementalGroupsPolicy.Strict }), passwd: PASSWD, group });
    expect(strict.additionalGids).toEqual([1000, 1234]);
  });

  it("always adds supplemental_groups, sorted and once each", () => {
    expect(resolve({ runAsUser: { value: 1001n }, supplementalGroups: [5678n, 1234n, 5678n, 0n] }).additionalGids).toEqual([0, 1234, 5678]);
  });

  it("skips a group named after the user and merges nothing without /etc/group", () => {
    const passwd = "u:x:2000:3000::/:/bin/sh";
    const group = "u:x:2001:u\ng:x:4000:u\nh:x:5000:v";
    expect(resolveUser({ imageUser: "u", passwd, group }).additionalGids).toEqual([3000, 4000]);
    expect(resolveUser({ security: sc({ runAsUser: { value: 1000n } }), passwd: PASSWD }).additionalGids).toEqual([1000]);
  });

  it("a uid without a passwd entry has no memberships to merge", () => {
    expect(resolve({ runAsUser: { value: 4242n } }).additionalGids).toEqual([0]);
  });
});

describe("resolveUser: refusals", () => {
  it.each([
    ["run_as_group without a user", { runAsGroup: { value: 3000n } }, {}, /without runAsUser/],
    ["an unknown user name", { runAsUsername: "ghost" }, {}, /"ghost" is not in the image's \/etc\/passwd/],
    ["an unknown image user", undefined, { imageUser: "ghost" }, /not in the image's \/etc\/passwd/],
    ["an unknown group name", undefined, { imageUser: "www:ghosts" }, /group "ghosts" is not in the image's \/etc\/group/],
    ["a name without /etc/passwd", { runAsUsername: "nobody" }, { passwd: undefined }, /has no \/etc\/passwd/],
    ["a group name without /etc/group", undefined, { imageUser: "1:nogroup", group: undefined }, /has no \/etc\/group/],
    ["a uid out of range", { runAsUser: { value: 2n ** 31n } }, {}, /out of range/],
    ["a negative uid", { runAsUser: { value: -1n } }, {}, /out of range/],
    ["a gid out of range", { runAsUser: { value: 1n }, runAsGroup: { value: 4294967295n } }, {}, /out of range/],
    ["a supplemental group out of range", { runAsUser: { value: 1n }, supplementalGroups: [2n ** 32n] }, {}, /out of range/],
    ["an image uid out of range", undefined, { imageUser: "4294967296" }, /out of range/],
    ["a signed image uid", undefined, { imageUser: "-1:0" }, /out of range/],
    ["a malformed image USER", undefined, { imageUser: "a:b:c" }, /user\[:group\]/],
    ["an empty group in the image USER", undefined, { imageUser: "1000:" }, /user\[:group\]/],
    ["an unknown policy", { runAsUser: { value: 1n }, supplementalGroupsPolicy: 7 as SupplementalGroupsPolicy }, {}, /policy/],
  ] as [string, Sc | undefined, Partial<UserInput>, RegExp][])("%s", (_, security, extra, message) => {
    const err = (() => {
      try {
        resolve(security, extra);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toMatch(message);
  });
});

describe("parsePasswd / parseGroup", () => {
  it("skips comments, blank and malformed lines", () => {
    expect(parsePasswd(PASSWD).map((e) => e.name)).toEqual(["root", "daemon", "nobody", "user-defined-in-image", "www"]);
    expect(parseGroup("a:x:1:u1, u2 ,\nbad:x:\n#c:x:3:\nb:x:2")).toEqual([
      { name: "a", gid: 1, members: ["u1", "u2"] },
      { name: "b", gid: 2, members: [] },
    ]);
  });

  it("takes the first entry when a name repeats", () => {
    expect(resolveUser({ imageUser: "dup", passwd: "dup:x:5:5::/:/bin/sh\ndup:x:6:6::/:/bin/sh" })).toMatchObject({ uid: 5, gid: 5 });
  });
});
