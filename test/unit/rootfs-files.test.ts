import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  hostDevices,
  mountPropagationOf,
  prepareMountSources,
  readRootfsFile,
  resolveDevices,
  snapshotLayers,
} from "../../src/container/rootfs-files.js";
import { InvalidArgumentError, UnimplementedError } from "../../src/errors/errors.js";
import { Device, Mount, MountPropagation } from "../../src/gen/cri/runtime/v1/api.js";

const root = mkdtempSync(join(tmpdir(), "podshim-rootfs-files-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const isRoot = process.getuid?.() === 0;

function write(path: string, text: string): void {
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, text);
}
function link(path: string, target: string): void {
  mkdirSync(join(path, ".."), { recursive: true });
  symlinkSync(target, path);
}
function mknod(path: string, type: "c" | "b", major: number, minor: number): void {
  mkdirSync(join(path, ".."), { recursive: true });
  execFileSync("mknod", [path, type, String(major), String(minor)]);
}
function layer(name: string): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}
const overlay = (upper: string | undefined, ...lower: string[]) => [
  {
    type: "overlay",
    source: "overlay",
    options: ["index=off", ...(upper ? [`workdir=${upper}-work`, `upperdir=${upper}`] : []), `lowerdir=${lower.join(":")}`],
  },
];
const bind = (dir: string) => [{ type: "bind", source: dir, options: ["rbind", "rw"] }];

describe("snapshotLayers", () => {
  it.each([
    ["bind", bind("/s/1/fs"), ["/s/1/fs"]],
    ["overlay", overlay("/s/3/fs", "/s/2/fs", "/s/1/fs"), ["/s/3/fs", "/s/2/fs", "/s/1/fs"]],
    ["a read-only overlay view", overlay(undefined, "/s/2/fs", "/s/1/fs"), ["/s/2/fs", "/s/1/fs"]],
  ])("%s", (_, mounts, want) => {
    expect(snapshotLayers(mounts)).toEqual(want);
  });

  it.each([
    ["no mounts", []],
    ["two mounts", [...bind("/a"), ...bind("/b")]],
    ["another type", [{ type: "btrfs", source: "/dev/sda", options: [] }]],
    ["relative layers", [{ type: "overlay", source: "overlay", options: ["lowerdir=a:b"] }]],
  ])("refuses %s", (_, mounts) => {
    expect(() => snapshotLayers(mounts)).toThrow(UnimplementedError);
  });
});

describe("readRootfsFile", () => {
  const base = layer("base");
  write(join(base, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
  write(join(base, "etc/group"), "root:x:0:\n");
  write(join(base, "etc/hosts"), "base hosts\n");
  write(join(base, "etc/shadow-like"), "old\n");
  write(join(base, "usr/lib/os-release"), "ID=test\n");
  write(join(base, "data/replaced"), "file in base\n");
  link(join(base, "etc/os-release"), "../usr/lib/os-release");
  link(join(base, "etc/abs-link"), "/usr/lib/os-release");
  link(join(base, "etc/escape"), "../../../../../../../etc/hostname");
  link(join(base, "etc/loop"), "loop");
  link(join(base, "lib"), "usr/lib");
  mkdirSync(join(base, "etc/dir"));

  const mid = layer("mid");
  write(join(mid, "etc/passwd"), "root:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n");
  write(join(mid, "etc/mid-only"), "mid\n");
  if (isRoot) mknod(join(mid, "etc/hosts"), "c", 0, 0);
  // A directory replaced by a file in a later layer hides the older directory's content.
  write(join(mid, "data"), "data is a file now\n");

  const top = layer("top");
  write(join(top, "etc/group"), "root:x:0:\nusers:x:100:user\n");
  write(join(top, "big"), "x".repeat(2048));

  const mounts = overlay(top, mid, base);
  const read = (path: string, opts = {}) => readRootfsFile(mounts, path, opts);

  it("takes the topmost layer's file", async () => {
    expect(await read("/etc/group")).toBe("root:x:0:\nusers:x:100:user\n");
    expect(await read("/etc/passwd")).toContain("user:x:1000");
    expect(await read("etc/mid-only")).toBe("mid\n");
    expect(await read("/etc/shadow-like")).toBe("old\n");
  });

  it("returns undefined for what the image lacks", async () => {
    expect(await read("/etc/nothing")).toBeUndefined();
    expect(await read("/nope/passwd")).toBeUndefined();
    expect(await read("/etc/passwd/x")).toBeUndefined();
  });

  it.runIf(isRoot)("honours whiteouts", async () => {
    expect(await read("/etc/hosts")).toBeUndefined();
  });

  it("hides a lower directory under an upper file", async () => {
    expect(await read("/data/replaced")).toBeUndefined();
    expect(await read("/data")).toBe("data is a file now\n");
  });

  it("follows links inside the view: relative, absolute, through directories", async () => {
    expect(await read("/etc/os-release")).toBe("ID=test\n");
    expect(await read("/etc/abs-link")).toBe("ID=test\n");
    expect(await read("/lib/os-release")).toBe("ID=test\n");
    expect(await read("/usr/lib/../../etc/os-release")).toBe("ID=test\n");
  });

  it("never leaves the view", async () => {
    // The link climbs above the root, which stays the root: /etc/hostname of the image (none).
    expect(await read("/etc/escape")).toBeUndefined();
    expect(await read("/../../../../etc/passwd")).toContain("user:x:1000");
  });

  it("gives up on link loops", async () => {
    await expect(read("/etc/loop")).rejects.toThrow(/too many levels of symbolic links/);
  });

  it("refuses what is not a regular file, and files over the cap", async () => {
    await expect(read("/etc/dir")).rejects.toThrow(InvalidArgumentError);
    await expect(read("/big", { maxBytes: 1024 })).rejects.toThrow(/larger than 1024 bytes/);
    expect(await read("/big", { maxBytes: 2048 })).toHaveLength(2048);
  });

  it("stops at opaque directories when told which are", async () => {
    const isOpaque = async (dir: string) => dir === join(mid, "etc");
    expect(await read("/etc/shadow-like", { isOpaque })).toBeUndefined();
    expect(await read("/etc/mid-only", { isOpaque })).toBe("mid\n");
  });

  it("reads a bind-mounted single layer", async () => {
    expect(await readRootfsFile(bind(base), "/etc/passwd")).toBe("root:x:0:0::/root:/bin/sh\n");
  });
});

describe.runIf(isRoot)("resolveDevices and hostDevices", () => {
  const dev = layer("dev");
  mknod(join(dev, "null"), "c", 1, 3);
  mknod(join(dev, "loop0"), "b", 7, 0);
  mknod(join(dev, "big"), "c", 4095, 1048575);
  mknod(join(dev, "console"), "c", 5, 1);
  mknod(join(dev, "dri/card0"), "c", 226, 0);
  mknod(join(dev, "pts/0"), "c", 136, 0);
  mknod(join(dev, "shm/x"), "c", 1, 5);
  link(join(dev, "stdin"), "/proc/self/fd/0");
  write(join(dev, "regular"), "");
  execFileSync("mkfifo", [join(dev, "fifo")]);

  const device = (hostPath: string, containerPath = "", permissions = "rwm") => Device.fromPartial({ hostPath, containerPath, permissions });

  it("resolves a node with its numbers, mode and owner", async () => {
    const [d] = await resolveDevices([device(join(dev, "null"), "/dev/xnull", "rw")]);
    const st = statSync(join(dev, "null"));
    expect(d).toEqual({ path: "/dev/xnull", hostPath: join(dev, "null"), type: "c", major: 1, minor: 3, fileMode: st.mode & 0o7777, uid: st.uid, gid: st.gid, permissions: "rw" });
  });

  it("splits large device numbers", async () => {
    expect(await resolveDevices([device(join(dev, "big"), "/dev/big")])).toMatchObject([{ major: 4095, minor: 1048575 }]);
  });

  it("follows links, defaults the container path and permissions", async () => {
    link(join(root, "null-link"), join(dev, "null"));
    expect(await resolveDevices([device(join(root, "null-link"), "", "")])).toMatchObject([
      { path: join(root, "null-link"), hostPath: join(dev, "null"), type: "c", permissions: "rwm" },
    ]);
  });

  it("resolves the real /dev/null", async () => {
    expect(await resolveDevices([device("/dev/null", "/dev/null", "rwm")])).toMatchObject([{ type: "c", major: 1, minor: 3 }]);
  });

  it("expands a directory to the device nodes below it", async () => {
    const got = await resolveDevices([device(dev, "/dev/host", "r")]);
    expect(got.map((d) => [d.path, d.type])).toEqual([
      ["/dev/host/big", "c"],
      ["/dev/host/dri/card0", "c"],
      ["/dev/host/loop0", "b"],
      ["/dev/host/null", "c"],
    ]);
    expect(got.every((d) => d.permissions === "r")).toBe(true);
  });

  it("lists host devices under /dev, skipping pts, shm, the console, links and fifos", async () => {
    const got = await hostDevices(dev);
    expect(got.map((d) => d.path)).toEqual(["/dev/big", "/dev/dri/card0", "/dev/loop0", "/dev/null"]);
    expect(got.find((d) => d.path === "/dev/loop0")).toMatchObject({ hostPath: join(dev, "loop0"), type: "b", major: 7, minor: 0 });
  });

  it.each([
    ["a missing path", () => device(join(dev, "missing")), /does not exist/],
    ["a regular file", () => device(join(dev, "regular")), /not a character or block device/],
    ["a fifo", () => device(join(dev, "fifo")), /not a character or block device/],
    ["bad permissions", () => device(join(dev, "null"), "/dev/null", "rwx"), /permissions/],
    ["repeated permissions", () => device(join(dev, "null"), "/dev/null", "rr"), /permissions/],
    ["a relative host path", () => device("dev/null"), /not absolute/],
    ["a relative container path", () => device(join(dev, "null"), "dev/null"), /not absolute/],
  ])("refuses %s", async (_, d, message) => {
    const err = await resolveDevices([d()]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toMatch(message);
  });

  it("the node's own /dev yields devices", async () => {
    const got = await hostDevices();
    expect(got.find((d) => d.path === "/dev/null")).toMatchObject({ type: "c", major: 1, minor: 3 });
    expect(got.some((d) => d.path.startsWith("/dev/pts/"))).toBe(false);
  });
});

describe("mountPropagationOf", () => {
  const info = [
    "22 1 0:21 / / rw,relatime shared:1 - overlay overlay rw",
    "23 22 0:22 / /proc rw,nosuid - proc proc rw",
    "24 22 0:23 / /var/lib/kubelet rw shared:5 - ext4 /dev/sda1 rw",
    "25 24 0:24 / /var/lib/kubelet/pods rw master:5 - ext4 /dev/sda1 rw",
    "26 22 0:25 / /mnt/private rw - tmpfs tmpfs rw",
    "27 22 0:26 / /mnt/with\\040space rw shared:9 - tmpfs tmpfs rw",
    "garbage line",
  ].join("\n");

  it.each([
    ["/", "shared"],
    ["/etc", "shared"],
    ["/proc/1", "private"],
    ["/var/lib/kubelet", "shared"],
    ["/var/lib/kubelet/x", "shared"],
    ["/var/lib/kubelet/pods/uid/volumes", "slave"],
    ["/var/lib/kubeletx", "shared"],
    ["/mnt/private/dir", "private"],
    ["/mnt/with space/a", "shared"],
  ])("%s is %s", (path, want) => {
    expect(mountPropagationOf(info, path)).toBe(want);
  });
});

describe("prepareMountSources", () => {
  const mountinfo = join(root, "mountinfo");
  writeFileSync(mountinfo, `1 0 0:1 / / rw - ext4 /dev/sda rw\n2 1 0:2 / ${root}/shared rw shared:3 - tmpfs tmpfs rw\n`);
  const mount = (hostPath: string, propagation: MountPropagation = MountPropagation.PROPAGATION_PRIVATE) =>
    Mount.fromPartial({ containerPath: "/data", hostPath, propagation });

  it("creates missing host paths as directories and resolves links", async () => {
    const missing = join(root, "sources/new/dir");
    link(join(root, "sources/link"), join(root, "sources/real"));
    mkdirSync(join(root, "sources/real"));
    write(join(root, "sources/file"), "x");
    const got = await prepareMountSources([mount(missing), mount(join(root, "sources/link")), mount(join(root, "sources/file"))], mountinfo);
    expect(statSync(missing).isDirectory()).toBe(true);
    expect(got).toEqual({
      [missing]: missing,
      [join(root, "sources/link")]: join(root, "sources/real"),
      [join(root, "sources/file")]: join(root, "sources/file"),
    });
  });

  it("checks the host mount can propagate as asked", async () => {
    mkdirSync(join(root, "shared/x"), { recursive: true });
    await expect(prepareMountSources([mount(join(root, "shared/x"), MountPropagation.PROPAGATION_BIDIRECTIONAL)], mountinfo)).resolves.toBeDefined();
    await expect(prepareMountSources([mount(join(root, "shared/x"), MountPropagation.PROPAGATION_HOST_TO_CONTAINER)], mountinfo)).resolves.toBeDefined();
    await expect(prepareMountSources([mount(join(root, "sources"), MountPropagation.PROPAGATION_BIDIRECTIONAL)], mountinfo)).rejects.toThrow(/not shared/);
    await expect(prepareMountSources([mount(join(root, "sources"), MountPropagation.PROPAGATION_HOST_TO_CONTAINER)], mountinfo)).rejects.toThrow(/private/);
  });

  it("refuses relative host paths", async () => {
    await expect(prepareMountSources([mount("relative")], mountinfo)).rejects.toThrow(InvalidArgumentError);
  });
});
