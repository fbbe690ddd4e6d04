import { describe, expect, it } from "vitest";
import {
  applyResourceUpdate,
  buildContainerSpec,
  criSignalNumber,
  criSignalOf,
  effectiveStopSignal,
  parseSignal,
  resourcesToSpec,
} from "../../src/container/container-spec.js";
import type { ContainerSpecInput } from "../../src/container/container-spec.js";
import type { ResolvedDevice } from "../../src/container/rootfs-files.js";
import { InvalidArgumentError, UnimplementedError } from "../../src/errors/errors.js";
import {
  ContainerConfig,
  LinuxContainerResources,
  MountPropagation,
  NamespaceMode,
  PodSandboxConfig,
  SecurityProfile_ProfileType,
  Signal,
} from "../../src/gen/cri/runtime/v1/api.js";
import type { ImageConfig } from "../../src/distribution/manifest.js";
import { CAPABILITY_NAMES } from "../../src/oci/capabilities.js";
import { DEFAULT_CAPABILITIES, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from "../../src/oci/defaults.js";
import { runtimeDefaultSeccomp } from "../../src/oci/seccomp.js";
import type { LinuxSeccomp, Mount, Spec } from "../../src/oci/spec-types.js";
import type { DeepPartial } from "../support/deep-partial.js";

type SecurityContext = NonNullable<NonNullable<ContainerConfig["linux"]>["securityContext"]>;

const ID = "c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
const SANDBOX_ID = "5a4db0c0123456789abcdef0123456789abcdef0123456789abcdef01234567";
const NETNS = "/var/run/netns/podshim-test";
const FILES = {
  hostname: "/var/lib/podshim/sandboxes/s/hostname",
  hosts: "/var/lib/podshim/sandboxes/s/hosts",
  resolvConf: "/var/lib/podshim/sandboxes/s/resolv.conf",
  shm: "/run/podshim/sandboxes/s/shm",
};
const IMAGE: ImageConfig = {
  config: {
    Entrypoint: ["/docker-entrypoint.sh"],
    Cmd: ["nginx", "-g", "daemon off;"],
    Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NGINX_VERSION=1.25", "UNSET_ME"],
    WorkingDir: "/srv",
    StopSignal: "SIGQUIT",
  },
  rootfs: { type: "layers", diff_ids: [] },
};
const ALL_BUT_SYS_RESOURCE = CAPABILITY_NAMES.filter((c) => c !== "CAP_SYS_RESOURCE");

function config(partial: DeepPartial<ContainerConfig> = {}): ContainerConfig {
  return ContainerConfig.fromPartial({
    metadata: { name: "web", attempt: 0 },
    image: { image: "docker.io/library/nginx:1.25" },
    ...partial,
  } as never);
}

function sandboxConfig(partial: DeepPartial<PodSandboxConfig> = {}): PodSandboxConfig {
  return PodSandboxConfig.fromPartial({
    metadata: { name: "web-pod", namespace: "default", uid: "uid-1", attempt: 0 },
    hostname: "web-pod",
    logDirectory: "/var/log/pods/default_web-pod_uid-1",
    ...partial,
  });
}

function input(over: Partial<ContainerSpecInput> = {}): ContainerSpecInput {
  return {
    id: ID,
    sandboxId: SANDBOX_ID,
    config: config(),
    sandboxConfig: sandboxConfig(),
    image: IMAGE,
    imageName: "docker.io/library/nginx:1.25",
    hostname: "web-pod",
    sandboxPid: 4242,
    netnsPath: NETNS,
    files: FILES,
    user: { uid: 0, gid: 0, additionalGids: [0] },
    cgroupDriver: "cgroupfs",
    cgroupV2: false,
    restrictOomScoreAdj: false,
    currentOomScoreAdj: 0,
    allCapabilities: ALL_BUT_SYS_RESOURCE,
    ...over,
  };
}

const withSc = (securityContext: DeepPartial<SecurityContext>, extra: DeepPartial<ContainerConfig> = {}) =>
  config({ ...extra, linux: { ...extra.linux, securityContext } });
const privilegedPod = sandboxConfig({ linux: { securityContext: { privileged: true } } });
const mount = (spec: Spec, dest: string): Mount[] => spec.mounts.filter((m) => m.destination === dest);
const dests = (spec: Spec) => spec.mounts.map((m) => m.destination);
const thrown = (f: () => unknown): unknown => {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
};

describe("buildContainerSpec: the default container", () => {
  const spec = buildContainerSpec(input());

  it("runs the image's entrypoint and cmd in its working dir as the resolved user", () => {
    expect(spec.ociVersion).toMatch(/^1\./);
    expect(spec.process.args).toEqual(["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]);
    expect(spec.process.cwd).toBe("/srv");
    expect(spec.process.user).toEqual({ uid: 0, gid: 0, additionalGids: [0] });
    expect(spec.process.terminal).toBe(false);
    expect(spec.process.noNewPrivileges).toBe(false);
    expect(spec.process.rlimits).toBeUndefined();
    expect(spec.process.oomScoreAdj).toBeUndefined();
    expect(spec.process.apparmorProfile).toBeUndefined();
    expect(spec.root).toEqual({ path: "rootfs", readonly: false });
    expect(spec.hostname).toBeUndefined();
  });

  it("sets PATH, HOSTNAME and the image's variables; a bare name unsets", () => {
    expect(spec.process.env).toEqual([
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "HOSTNAME=web-pod",
      "NGINX_VERSION=1.25",
    ]);
  });

  it("has the default capabilities, masked and read-only paths, and no seccomp", () => {
    const caps = spec.process.capabilities;
    for (const set of [caps.bounding, caps.effective, caps.permitted]) expect(set).toEqual([...DEFAULT_CAPABILITIES]);
    expect(caps.inheritable).toBeUndefined();
    expect(caps.ambient).toBeUndefined();
    expect(spec.linux.maskedPaths).toEqual([...DEFAULT_MASKED_PATHS]);
    expect(spec.linux.readonlyPaths).toEqual([...DEFAULT_READONLY_PATHS]);
    expect(spec.linux.seccomp).toBeUndefined();
  });

  it("joins the pod's namespaces and makes its own mount namespace", () => {
    expect(spec.linux.namespaces).toEqual([
      { type: "pid", path: "/proc/4242/ns/pid" },
      { type: "ipc", path: "/proc/4242/ns/ipc" },
      { type: "uts", path: "/proc/4242/ns/uts" },
      { type: "mount" },
      { type: "network", path: NETNS },
    ]);
  });

  it("mounts the defaults (no /run), the cgroup read-only, then the sandbox's files", () => {
    expect(dests(spec)).toEqual([
      "/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/sys/fs/cgroup",
      "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev/shm",
    ]);
    expect(mount(spec, "/sys/fs/cgroup")).toEqual([{ destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["nosuid", "noexec", "nodev", "relatime", "ro"] }]);
    expect(mount(spec, "/sys")[0]!.options).toContain("ro");
    expect(mount(spec, "/etc/hosts")).toEqual([{ destination: "/etc/hosts", type: "bind", source: FILES.hosts, options: ["rbind", "rprivate", "rw"] }]);
    expect(mount(spec, "/etc/hostname")[0]!.source).toBe(FILES.hostname);
    expect(mount(spec, "/etc/resolv.conf")[0]!.source).toBe(FILES.resolvConf);
    expect(mount(spec, "/dev/shm")).toEqual([{ destination: "/dev/shm", type: "bind", source: FILES.shm, options: ["rbind", "rprivate", "rw"] }]);
    expect(spec.linux.rootfsPropagation).toBeUndefined();
  });

  it("denies devices, sets no resources it was not given, and lives under the pod's cgroup", () => {
    expect(spec.linux.resources).toEqual({ devices: [{ allow: false, access: "rwm" }] });
    expect(spec.linux.devices).toBeUndefined();
    expect(spec.linux.cgroupsPath).toBe(`/podshim/${ID}`);
    expect(spec.linux.sysctl).toBeUndefined();
  });

  it("carries the CRI annotations and none of the kubelet's", () => {
    const s = buildContainerSpec(input({ config: config({ annotations: { "io.kubernetes.container.hash": "abc" } }) }));
    expect(s.annotations).toEqual({
      "io.kubernetes.cri.container-type": "container",
      "io.kubernetes.cri.sandbox-id": SANDBOX_ID,
      "io.kubernetes.cri.sandbox-name": "web-pod",
      "io.kubernetes.cri.sandbox-namespace": "default",
      "io.kubernetes.cri.sandbox-uid": "uid-1",
      "io.kubernetes.cri.container-name": "web",
      "io.kubernetes.cri.image-name": "docker.io/library/nginx:1.25",
    });
  });

  it("is JSON without undefined holes", () => {
    expect(JSON.parse(JSON.stringify(spec))).toEqual(spec);
  });

  it("does not share state between calls", () => {
    const a = buildContainerSpec(input());
    a.mounts[0]!.options.push("x");
    a.process.capabilities.bounding.push("CAP_SYS_ADMIN");
    a.linux.maskedPaths.push("/x");
    const b = buildContainerSpec(input());
    expect(b.mounts[0]!.options).not.toContain("x");
    expect(b.process.capabilities.bounding).not.toContain("CAP_SYS_ADMIN");
    expect(b.linux.maskedPaths).not.toContain("/x");
  });
});

describe("buildContainerSpec: command and arguments", () => {
  const image = (Entrypoint: string[] | null | undefined, Cmd: string[] | null | undefined): ImageConfig => ({ ...IMAGE, config: { ...IMAGE.config, Entrypoint, Cmd } });
  it.each([
    ["image entrypoint + cmd", [], [], image(["/ep"], ["a"]), ["/ep", "a"]],
    ["args replace the image's cmd", [], ["b"], image(["/ep"], ["a"]), ["/ep", "b"]],
    ["command replaces entrypoint and cmd", ["/bin/sh"], [], image(["/ep"], ["a"]), ["/bin/sh"]],
    ["command and args", ["/bin/sh"], ["-c", "true"], image(["/ep"], ["a"]), ["/bin/sh", "-c", "true"]],
    ["cmd only", [], [], image(null, ["/bin/app"]), ["/bin/app"]],
    ["entrypoint only", [], [], image(["/bin/app"], undefined), ["/bin/app"]],
    ["ENTRYPOINT [\"\"] resets the entrypoint", [], [], image([""], ["/bin/app"]), ["/bin/app"]],
    ["args with a reset entrypoint", [], ["/bin/x"], image([""], ["/bin/app"]), ["/bin/x"]],
  ])("%s", (_, command, args, img, want) => {
    expect(buildContainerSpec(input({ config: config({ command, args }), image: img })).process.args).toEqual(want);
  });

  it("refuses a container with nothing to run", () => {
    const err = thrown(() => buildContainerSpec(input({ image: image(null, null) })));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toMatch(/no command specified/);
  });
});

describe("buildContainerSpec: environment, working dir, terminal", () => {
  it("config variables win over the image's and HOSTNAME, in place", () => {
    const envs = [
      { key: "NGINX_VERSION", value: Buffer.from("1.27") },
      { key: "HOSTNAME", value: Buffer.from("override") },
      { key: "EMPTY", value: Buffer.from("") },
      { key: "A", value: Buffer.from("1") },
      { key: "A", value: Buffer.from("2=x") },
    ];
    expect(buildContainerSpec(input({ config: config({ envs }) })).process.env).toEqual([
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "HOSTNAME=override",
      "NGINX_VERSION=1.27",
      "EMPTY=",
      "A=2=x",
    ]);
  });

  it("keeps the default PATH when the image has none, and uses the given hostname", () => {
    const spec = buildContainerSpec(input({ image: { ...IMAGE, config: { Cmd: ["/app"] } }, hostname: "node-1" }));
    expect(spec.process.env).toEqual(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=node-1"]);
  });

  it("refuses variable names that cannot be", () => {
    expect(() => buildContainerSpec(input({ config: config({ envs: [{ key: "A=B", value: Buffer.from("x") }] }) }))).toThrow(InvalidArgumentError);
    expect(() => buildContainerSpec(input({ config: config({ envs: [{ key: "", value: Buffer.from("x") }] }) }))).toThrow(InvalidArgumentError);
  });

  it.each([
    ["working_dir", "/work", IMAGE, "/work"],
    ["the image's", "", IMAGE, "/srv"],
    ["the root", "", { ...IMAGE, config: { Cmd: ["/app"] } }, "/"],
  ])("cwd: %s", (_, workingDir, image, want) => {
    expect(buildContainerSpec(input({ config: config({ workingDir }), image })).process.cwd).toBe(want);
  });

  it("refuses a relative working_dir", () => {
    expect(() => buildContainerSpec(input({ config: config({ workingDir: "work" }) }))).toThrow(InvalidArgumentError);
  });

  it("tty: a terminal and TERM", () => {
    const spec = buildContainerSpec(input({ config: config({ tty: true, stdin: true }) }));
    expect(spec.process.terminal).toBe(true);
    expect(spec.process.env).toContain("TERM=xterm");
  });
});

describe("buildContainerSpec: mounts", () => {
  const criMount = (containerPath: string, hostPath: string, extra: object = {}) => ({ containerPath, hostPath, ...extra });

  it("binds CRI mounts with their propagation and access, parents before children", () => {
    const spec = buildContainerSpec(
      input({
        config: config({
          mounts: [
            criMount("/var/lib/data/cache", "/host/cache", { propagation: MountPropagation.PROPAGATION_PRIVATE }),
            criMount("/var/lib/data", "/host/data", { readonly: true, propagation: MountPropagation.PROPAGATION_HOST_TO_CONTAINER }),
            criMount("/mnt/shared/", "/host/shared", { propagation: MountPropagation.PROPAGATION_BIDIRECTIONAL }),
            criMount("/var", "/host/var", { propagation: 42 as MountPropagation }),
          ],
        }),
      }),
    );
    const binds = spec.mounts.filter((m) => m.type === "bind");
    expect(binds.map((m) => [m.destination, m.source, m.options.join(",")])).toEqual([
      ["/var", "/host/var", "rbind,rprivate,rw"],
      // Equal depths keep their order: the kubelet's mounts, then the sandbox's files.
      ["/mnt/shared/", "/host/shared", "rbind,rshared,rw"],
      ["/etc/hostname", FILES.hostname, "rbind,rprivate,rw"],
      ["/etc/hosts", FILES.hosts, "rbind,rprivate,rw"],
      ["/etc/resolv.conf", FILES.resolvConf, "rbind,rprivate,rw"],
      ["/dev/shm", FILES.shm, "rbind,rprivate,rw"],
      ["/var/lib/data", "/host/data", "rbind,rslave,ro"],
      ["/var/lib/data/cache", "/host/cache", "rbind,rprivate,rw"],
    ]);
    expect(spec.linux.rootfsPropagation).toBe("rshared");
  });

  it("a host-to-container mount makes the root rslave", () => {
    const spec = buildContainerSpec(input({ config: config({ mounts: [criMount("/a", "/b", { propagation: MountPropagation.PROPAGATION_HOST_TO_CONTAINER })] }) }));
    expect(spec.linux.rootfsPropagation).toBe("rslave");
  });

  it("a CRI mount wins over the sandbox's file and the runtime's default at the same path", () => {
    const spec = buildContainerSpec(
      input({
        config: config({
          mounts: [
            criMount("/etc/hosts", "/kubelet/etc-hosts"),
            criMount("/etc/resolv.conf/", "/kubelet/resolv"),
            criMount("/dev/shm", "/kubelet/shm"),
            criMount("/etc/hostname", "/kubelet/hostname"),
            criMount("/sys/fs/cgroup", "/kubelet/cgroup"),
          ],
        }),
      }),
    );
    for (const [dest, src] of [["/etc/hosts", "/kubelet/etc-hosts"], ["/dev/shm", "/kubelet/shm"], ["/etc/hostname", "/kubelet/hostname"], ["/sys/fs/cgroup", "/kubelet/cgroup"]]) {
      expect(mount(spec, dest!).map((m) => m.source)).toEqual([src]);
    }
    expect(mount(spec, "/etc/resolv.conf")).toEqual([]);
    expect(mount(spec, "/etc/resolv.conf/")[0]!.source).toBe("/kubelet/resolv");
  });

  it("a CRI /dev replaces every default mount under it", () => {
    const spec = buildContainerSpec(input({ config: config({ mounts: [criMount("/dev", "/host/dev")] }) }));
    expect(dests(spec).filter((d) => d.startsWith("/dev"))).toEqual(["/dev", "/dev/shm"]);
    expect(mount(spec, "/dev/shm")[0]!.type).toBe("bind");
  });

  it("uses the resolved host path when the caller prepared one", () => {
    const spec = buildContainerSpec(input({ config: config({ mounts: [criMount("/data", "/link")] }), mountSources: { "/link": "/real" } }));
    expect(mount(spec, "/data")[0]!.source).toBe("/real");
  });

  it("readonly_rootfs: a read-only root and read-only sandbox files, the shm stays writable", () => {
    const spec = buildContainerSpec(input({ config: withSc({ readonlyRootfs: true }) }));
    expect(spec.root.readonly).toBe(true);
    for (const dest of ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]) expect(mount(spec, dest)[0]!.options).toContain("ro");
    expect(mount(spec, "/dev/shm")[0]!.options).toContain("rw");
  });

  it("host IPC: the node's /dev/shm", () => {
    const spec = buildContainerSpec(input({ config: withSc({ namespaceOptions: { ipc: NamespaceMode.NODE } }) }));
    expect(mount(spec, "/dev/shm")).toEqual([{ destination: "/dev/shm", type: "bind", source: "/dev/shm", options: ["rbind", "rprivate", "rw"] }]);
  });

  it("without a pod shm the container keeps a private tmpfs", () => {
    const { shm: _, ...noShm } = FILES;
    const spec = buildContainerSpec(input({ files: noShm }));
    expect(mount(spec, "/dev/shm")).toEqual([{ destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] }]);
  });

  it("recursive read-only adds rro, and needs readonly and private propagation", () => {
    const rro = (extra: object) => input({ config: config({ mounts: [criMount("/data", "/host/data", { recursiveReadOnly: true, ...extra })] }) });
    expect(mount(buildContainerSpec(rro({ readonly: true })), "/data")[0]!.options).toEqual(["rbind", "rprivate", "ro", "rro"]);
    expect(() => buildContainerSpec(rro({ readonly: false }))).toThrow(InvalidArgumentError);
    expect(() => buildContainerSpec(rro({ readonly: true, propagation: MountPropagation.PROPAGATION_HOST_TO_CONTAINER }))).toThrow(InvalidArgumentError);
  });

  it.each([
    ["a relative container path", criMount("data", "/host"), InvalidArgumentError],
    ["a relative host path", criMount("/data", "host"), InvalidArgumentError],
    ["an image volume", criMount("/data", "", { image: { image: "busybox" } }), UnimplementedError],
    ["an id-mapped mount", criMount("/data", "/host", { uidMappings: [{ hostId: 1000, containerId: 0, length: 1 }] }), UnimplementedError],
    ["mount options", criMount("/data", "/host", { mountOptions: ["noatime"] }), UnimplementedError],
  ])("refuses %s", (_, m, type) => {
    expect(() => buildContainerSpec(input({ config: config({ mounts: [m] }) }))).toThrow(type);
  });
});

describe("buildContainerSpec: privileged", () => {
  const hostDevs: ResolvedDevice[] = [
    { path: "/dev/loop0", hostPath: "/dev/loop0", type: "b", major: 7, minor: 0, fileMode: 0o660, uid: 0, gid: 6, permissions: "rwm" },
    { path: "/dev/null", hostPath: "/dev/null", type: "c", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0, permissions: "rwm" },
  ];
  const priv = (over: Partial<ContainerSpecInput> = {}, sc: DeepPartial<SecurityContext> = {}) =>
    input({
      sandboxConfig: privilegedPod,
      hostDevices: hostDevs,
      defaultSeccomp: { defaultAction: "SCMP_ACT_ERRNO" },
      apparmor: { defaultProfile: "podshim-default", loadedProfiles: ["podshim-default"] },
      config: withSc({ privileged: true, seccomp: { profileType: SecurityProfile_ProfileType.RuntimeDefault }, ...sc }),
      ...over,
    });
  const spec = buildContainerSpec(priv());

  it("gets every capability podshim holds, ignoring add and drop", () => {
    expect(spec.process.capabilities.bounding).toEqual(ALL_BUT_SYS_RESOURCE);
    expect(spec.process.capabilities.effective).toEqual(ALL_BUT_SYS_RESOURCE);
    const s = buildContainerSpec(priv({}, { capabilities: { dropCapabilities: ["ALL"] } }));
    expect(s.process.capabilities.bounding).toEqual(ALL_BUT_SYS_RESOURCE);
  });

  it("gets every host device and may use any device", () => {
    expect(spec.linux.devices).toEqual([
      { path: "/dev/loop0", type: "b", major: 7, minor: 0, fileMode: 0o660, uid: 0, gid: 6 },
      { path: "/dev/null", type: "c", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 },
    ]);
    expect(spec.linux.resources.devices).toEqual([{ allow: true, access: "rwm" }]);
  });

  it("has no masked or read-only paths, writable sysfs and cgroups, no seccomp or default AppArmor", () => {
    expect(spec.linux.maskedPaths).toEqual([]);
    expect(spec.linux.readonlyPaths).toEqual([]);
    expect(mount(spec, "/sys")[0]!.options).toEqual(["nosuid", "noexec", "nodev", "rw"]);
    expect(mount(spec, "/sys/fs/cgroup")[0]!.options).toEqual(["nosuid", "noexec", "nodev", "relatime", "rw"]);
    expect(spec.linux.seccomp).toBeUndefined();
    expect(spec.process.apparmorProfile).toBeUndefined();
  });

  it("ignores requested masked paths", () => {
    expect(buildContainerSpec(priv({}, { maskedPaths: ["/proc/x"], readonlyPaths: ["/proc/y"] })).linux.maskedPaths).toEqual([]);
  });

  it("needs a privileged pod", () => {
    const err = thrown(() => buildContainerSpec(priv({ sandboxConfig: sandboxConfig() })));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toMatch(/privileged pod/);
  });

  it("privileged_without_host_devices: only the CRI devices, add and drop apply", () => {
    const dev: ResolvedDevice = { path: "/dev/fuse", hostPath: "/dev/fuse", type: "c", major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0, permissions: "rw" };
    const s = buildContainerSpec(priv({ privilegedWithoutHostDevices: true, devices: [dev] }, { capabilities: { dropCapabilities: ["NET_ADMIN"] } }));
    expect(s.linux.devices).toEqual([{ path: "/dev/fuse", type: "c", major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 }]);
    expect(s.linux.resources.devices).toEqual([{ allow: false, access: "rwm" }, { allow: true, type: "c", major: 10, minor: 229, access: "rw" }]);
    expect(s.process.capabilities.bounding).not.toContain("CAP_NET_ADMIN");
    expect(s.process.capabilities.bounding).toContain("CAP_SYS_ADMIN");
  });

  it("no cgroup namespace, even on v2", () => {
    expect(buildContainerSpec(priv({ cgroupV2: true })).linux.namespaces.map((n) => n.type)).not.toContain("cgroup");
  });
});

describe("buildContainerSpec: capabilities", () => {
  const caps = (add: string[], drop: string[]) =>
    buildContainerSpec(input({ config: withSc({ capabilities: { addCapabilities: add, dropCapabilities: drop } }) })).process.capabilities.bounding;

  it.each([
    ["add one, bare name", ["NET_ADMIN"], [], [...DEFAULT_CAPABILITIES, "CAP_NET_ADMIN"]],
    ["add with prefix, any case", ["cap_sys_admin"], [], [...DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"]],
    ["drop one", [], ["chown"], DEFAULT_CAPABILITIES.filter((c) => c !== "CAP_CHOWN")],
    ["add ALL", ["ALL"], [], ALL_BUT_SYS_RESOURCE],
    ["add all (any case)", ["all"], [], ALL_BUT_SYS_RESOURCE],
    ["drop ALL", [], ["ALL"], []],
    ["add ALL, drop one", ["ALL"], ["CAP_CHOWN"], ALL_BUT_SYS_RESOURCE.filter((c) => c !== "CAP_CHOWN")],
    ["drop ALL, add one", ["NET_BIND_SERVICE"], ["ALL"], ["CAP_NET_BIND_SERVICE"]],
    ["drop what was never there", [], ["SYS_RESOURCE"], [...DEFAULT_CAPABILITIES]],
  ])("%s", (_, add, drop, want) => {
    const got = caps(add, drop);
    expect([...got].sort()).toEqual([...want].sort());
    expect(new Set(got).size).toBe(got.length);
  });

  it("sets bounding, effective and permitted alike, never inheritable or ambient", () => {
    const c = buildContainerSpec(input({ config: withSc({ capabilities: { addCapabilities: ["NET_ADMIN"], addAmbientCapabilities: ["NET_ADMIN"] } }) })).process.capabilities;
    expect(c.effective).toEqual(c.bounding);
    expect(c.permitted).toEqual(c.bounding);
    expect(c.inheritable).toBeUndefined();
    expect(c.ambient).toBeUndefined();
  });

  it.each([
    ["an unknown name", ["FLY"]],
    ["a capability podshim lacks", ["SYS_RESOURCE"]],
  ])("refuses %s", (_, add) => {
    expect(() => caps(add, [])).toThrow(InvalidArgumentError);
  });
});

describe("buildContainerSpec: security context", () => {
  it("no_new_privs", () => {
    expect(buildContainerSpec(input({ config: withSc({ noNewPrivs: true }) })).process.noNewPrivileges).toBe(true);
  });

  it("masked and read-only paths replace the defaults when given", () => {
    const spec = buildContainerSpec(input({ config: withSc({ maskedPaths: ["/bin/ls"], readonlyPaths: ["/tmp"] }) }));
    expect(spec.linux.maskedPaths).toEqual(["/bin/ls"]);
    expect(spec.linux.readonlyPaths).toEqual(["/tmp"]);
  });

  it("the user is the resolved one", () => {
    const user = { uid: 1000, gid: 1000, additionalGids: [1000, 1234, 50000] };
    expect(buildContainerSpec(input({ user })).process.user).toEqual(user);
  });
});

describe("buildContainerSpec: seccomp", () => {
  const profile: LinuxSeccomp = { defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: ["read"], action: "SCMP_ACT_ALLOW" }] };
  const local: LinuxSeccomp = { defaultAction: "SCMP_ACT_LOG" };
  const withSeccomp = (seccomp: DeepPartial<NonNullable<SecurityContext["seccomp"]>> | undefined, seccompProfilePath = "") =>
    withSc({ ...(seccomp ? { seccomp } : {}), seccompProfilePath });

  it.each([
    ["nil: unconfined", withSeccomp(undefined), undefined],
    ["RuntimeDefault", withSeccomp({ profileType: SecurityProfile_ProfileType.RuntimeDefault }), profile],
    ["Unconfined", withSeccomp({ profileType: SecurityProfile_ProfileType.Unconfined }), undefined],
    ["Localhost", withSeccomp({ profileType: SecurityProfile_ProfileType.Localhost, localhostRef: "/etc/p.json" }), local],
    ["path runtime/default", withSeccomp(undefined, "runtime/default"), profile],
    ["path docker/default", withSeccomp(undefined, "docker/default"), profile],
    ["path unconfined", withSeccomp(undefined, "unconfined"), undefined],
    ["path localhost/...", withSeccomp(undefined, "localhost//etc/p.json"), local],
    ["the field wins over the path", withSeccomp({ profileType: SecurityProfile_ProfileType.Unconfined }, "runtime/default"), undefined],
  ])("%s", (_, c, want) => {
    expect(buildContainerSpec(input({ config: c, defaultSeccomp: profile, localhostSeccomp: { "/etc/p.json": local } })).linux.seccomp).toEqual(want);
  });

  it("builds the runtime default from the container's capabilities", () => {
    const c = withSc({ seccomp: { profileType: SecurityProfile_ProfileType.RuntimeDefault }, capabilities: { addCapabilities: ["SYS_ADMIN"] } });
    const spec = buildContainerSpec(input({ config: c, defaultSeccomp: (caps) => runtimeDefaultSeccomp(caps, "x64") }));
    expect(spec.linux.seccomp).toEqual(runtimeDefaultSeccomp([...DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"], "x64"));
    // The allow-list names mount only when CAP_SYS_ADMIN opens it.
    expect(spec.linux.seccomp!.syscalls!.some((s) => s.names.includes("mount"))).toBe(true);
    const plain = buildContainerSpec(input({ config: withSeccomp({}), defaultSeccomp: (caps) => runtimeDefaultSeccomp(caps, "x64") }));
    expect(plain.linux.seccomp!.syscalls!.some((s) => s.names.includes("mount"))).toBe(false);
  });

  it.each([
    ["a Localhost profile that is not loaded", withSeccomp({ profileType: SecurityProfile_ProfileType.Localhost, localhostRef: "/nope.json" })],
    ["localhostRef with another type", withSeccomp({ profileType: SecurityProfile_ProfileType.RuntimeDefault, localhostRef: "/etc/p.json" })],
    ["a bad profile path", withSeccomp(undefined, "bogus")],
  ])("refuses %s", (_, c) => {
    expect(() => buildContainerSpec(input({ config: c, defaultSeccomp: profile }))).toThrow(InvalidArgumentError);
  });
});

describe("buildContainerSpec: AppArmor", () => {
  const host = { defaultProfile: "podshim-default", loadedProfiles: ["podshim-default", "k8s-apparmor-example-deny-write"] };
  const withAa = (apparmor: DeepPartial<NonNullable<SecurityContext["apparmor"]>> | undefined, apparmorProfile = "", privileged = false) =>
    withSc({ ...(apparmor ? { apparmor } : {}), apparmorProfile, privileged });

  it.each([
    ["nil: the default", withAa(undefined), host, "podshim-default"],
    ["RuntimeDefault", withAa({ profileType: SecurityProfile_ProfileType.RuntimeDefault }), host, "podshim-default"],
    ["RuntimeDefault without a default profile", withAa({}), { loadedProfiles: [] }, undefined],
    ["Unconfined", withAa({ profileType: SecurityProfile_ProfileType.Unconfined }), host, undefined],
    ["Localhost", withAa({ profileType: SecurityProfile_ProfileType.Localhost, localhostRef: "k8s-apparmor-example-deny-write" }), host, "k8s-apparmor-example-deny-write"],
    ["Localhost with the prefix", withAa({ profileType: SecurityProfile_ProfileType.Localhost, localhostRef: "localhost/k8s-apparmor-example-deny-write" }), host, "k8s-apparmor-example-deny-write"],
    ["path runtime/default", withAa(undefined, "runtime/default"), host, "podshim-default"],
    ["path unconfined", withAa(undefined, "unconfined"), host, undefined],
    ["path localhost/<name>", withAa(undefined, "localhost/k8s-apparmor-example-deny-write"), host, "k8s-apparmor-example-deny-write"],
    ["no AppArmor on the node", withAa({ profileType: SecurityProfile_ProfileType.RuntimeDefault }), undefined, undefined],
  ])("%s", (_, c, aa, want) => {
    expect(buildContainerSpec(input({ config: c, apparmor: aa })).process.apparmorProfile).toBe(want);
  });

  it("privileged drops the default profile but keeps one named explicitly", () => {
    const p = { sandboxConfig: privilegedPod, apparmor: host };
    expect(buildContainerSpec(input({ ...p, config: withAa(undefined, "", true) })).process.apparmorProfile).toBeUndefined();
    const named = withAa({ profileType: SecurityProfile_ProfileType.Localhost, localhostRef: "k8s-apparmor-example-deny-write" }, "", true);
    expect(buildContainerSpec(input({ ...p, config: named })).process.apparmorProfile).toBe("k8s-apparmor-example-deny-write");
  });

  it.each([
    ["a Localhost profile that is not loaded", withAa({ profileType: SecurityProfile_ProfileType.Localhost, localhostRef: "missing" }), host, /not loaded/],
    ["Localhost on a node without AppArmor", withAa({ profileType: SecurityProfile_ProfileType.Localhost, localhostRef: "x" }), undefined, /not enabled/],
    ["localhostRef with another type", withAa({ profileType: SecurityProfile_ProfileType.Unconfined, localhostRef: "x" }), host, /localhostRef/],
    ["a bad profile path", withAa(undefined, "bogus"), host, /invalid apparmor profile/],
  ])("refuses %s", (_, c, aa, message) => {
    const err = thrown(() => buildContainerSpec(input({ config: c, apparmor: aa })));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toMatch(message);
  });
});

describe("buildContainerSpec: namespaces", () => {
  type Ns = { network?: NamespaceMode; pid?: NamespaceMode; ipc?: NamespaceMode; targetId?: string };
  const ns = (namespaceOptions: Ns, over: Partial<ContainerSpecInput> = {}) => buildContainerSpec(input({ config: withSc({ namespaceOptions }), ...over })).linux.namespaces;

  it.each([
    ["host network: no network or uts", { network: NamespaceMode.NODE }, [
      { type: "pid", path: "/proc/4242/ns/pid" }, { type: "ipc", path: "/proc/4242/ns/ipc" }, { type: "mount" },
    ]],
    ["host pid", { pid: NamespaceMode.NODE }, [
      { type: "ipc", path: "/proc/4242/ns/ipc" }, { type: "uts", path: "/proc/4242/ns/uts" }, { type: "mount" }, { type: "network", path: NETNS },
    ]],
    ["host ipc", { ipc: NamespaceMode.NODE }, [
      { type: "pid", path: "/proc/4242/ns/pid" }, { type: "uts", path: "/proc/4242/ns/uts" }, { type: "mount" }, { type: "network", path: NETNS },
    ]],
    ["all from the node", { network: NamespaceMode.NODE, pid: NamespaceMode.NODE, ipc: NamespaceMode.NODE }, [{ type: "mount" }]],
    ["pid CONTAINER: a fresh one", { pid: NamespaceMode.CONTAINER }, [
      { type: "pid" }, { type: "ipc", path: "/proc/4242/ns/ipc" }, { type: "uts", path: "/proc/4242/ns/uts" }, { type: "mount" }, { type: "network", path: NETNS },
    ]],
  ] as [string, Ns, object[]][])("%s", (_, options, want) => {
    expect(ns(options)).toEqual(want);
  });

  it("pid TARGET joins the target container's", () => {
    expect(ns({ pid: NamespaceMode.TARGET, targetId: "abc" }, { targetPid: 777 })[0]).toEqual({ type: "pid", path: "/proc/777/ns/pid" });
    expect(() => ns({ pid: NamespaceMode.TARGET, targetId: "abc" })).toThrow(InvalidArgumentError);
  });

  it("without a pinned netns path joins the pause process's", () => {
    expect(ns({}, { netnsPath: undefined }).at(-1)).toEqual({ type: "network", path: "/proc/4242/ns/net" });
  });

  it("a cgroup namespace on cgroup v2 only", () => {
    expect(ns({}, { cgroupV2: true }).at(-1)).toEqual({ type: "cgroup" });
    expect(ns({}).map((n) => n.type)).not.toContain("cgroup");
  });

  it("needs a pause pid to join", () => {
    expect(() => ns({}, { sandboxPid: 0 })).toThrow(InvalidArgumentError);
    expect(ns({ network: NamespaceMode.NODE, pid: NamespaceMode.NODE, ipc: NamespaceMode.NODE }, { sandboxPid: 0 })).toEqual([{ type: "mount" }]);
  });

  it("user namespaces: NODE is the default, POD is not implemented, others are invalid", () => {
    const userns = (mode: NamespaceMode) => input({ config: withSc({ namespaceOptions: { usernsOptions: { mode } } }) });
    expect(buildContainerSpec(userns(NamespaceMode.NODE)).linux.namespaces.map((n) => n.type)).not.toContain("user");
    expect(() => buildContainerSpec(userns(NamespaceMode.POD))).toThrow(UnimplementedError);
    expect(() => buildContainerSpec(userns(NamespaceMode.CONTAINER))).toThrow(InvalidArgumentError);
    expect(() => buildContainerSpec(userns(NamespaceMode.TARGET))).toThrow(InvalidArgumentError);
  });
});

describe("buildContainerSpec: sysctls of the pod", () => {
  const sysctls = { "kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "100", "net.ipv4.ip_forward": "1" };

  it("are set in the container too", () => {
    const spec = buildContainerSpec(input({ sandboxConfig: sandboxConfig({ linux: { sysctls } }) }));
    expect(spec.linux.sysctl).toEqual(sysctls);
  });

  it.each([
    ["net.ipv4.ip_forward", { network: NamespaceMode.NODE }],
    ["kernel.shm_rmid_forced", { ipc: NamespaceMode.NODE }],
    ["fs.mqueue.msg_max", { ipc: NamespaceMode.NODE }],
  ])("refuses %s with %j", (key, namespaceOptions) => {
    const i = input({ sandboxConfig: sandboxConfig({ linux: { sysctls: { [key]: "1" } } }), config: withSc({ namespaceOptions }) });
    expect(() => buildContainerSpec(i)).toThrow(InvalidArgumentError);
  });
});

describe("buildContainerSpec: devices", () => {
  const fuse: ResolvedDevice = { path: "/dev/fuse", hostPath: "/dev/fuse", type: "c", major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0, permissions: "rw" };
  const disk: ResolvedDevice = { path: "/dev/xvdb", hostPath: "/dev/sdb", type: "b", major: 8, minor: 16, fileMode: 0o660, uid: 0, gid: 6, permissions: "rwm" };

  it("creates the CRI devices and allows them after the default deny", () => {
    const spec = buildContainerSpec(input({ devices: [fuse, disk] }));
    expect(spec.linux.devices).toEqual([
      { path: "/dev/fuse", type: "c", major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 },
      { path: "/dev/xvdb", type: "b", major: 8, minor: 16, fileMode: 0o660, uid: 0, gid: 6 },
    ]);
    expect(spec.linux.resources.devices).toEqual([
      { allow: false, access: "rwm" },
      { allow: true, type: "c", major: 10, minor: 229, access: "rw" },
      { allow: true, type: "b", major: 8, minor: 16, access: "rwm" },
    ]);
  });

  it("gives them to the process's user when asked", () => {
    const spec = buildContainerSpec(input({ devices: [disk], user: { uid: 1000, gid: 2000, additionalGids: [2000] }, deviceOwnershipFromSecurityContext: true }));
    expect(spec.linux.devices![0]).toMatchObject({ uid: 1000, gid: 2000 });
  });
});

describe("buildContainerSpec: resources and oom_score_adj", () => {
  const res = (partial: DeepPartial<LinuxContainerResources>) => config({ linux: { resources: partial } });

  it("maps every CRI field", () => {
    const spec = buildContainerSpec(
      input({
        swapController: true,
        config: res({
          cpuPeriod: 100000n, cpuQuota: 50000n, cpuShares: 512n, cpusetCpus: "0-1", cpusetMems: "0",
          memoryLimitInBytes: 268435456n, memorySwapLimitInBytes: 536870912n, oomScoreAdj: 500n,
          hugepageLimits: [{ pageSize: "2MB", limit: 4194304n }], unified: { "memory.high": "200M" },
        }),
      }),
    );
    expect(spec.linux.resources).toEqual({
      devices: [{ allow: false, access: "rwm" }],
      cpu: { period: 100000, quota: 50000, shares: 512, cpus: "0-1", mems: "0" },
      memory: { limit: 268435456, swap: 536870912 },
      hugepageLimits: [{ pageSize: "2MB", limit: 4194304 }],
    });
    expect(spec.process.oomScoreAdj).toBe(500);
  });

  it("unified only on cgroup v2", () => {
    const c = res({ unified: { "memory.high": "200M" } });
    expect(buildContainerSpec(input({ config: c, cgroupV2: true })).linux.resources.unified).toEqual({ "memory.high": "200M" });
    expect(buildContainerSpec(input({ config: c })).linux.resources.unified).toBeUndefined();
  });

  it("swap: equal to the limit by default, only with a swap controller", () => {
    const c = res({ memoryLimitInBytes: 1000n });
    expect(buildContainerSpec(input({ config: c, swapController: true })).linux.resources.memory).toEqual({ limit: 1000, swap: 1000 });
    expect(buildContainerSpec(input({ config: c })).linux.resources.memory).toEqual({ limit: 1000 });
    expect(buildContainerSpec(input({ config: res({ memoryLimitInBytes: 1000n, memorySwapLimitInBytes: 3000n }) })).linux.resources.memory).toEqual({ limit: 1000 });
  });

  it("hugepages dropped without the hugetlb controller", () => {
    const c = res({ hugepageLimits: [{ pageSize: "2MB", limit: 1n }] });
    expect(buildContainerSpec(input({ config: c, hugetlbController: false })).linux.resources.hugepageLimits).toBeUndefined();
  });

  it.each([
    [false, 0, -997, -997],
    [true, 0, -997, 0],
    [true, -999, -997, -997],
    [true, -500, 300, 300],
    [true, 300, 0, 300],
  ])("oom_score_adj: restrict=%s current=%d asked=%d -> %d", (restrictOomScoreAdj, currentOomScoreAdj, asked, want) => {
    expect(buildContainerSpec(input({ restrictOomScoreAdj, currentOomScoreAdj, config: res({ oomScoreAdj: BigInt(asked) }) })).process.oomScoreAdj).toBe(want);
  });

  it.each([
    ["a negative memory limit", { memoryLimitInBytes: -1n }],
    ["a negative period", { cpuPeriod: -1n }],
    ["an oom_score_adj out of range", { oomScoreAdj: 1001n }],
    ["a limit past 2^53", { memoryLimitInBytes: 2n ** 60n }],
  ])("refuses %s", (_, partial) => {
    expect(() => buildContainerSpec(input({ config: res(partial) }))).toThrow(InvalidArgumentError);
  });
});

describe("resourcesToSpec and applyResourceUpdate", () => {
  const opts = { cgroupV2: false, swapController: true };
  const update = (partial: DeepPartial<LinuxContainerResources>) => LinuxContainerResources.fromPartial(partial);

  it("changes only what the update sets, keeping devices", () => {
    const base = buildContainerSpec(input({ swapController: true, config: config({ linux: { resources: { cpuShares: 512n, cpuQuota: 50000n, cpuPeriod: 100000n, memoryLimitInBytes: 1000n } } }) }));
    const next = applyResourceUpdate(base, update({ cpuQuota: 20000n, memoryLimitInBytes: 2000n, hugepageLimits: [{ pageSize: "2MB", limit: 2n }] }), opts);
    expect(next.linux.resources).toEqual({
      devices: [{ allow: false, access: "rwm" }],
      cpu: { shares: 512, quota: 20000, period: 100000 },
      memory: { limit: 2000, swap: 2000 },
      hugepageLimits: [{ pageSize: "2MB", limit: 2 }],
    });
    expect(base.linux.resources.cpu!.quota).toBe(50000);
    expect(next.process).toEqual(base.process);
  });

  it("replaces a page size's hugepage limit instead of adding a second", () => {
    const base = resourcesToSpec(update({ hugepageLimits: [{ pageSize: "2MB", limit: 1n }, { pageSize: "1GB", limit: 0n }] }), opts);
    const next = resourcesToSpec(update({ hugepageLimits: [{ pageSize: "2MB", limit: 5n }] }), opts, base);
    expect(next.hugepageLimits).toEqual([{ pageSize: "2MB", limit: 5 }, { pageSize: "1GB", limit: 0 }]);
  });

  it("merges unified keys on v2", () => {
    const base = resourcesToSpec(update({ unified: { "memory.high": "1M", "pids.max": "10" } }), { cgroupV2: true });
    expect(resourcesToSpec(update({ unified: { "memory.high": "2M" } }), { cgroupV2: true }, base).unified).toEqual({ "memory.high": "2M", "pids.max": "10" });
  });

  it("nothing for nothing", () => {
    expect(resourcesToSpec(undefined, opts)).toEqual({ devices: [] });
    expect(resourcesToSpec(update({}), opts)).toEqual({ devices: [] });
  });
});

describe("stop signal", () => {
  it.each([
    ["SIGTERM", 15], ["TERM", 15], ["term", 15], ["15", 15], ["SIGKILL", 9], ["SIGQUIT", 3], ["SIGWINCH", 28],
    ["SIGRTMIN", 34], ["SIGRTMIN+3", 37], ["RTMIN+30", 64], ["SIGRTMAX", 64], ["SIGRTMAX-1", 63], ["SIGPWR", 30], ["SIGIOT", 6],
  ])("%s is %d", (text, n) => {
    expect(parseSignal(text)).toBe(n);
  });

  it.each(["", "SIGFOO", "0", "65", "SIGRTMIN+31", "SIGRTMAX-31", "SIGRTMIN-1", "SIGRTMAX+1", "-9"])("refuses %j", (text) => {
    expect(() => parseSignal(text)).toThrow(InvalidArgumentError);
  });

  it.each([
    ["the config's", Signal.SIGNAL_SIGUSR1, "SIGQUIT", 10],
    ["the config's real-time one", Signal.SIGNAL_SIGRTMINPLUS3, "", 37],
    ["the config's SIGRTMAX-2", Signal.SIGNAL_SIGRTMAXMINUS2, "", 62],
    ["the image's", Signal.SIGNAL_RUNTIME_DEFAULT, "SIGQUIT", 3],
    ["the image's by number", Signal.SIGNAL_RUNTIME_DEFAULT, "2", 2],
    ["SIGTERM otherwise", Signal.SIGNAL_RUNTIME_DEFAULT, "", 15],
  ])("%s", (_, stopSignal, imageSignal, want) => {
    const image: ImageConfig = { ...IMAGE, config: { ...IMAGE.config, StopSignal: imageSignal } };
    expect(effectiveStopSignal({ stopSignal }, image)).toBe(want);
  });

  it("refuses an image STOPSIGNAL it cannot read", () => {
    expect(() => effectiveStopSignal({ stopSignal: Signal.SIGNAL_RUNTIME_DEFAULT }, { ...IMAGE, config: { StopSignal: "SIGNOPE" } })).toThrow(InvalidArgumentError);
  });

  it("maps CRI enum values and numbers both ways", () => {
    expect(criSignalNumber(Signal.SIGNAL_SIGTERM)).toBe(15);
    expect(criSignalNumber(Signal.SIGNAL_RUNTIME_DEFAULT)).toBeUndefined();
    expect(criSignalNumber(Signal.UNRECOGNIZED)).toBeUndefined();
    expect(criSignalOf(15)).toBe(Signal.SIGNAL_SIGTERM);
    expect(criSignalOf(17)).toBe(Signal.SIGNAL_SIGCHLD);
    expect(criSignalOf(6)).toBe(Signal.SIGNAL_SIGABRT);
    expect(criSignalOf(34)).toBe(Signal.SIGNAL_SIGRTMIN);
    expect(criSignalOf(64)).toBe(Signal.SIGNAL_SIGRTMAX);
    expect(criSignalOf(99)).toBe(Signal.SIGNAL_RUNTIME_DEFAULT);
    for (let n = 1; n <= 64; n++) {
      if (n === 32 || n === 33) continue;
      expect(criSignalNumber(criSignalOf(n))).toBe(n);
    }
  });
});

describe("buildContainerSpec: inputs it refuses", () => {
  it.each(["", "a/b", "a:b", ".."])("container id %j", (id) => {
    expect(() => buildContainerSpec(input({ id }))).toThrow(InvalidArgumentError);
  });

  it("a config without a name", () => {
    expect(() => buildContainerSpec(input({ config: ContainerConfig.fromPartial({ command: ["/x"] }) }))).toThrow(InvalidArgumentError);
  });

  it("cgroups path follows the pod's parent and driver", () => {
    expect(buildContainerSpec(input({ sandboxConfig: sandboxConfig({ linux: { cgroupParent: "/kubepods/besteffort/poduid-1" } }) })).linux.cgroupsPath).toBe(`/kubepods/besteffort/poduid-1/${ID}`);
    const systemd = input({ cgroupDriver: "systemd", sandboxConfig: sandboxConfig({ linux: { cgroupParent: "/kubepods.slice/kubepods-pod1.slice" } }) });
    expect(buildContainerSpec(systemd).linux.cgroupsPath).toBe(`kubepods-pod1.slice:cri-podshim:${ID}`);
  });
});
