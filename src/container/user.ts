// Who a container's process runs as: the CRI security context or the image's USER, looked up in
// the container's own /etc/passwd and /etc/group (containerd's rules, which the kubelet's tests
// pin down). Pure: the caller reads the two files from the rootfs (rootfs-files.ts) and passes
// their text, or undefined when a file is missing.
import { InvalidArgumentError } from "../errors/errors.js";
import type { LinuxContainerSecurityContext } from "../gen/cri/runtime/v1/api.js";
import { SupplementalGroupsPolicy } from "../gen/cri/runtime/v1/api.js";
import { checkId } from "../oci/ids.js";

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Sorted, each once, always including gid: what the process and `id -G` see. */
  additionalGids: number[];
  /** The user's name in the image's /etc/passwd, when it has one. */
  username?: string;
}

export interface UserInput {
  security?: Pick<LinuxContainerSecurityContext, "runAsUser" | "runAsUsername" | "runAsGroup" | "supplementalGroups" | "supplementalGroupsPolicy">;
  /** The image config's User: "", "name", "uid", "name:group", "uid:gid", ... */
  imageUser?: string;
  /** Text of the rootfs's /etc/passwd; undefined when it has none. */
  passwd?: string;
  /** Text of the rootfs's /etc/group; undefined when it has none. */
  group?: string;
}

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

// Go's strconv.Atoi, which containerd uses to tell ids from names, takes a sign too; a signed
// value is then an id out of range rather than a name to look up.
const NUMERIC = /^[+-]?\d+$/;

function colonLines(text: string): string[][] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => l.split(":"));
}

/** Entries whose ids are not numbers are skipped: a lookup cannot match them anyway. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const f of colonLines(text)) {
    if (f.length < 4 || !/^\d+$/.test(f[2]!) || !/^\d+$/.test(f[3]!)) continue;
    out.push({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]) });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const f of colonLines(text)) {
    if (f.length < 3 || !/^\d+$/.test(f[2]!)) continue;
    const members = (f[3] ?? "").split(",").map((m) => m.trim()).filter((m) => m !== "");
    out.push({ name: f[0]!, gid: Number(f[2]), members });
  }
  return out;
}

/** One side of a user string: an id as given or a name to look up. */
type Part = { id: number } | { name: string };

function part(text: string, what: string): Part {
  return NUMERIC.test(text) ? { id: checkId(BigInt(text), what) } : { name: text };
}

/** The user and optional group to resolve: the CRI's run_as_username, else run_as_user (each
 * with run_as_group), else the image's USER, else root. */
function requested(input: UserInput): { user: Part; group?: Part } {
  const sc = input.security;
  const group = sc?.runAsGroup !== undefined ? { id: checkId(sc.runAsGroup.value, "runAsGroup") } : undefined;
  if (sc?.runAsUsername) return { user: part(sc.runAsUsername, "runAsUsername"), ...(group ? { group } : {}) };
  if (sc?.runAsUser !== undefined) return { user: { id: checkId(sc.runAsUser.value, "runAsUser") }, ...(group ? { group } : {}) };
  if (group !== undefined) {
    throw new InvalidArgumentError(`runAsGroup ${group.id} is specified without runAsUser or runAsUsername: set a user too`);
  }
  const image = input.imageUser ?? "";
  if (image === "") return { user: { id: 0 } };
  const fields = image.split(":");
  if (fields.length > 2 || fields[0] === "" || fields[1] === "") {
    throw new InvalidArgumentError(`the image's USER ${JSON.stringify(image)} is not of the form user[:group]`);
  }
  return { user: part(fields[0]!, "image uid"), ...(fields[1] !== undefined ? { group: part(fields[1], "image gid") } : {}) };
}

export function resolveUser(input: UserInput): ResolvedUser {
  const want = requested(input);
  const passwd = input.passwd === undefined ? undefined : parsePasswd(input.passwd);
  const groups = input.group === undefined ? undefined : parseGroup(input.group);

  let uid: number;
  let gid: number;
  let entry: PasswdEntry | undefined;
  if ("name" in want.user) {
    const name = want.user.name;
    if (passwd === undefined) throw new InvalidArgumentError(`user ${JSON.stringify(name)} cannot be looked up: the image has no /etc/passwd (use a numeric uid)`);
    entry = passwd.find((e) => e.name === name);
    if (entry === undefined) throw new InvalidArgumentError(`user ${JSON.stringify(name)} is not in the image's /etc/passwd (use a numeric uid or a user the image defines)`);
    uid = checkId(entry.uid, `uid of user ${name}`);
    gid = checkId(entry.gid, `primary gid of user ${name}`);
  } else {
    uid = want.user.id;
    entry = passwd?.find((e) => e.uid === uid);
    // An unknown uid is fine: it runs with group 0, as containerd and Docker do.
    gid = entry === undefined ? 0 : checkId(entry.gid, `primary gid of uid ${uid}`);
  }

  if (want.group !== undefined) {
    if ("id" in want.group) {
      gid = want.group.id;
    } else {
      const name = want.group.name;
      if (groups === undefined) throw new InvalidArgumentError(`group ${JSON.stringify(name)} cannot be looked up: the image has no /etc/group (use a numeric gid)`);
      const g = groups.find((e) => e.name === name);
      if (g === undefined) throw new InvalidArgumentError(`group ${JSON.stringify(name)} is not in the image's /etc/group (use a numeric gid or a group the image defines)`);
      gid = checkId(g.gid, `gid of group ${name}`);
    }
  }

  const policy = input.security?.supplementalGroupsPolicy ?? SupplementalGroupsPolicy.Merge;
  if (policy !== SupplementalGroupsPolicy.Merge && policy !== SupplementalGroupsPolicy.Strict) {
    throw new InvalidArgumentError(`unknown supplemental groups policy ${policy} (want Merge or Strict)`);
  }
  const all = new Set<number>([gid]);
  const username = entry?.name;
  if (policy === SupplementalGroupsPolicy.Merge && username !== undefined && groups !== undefined) {
    // A group named after the user is its personal group, already the primary one or not meant
    // to be added; only memberships listed in other groups count.
    for (const g of groups) if (g.name !== username && g.members.includes(username)) all.add(checkId(g.gid, `gid of group ${g.name}`));
  }
  for (const g of input.security?.supplementalGroups ?? []) all.add(checkId(g, "supplemental group"));
  return { uid, gid, additionalGids: [...all].sort((a, b) => a - b), ...(username !== undefined ? { username } : {}) };
}
