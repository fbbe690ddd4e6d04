import { describe, expect, it } from "vitest";
import { InvalidArgumentError, UnimplementedError } from "../../src/errors/errors.js";
import { NamespaceMode, PodSandboxConfig, SecurityProfile_ProfileType } from "../../src/gen/cri/runtime/v1/api.js";
import type { ImageConfig } from "../../src/distribution/manifest.js";
import { DEFAULT_CAPABILITIES, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from "../../src/oci/defaults.js";
import type { LinuxSeccomp, Mount, Spec } from "../../src/oci/spec-types.js";
import { buildSandboxSpec, cgroupsPath } from "../../src/sandbox/sandbox-spec.js";
import type { SandboxSpecInput } from "../../src/sandbox/sandbox-spec.js";
import type { DeepPartial } from "../support/deep-partial.js";

type SecurityContext = NonNullable<NonNullable<PodSandboxConfig["linux"]>["securityContext"]>;

const ID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const NETNS = "/var/run/netns/podshim-test";
const FILES = { hostname: "/var/lib/podshim/s/hostname", hosts: "/var/lib/podshim/s/hosts", resolvConf: "/var/lib/podshim/s/resolv.conf" };
const PAUSE: ImageConfig = {
  config: { Entrypoint: ["/pause"], Env: ["PATH=/usr/local/bin:/usr/bin:/bin", "UNSET_ME"], WorkingDir: "/" },
  rootfs: { type: "layers", diff_ids: [] },
};

function config(partial: DeepPartial<PodSandboxConfig> = {}): PodSandboxConfig {
  return PodSandboxConfig.fromPartial({
    metadata: { name: "web", namespace: "default", uid: "uid-1", attempt: 0 },
    hostname: "web-host",
    logDirectory: "/var/log/pods/default_web_uid-1",
    ...partial,
  });
}

function input(over: Partial<SandboxSpecInput> = {}): SandboxSpecInput {
  return {
    id: ID,
    config: config(),
    image: PAUSE,
    netnsPath: NETNS,
    runtimeHandler: "",
    cgroupDriver: "cgroupfs",
    restrictOomScoreAdj: false,
    currentOomScoreAdj: 0,
    files: FILES,
    ...over,
  };
}

type NsModes = { network?: NamespaceMode; pid?: NamespaceMode; ipc?: NamespaceMode };
const withNs = (ns: NsModes, extra: DeepPartial<PodSandboxConfig> = {}) =>
  config({ ...extra, linux: { ...extra.linux, securityContext: { ...extra.linux?.securityContext, namespaceOptions: ns } } });

const mount = (spec: Spec, dest: string): Mount[] => spec.mounts.filter((m) => m.destination === dest);
const nsTypes = (spec: Spec) => spec.linux.namespaces.map((n) => n.type);

describe("buildSandboxSpec: the default pod", () => {
  const spec = buildSandboxSpec(input());

  it("runs the image's entrypoint as root with the image's env, read-only root", () => {
    expect(spec.ociVersion).toMatch(/^1\./);
    expect(spec.process.args).toEqual(["/pause"]);
    expect(spec.process.env).toEqual(["PATH=/usr/local/bin:/usr/bin:/bin"]);
    expect(spec.process.cwd).toBe("/");
    expect(spec.process.user).toEqual({ uid: 0, gid: 0, additionalGids: [] });
    expect(spec.process.terminal).toBe(false);
    expect(spec.process.noNewPrivileges).toBe(true);
    expect(spec.process.rlimits).toBeUndefined();
    expect(spec.process.apparmorProfile).toBeUndefined();
    expect(spec.root).toEqual({ path: "rootfs", readonly: true });
  });

  it("has the default capabilities, masked and read-only paths, and no seccomp", () => {
    for (const set of [spec.process.capabilities.bounding, spec.process.capabilities.effective, spec.process.capabilities.permitted]) {
      expect(set).toEqual([...DEFAULT_CAPABILITIES]);
    }
    expect(spec.process.capabilities.inheritable).toBeUndefined();
    expect(spec.process.capabilities.ambient).toBeUndefined();
    expect(spec.linux.maskedPaths).toEqual([...DEFAULT_MASKED_PATHS]);
    expect(spec.linux.readonlyPaths).toEqual([...DEFAULT_READONLY_PATHS]);
    expect(spec.linux.seccomp).toBeUndefined();
  });

  it("creates pid, ipc, uts and mount namespaces and joins the pod's netns", () => {
    expect(spec.linux.namespaces).toEqual([
      { type: "pid" },
      { type: "ipc" },
      { type: "uts" },
      { type: "mount" },
      { type: "network", path: NETNS },
    ]);
    expect(spec.hostname).toBe("web-host");
  });

  it("mounts the defaults without /run, a private shm tmpfs and resolv.conf read-only; no hosts or hostname", () => {
    expect(spec.mounts.map((m) => m.destination)).toEqual(["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/etc/resolv.conf"]);
    expect(mount(spec, "/dev/shm")).toEqual([
      { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
    ]);
    expect(mount(spec, "/sys")[0]!.options).toContain("ro");
    expect(mount(spec, "/etc/resolv.conf")).toEqual([
      { destination: "/etc/resolv.conf", type: "bind", source: FILES.resolvConf, options: ["rbind", "ro", "nosuid", "nodev", "noexec"] },
    ]);
  });

  it("keeps the pause container small: deny all devices, 2 CPU shares, oom_score_adj -998", () => {
    expect(spec.linux.resources).toEqual({ devices: [{ allow: false, access: "rwm" }], cpu: { shares: 2 } });
    expect(spec.process.oomScoreAdj).toBe(-998);
    expect(spec.linux.sysctl).toBeUndefined();
  });

  it("carries the CRI annotations the shim and tools look for, and no pod annotations", () => {
    const s = buildSandboxSpec(input({ config: config({ annotations: { "example.com/a": "1" } }), imageName: "registry.k8s.io/pause:3.10" }));
    expect(s.annotations).toEqual({
      "io.kubernetes.cri.container-type": "sandbox",
      "io.kubernetes.cri.sandbox-id": ID,
      "io.kubernetes.cri.sandbox-name": "web",
      "io.kubernetes.cri.sandbox-namespace": "default",
      "io.kubernetes.cri.sandbox-uid": "uid-1",
      "io.kubernetes.cri.sandbox-log-directory": "/var/log/pods/default_web_uid-1",
      "io.kubernetes.cri.podsandbox.image-name": "registry.k8s.io/pause:3.10",
    });
  });

  it("is JSON without undefined holes", () => {
    expect(JSON.parse(JSON.stringify(spec))).toEqual(spec);
  });
});

describe("buildSandboxSpec: cgroups path", () => {
  it.each([
    ["cgroupfs", "", `/podshim/${ID}`],
    ["cgroupfs", "/kubepods/besteffort/poduid-1", `/kubepods/besteffort/poduid-1/${ID}`],
    ["cgroupfs", "/kubepods/", `/kubepods/${ID}`],
    ["cgroupfs", "kubepods", `/kubepods/${ID}`],
    ["systemd", "", `system.slice:cri-podshim:${ID}`],
    ["systemd", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-poduid_1.slice", `kubepods-besteffort-poduid_1.slice:cri-podshim:${ID}`],
    ["systemd", "kubepods.slice", `kubepods.slice:cri-podshim:${ID}`],
  ] as const)("%s with parent %j -> %s", (driver, parent, want) => {
    expect(cgroupsPath(ID, parent, driver)).toBe(want);
    const spec = buildSandboxSpec(input({ cgroupDriver: driver, config: config({ linux: { cgroupParent: parent } }) }));
    expect(spec.linux.cgroupsPath).toBe(want);
  });

  it("refuses a cgroupfs-style parent under the systemd driver", () => {
    expect(() => cgroupsPath(ID, "/kubepods/besteffort", "systemd")).toThrow(InvalidArgumentError);
  });
});

describe("buildSandboxSpec: oom_score_adj", () => {
  it.each([
    [false, 0, -998],
    [true, 0, 0],
    [true, -999, -998],
    [true, -500, -500],
    [true, 300, 300],
  ])("restrict=%s current=%d -> %d", (restrictOomScoreAdj, currentOomScoreAdj, want) => {
    expect(buildSandboxSpec(input({ restrictOomScoreAdj, currentOomScoreAdj })).process.oomScoreAdj).toBe(want);
  });
});

describe("buildSandboxSpec: host namespaces", () => {
  it("host network: no network or uts namespace, no hostname, no netns needed", () => {
    const spec = buildSandboxSpec(input({ netnsPath: undefined, config: withNs({ network: NamespaceMode.NODE }) }));
    expect(nsTypes(spec)).toEqual(["pid", "ipc", "mount"]);
    expect(spec.hostname).toBeUndefined();
  });

  it("host pid: no pid namespace", () => {
    expect(nsTypes(buildSandboxSpec(input({ config: withNs({ pid: NamespaceMode.NODE }) })))).toEqual(["ipc", "uts", "mount", "network"]);
  });

  it("host ipc: no ipc namespace and the node's /dev/shm bound read-only", () => {
    const spec = buildSandboxSpec(input({ config: withNs({ ipc: NamespaceMode.NODE }), files: { ...FILES, shm: "/ignored/shm" } }));
    expect(nsTypes(spec)).toEqual(["pid", "uts", "mount", "network"]);
    expect(mount(spec, "/dev/shm")).toEqual([
      { destination: "/dev/shm", type: "bind", source: "/dev/shm", options: ["rbind", "ro", "nosuid", "nodev", "noexec"] },
    ]);
  });

  it("all three from the node", () => {
    const spec = buildSandboxSpec(input({ netnsPath: undefined, config: withNs({ network: NamespaceMode.NODE, pid: NamespaceMode.NODE, ipc: NamespaceMode.NODE }) }));
    expect(spec.linux.namespaces).toEqual([{ type: "mount" }]);
  });

  it("CONTAINER and TARGET modes for the sandbox mean the pod's own", () => {
    const spec = buildSandboxSpec(input({ config: withNs({ pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD }) }));
    expect(nsTypes(spec)).toEqual(["pid", "ipc", "uts", "mount", "network"]);
  });

  it("binds a per-sandbox shm when one is given", () => {
    const spec = buildSandboxSpec(input({ files: { ...FILES, shm: "/run/podshim/sandboxes/x/shm" } }));
    expect(mount(spec, "/dev/shm")).toEqual([
      { destination: "/dev/shm", type: "bind", source: "/run/podshim/sandboxes/x/shm", options: ["rbind", "ro", "nosuid", "nodev", "noexec"] },
    ]);
  });

  it("keeps the pause container in the node's cgroup namespace (app containers get their own on v2)", () => {
    expect(nsTypes(buildSandboxSpec(input()))).not.toContain("cgroup");
  });

  it("needs a netns path unless the network is the node's", () => {
    expect(() => buildSandboxSpec(input({ netnsPath: undefined }))).toThrow(InvalidArgumentError);
  });

  it("user namespaces: NODE is the default, POD is not implemented, others are invalid", () => {
    const userns = (mode: NamespaceMode) => config({ linux: { securityContext: { namespaceOptions: { usernsOptions: { mode } } } } });
    expect(nsTypes(buildSandboxSpec(input({ config: userns(NamespaceMode.NODE) })))).not.toContain("user");
    expect(() => buildSandboxSpec(input({ config: userns(NamespaceMode.POD) }))).toThrow(UnimplementedError);
    expect(() => buildSandboxSpec(input({ config: userns(NamespaceMode.CONTAINER) }))).toThrow(InvalidArgumentError);
  });
});

describe("buildSandboxSpec: privileged", () => {
  const spec = buildSandboxSpec(
    input({
      defaultSeccomp: { defaultAction: "SCMP_ACT_ERRNO" },
      config: config({ linux: { securityContext: { privileged: true, seccomp: { profileType: SecurityProfile_ProfileType.RuntimeDefault } } } }),
    }),
  );

  it("mounts sysfs read-write and drops seccomp", () => {
    expect(mount(spec, "/sys")[0]!.options).toEqual(["nosuid", "noexec", "nodev", "rw"]);
    expect(spec.linux.seccomp).toBeUndefined();
  });

  it("otherwise stays the unprivileged pause container, as containerd's does", () => {
    expect(spec.process.capabilities.bounding).toEqual([...DEFAULT_CAPABILITIES]);
    expect(spec.linux.maskedPaths).toEqual([...DEFAULT_MASKED_PATHS]);
    expect(spec.linux.resources.devices).toEqual([{ allow: false, access: "rwm" }]);
  });
});

describe("buildSandboxSpec: sysctls", () => {
  const sysctls = { "kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "100", "net.ipv4.ip_forward": "1" };

  it("passes them through", () => {
    expect(buildSandboxSpec(input({ config: config({ linux: { sysctls } }) })).linux.sysctl).toEqual(sysctls);
  });

  it.each([
    ["net.ipv4.ip_forward", { network: NamespaceMode.NODE }],
    ["net/ipv4/ip_forward", { network: NamespaceMode.NODE }],
    ["kernel.shm_rmid_forced", { ipc: NamespaceMode.NODE }],
    ["kernel.shmmax", { ipc: NamespaceMode.NODE }],
    ["kernel.msgmax", { ipc: NamespaceMode.NODE }],
    ["kernel.sem", { ipc: NamespaceMode.NODE }],
    ["fs.mqueue.msg_max", { ipc: NamespaceMode.NODE }],
  ] as [string, NsModes][])("refuses %s with %j", (key, ns) => {
    const c = withNs(ns, { linux: { sysctls: { [key]: "1" } } });
    expect(() => buildSandboxSpec(input({ config: c, netnsPath: ns.network ? undefined : NETNS }))).toThrow(InvalidArgumentError);
  });

  it.each([
    ["kernel.shm_rmid_forced", { network: NamespaceMode.NODE }],
    ["net.ipv4.ip_forward", { ipc: NamespaceMode.NODE }],
    ["kernel.sem", { pid: NamespaceMode.NODE }],
  ] as [string, NsModes][])("accepts %s with %j", (key, ns) => {
    const c = withNs(ns, { linux: { sysctls: { [key]: "1" } } });
    expect(buildSandboxSpec(input({ config: c, netnsPath: ns.network ? undefined : NETNS })).linux.sysctl).toEqual({ [key]: "1" });
  });

  it("adds the unprivileged port and ICMP sysctls when enabled, without overriding the pod's", () => {
    const on = { unprivilegedPorts: true, unprivilegedIcmp: true };
    expect(buildSandboxSpec(input(on)).linux.sysctl).toEqual({ "net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647" });
    const own = config({ linux: { sysctls: { "net.ipv4.ip_unprivileged_port_start": "1024" } } });
    expect(buildSandboxSpec(input({ ...on, config: own })).linux.sysctl!["net.ipv4.ip_unprivileged_port_start"]).toBe("1024");
    expect(buildSandboxSpec(input({ ...on, netnsPath: undefined, config: withNs({ network: NamespaceMode.NODE }) })).linux.sysctl).toBeUndefined();
  });
});

describe("buildSandboxSpec: user", () => {
  const sc = (securityContext: DeepPartial<SecurityContext>) =>
    config({ linux: { securityContext } });
  const image = (User: string): ImageConfig => ({ ...PAUSE, config: { ...PAUSE.config, User } });

  it.each([
    ["runAsUser", input({ config: sc({ runAsUser: { value: 1000n } }) }), { uid: 1000, gid: 0 }],
    ["runAsUser and runAsGroup", input({ config: sc({ runAsUser: { value: 1000n }, runAsGroup: { value: 3000n } }) }), { uid: 1000, gid: 3000 }],
    ["runAsUser 0", input({ config: sc({ runAsUser: { value: 0n } }), image: image("65535:65535") }), { uid: 0, gid: 0 }],
    ["the image's uid:gid", input({ image: image("65535:65535") }), { uid: 65535, gid: 65535 }],
    ["the image's uid", input({ image: image("65535") }), { uid: 65535, gid: 0 }],
    ["runAsUser over the image", input({ config: sc({ runAsUser: { value: 42n } }), image: image("65535:65535") }), { uid: 42, gid: 0 }],
  ])("%s", (_, i, want) => {
    expect(buildSandboxSpec(i).process.user).toMatchObject(want);
  });

  it("adds supplemental groups sorted and once each", () => {
    const spec = buildSandboxSpec(input({ config: sc({ runAsUser: { value: 1n }, supplementalGroups: [5678n, 1234n, 5678n] }) }));
    expect(spec.process.user.additionalGids).toEqual([1234, 5678]);
  });

  it.each([
    ["runAsGroup without runAsUser", input({ config: sc({ runAsGroup: { value: 3000n } }) })],
    ["a uid out of range", input({ config: sc({ runAsUser: { value: 2n ** 31n } }) })],
    ["a negative uid", input({ config: sc({ runAsUser: { value: -1n } }) })],
    ["an image user name", input({ image: image("nobody") })],
  ])("refuses %s", (_, i) => {
    expect(() => buildSandboxSpec(i)).toThrow(InvalidArgumentError);
  });
});

describe("buildSandboxSpec: image", () => {
  it.each([
    [{ Entrypoint: ["/pause"], Cmd: ["-v"] }, ["/pause", "-v"]],
    [{ Cmd: ["/bin/pause"] }, ["/bin/pause"]],
    [{ Entrypoint: null, Cmd: null }, ["/pause"]],
    [{}, ["/pause"]],
  ])("args from %j", (cfg, want) => {
    expect(buildSandboxSpec(input({ image: { ...PAUSE, config: cfg } })).process.args).toEqual(want);
  });

  it("uses the image's working directory", () => {
    expect(buildSandboxSpec(input({ image: { ...PAUSE, config: { ...PAUSE.config, WorkingDir: "/var" } } })).process.cwd).toBe("/var");
  });
});

describe("buildSandboxSpec: seccomp", () => {
  const profile: LinuxSeccomp = { defaultAction: "SCMP_ACT_ERRNO", architectures: ["SCMP_ARCH_X86_64"], syscalls: [{ names: ["read"], action: "SCMP_ACT_ALLOW" }] };
  const withSeccomp = (seccomp: DeepPartial<NonNullable<SecurityContext["seccomp"]>> | undefined, seccompProfilePath = "") =>
    config({ linux: { securityContext: { ...(seccomp ? { seccomp } : {}), seccompProfilePath } } });

  it.each([
    ["no profile", withSeccomp(undefined), undefined],
    ["RuntimeDefault", withSeccomp({ profileType: SecurityProfile_ProfileType.RuntimeDefault }), profile],
    ["Unconfined", withSeccomp({ profileType: SecurityProfile_ProfileType.Unconfined }), undefined],
    ["Localhost", withSeccomp({ profileType: SecurityProfile_ProfileType.Localhost, localhostRef: "/etc/p.json" }), { defaultAction: "SCMP_ACT_LOG" }],
    ["path runtime/default", withSeccomp(undefined, "runtime/default"), profile],
    ["path docker/default", withSeccomp(undefined, "docker/default"), profile],
    ["path unconfined", withSeccomp(undefined, "unconfined"), undefined],
    ["path localhost/...", withSeccomp(undefined, "localhost//etc/p.json"), { defaultAction: "SCMP_ACT_LOG" }],
  ])("%s", (_, c, want) => {
    const spec = buildSandboxSpec(input({ config: c, defaultSeccomp: profile, localhostSeccomp: { "/etc/p.json": { defaultAction: "SCMP_ACT_LOG" } } }));
    expect(spec.linux.seccomp).toEqual(want);
  });

  it("RuntimeDefault without a default profile stays unconfined", () => {
    expect(buildSandboxSpec(input({ config: withSeccomp({ profileType: SecurityProfile_ProfileType.RuntimeDefault }) })).linux.seccomp).toBeUndefined();
  });

  it.each([
    ["a localhost profile that is not loaded", withSeccomp({ profileType: SecurityProfile_ProfileType.Localhost, localhostRef: "/nope.json" })],
    ["localhostRef with another type", withSeccomp({ profileType: SecurityProfile_ProfileType.RuntimeDefault, localhostRef: "/etc/p.json" })],
    ["a bad profile path", withSeccomp(undefined, "bogus")],
  ])("refuses %s", (_, c) => {
    expect(() => buildSandboxSpec(input({ config: c, defaultSeccomp: profile }))).toThrow(InvalidArgumentError);
  });

  it("hands out a copy of the profile", () => {
    const spec = buildSandboxSpec(input({ config: withSeccomp({ profileType: SecurityProfile_ProfileType.RuntimeDefault }), defaultSeccomp: profile }));
    spec.linux.seccomp!.syscalls!.push({ names: ["write"], action: "SCMP_ACT_ALLOW" });
    expect(profile.syscalls).toHaveLength(1);
  });
});

describe("buildSandboxSpec: annotations", () => {
  const annotations = { "io.katacontainers.config.hypervisor": "qemu", "io.katacontainers.x/y": "no", "other": "x", "io.kubernetes.cri.sandbox-id": "forged" };

  it("copies pod annotations matching the runtime's globs, never over its own", () => {
    const spec = buildSandboxSpec(input({ config: config({ annotations }), podAnnotations: ["io.katacontainers.*", "oth?r"] }));
    expect(spec.annotations["io.katacontainers.config.hypervisor"]).toBe("qemu");
    expect(spec.annotations["other"]).toBe("x");
    expect(spec.annotations["io.katacontainers.x/y"]).toBeUndefined();
    expect(spec.annotations["io.kubernetes.cri.sandbox-id"]).toBe(ID);
  });

  it("supports character classes", () => {
    const spec = buildSandboxSpec(input({ config: config({ annotations: { a1: "1", b1: "2" } }), podAnnotations: ["[a]1"] }));
    expect(spec.annotations["a1"]).toBe("1");
    expect(spec.annotations["b1"]).toBeUndefined();
  });

  it("records the pod's resources for VM runtimes", () => {
    const c = config({ linux: { resources: { cpuPeriod: 100000n, cpuQuota: 50000n, cpuShares: 512n, memoryLimitInBytes: 268435456n } } });
    expect(buildSandboxSpec(input({ config: c })).annotations).toMatchObject({
      "io.kubernetes.cri.sandbox-cpu-period": "100000",
      "io.kubernetes.cri.sandbox-cpu-quota": "50000",
      "io.kubernetes.cri.sandbox-cpu-shares": "512",
      "io.kubernetes.cri.sandbox-memory": "268435456",
    });
  });
});

describe("buildSandboxSpec: inputs it refuses", () => {
  it.each(["", "a/b", "a:b"])("id %j", (id) => {
    expect(() => buildSandboxSpec(input({ id }))).toThrow(InvalidArgumentError);
  });

  it("does not share state between calls", () => {
    const a = buildSandboxSpec(input());
    a.mounts[0]!.options.push("x");
    a.process.capabilities.bounding.push("CAP_SYS_ADMIN");
    const b = buildSandboxSpec(input());
    expect(b.mounts[0]!.options).not.toContain("x");
    expect(b.process.capabilities.bounding).not.toContain("CAP_SYS_ADMIN");
  });
});
