import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/errors/errors.js";
import { withValidation, validateRequest } from "../../src/cri/validate.js";
import { ContainerConfig, NamespaceMode, PodSandboxConfig, RunPodSandboxRequest, CreateContainerRequest, UpdateContainerResourcesRequest } from "../../src/gen/cri/runtime/v1/api.js";

const pod = (over: Record<string, unknown> = {}, linux?: Record<string, unknown>) => RunPodSandboxRequest.fromPartial({
  config: PodSandboxConfig.fromPartial({ metadata: { name: "web", namespace: "default", uid: "8a1c-uid", attempt: 0 }, logDirectory: "/var/log/pods/x", ...over, ...(linux ? { linux } : {}) }),
});
const ctr = (over: Record<string, unknown> = {}) => CreateContainerRequest.fromPartial({
  podSandboxId: "abc", config: ContainerConfig.fromPartial({ metadata: { name: "app" }, image: { image: "busybox" }, logPath: "app/0.log", ...over }),
});
const refuses = (rpc: string, req: unknown, message: RegExp) => {
  expect(() => validateRequest(rpc, req)).toThrow(InvalidArgumentError);
  expect(() => validateRequest(rpc, req)).toThrow(message);
};

describe("validateRequest", () => {
  it("accepts what the kubelet sends", () => {
    validateRequest("RunPodSandbox", pod({ hostname: "web-0", dnsConfig: { servers: ["10.96.0.10", "fd00::a"], searches: ["default.svc.cluster.local"], options: ["ndots:5"] } },
      { sysctls: { "net.ipv4.ip_unprivileged_port_start": "0", "kernel.shm_rmid_forced": "1", "net.ipv4.conf.eth0/1.forwarding": "1" }, resources: { cpuShares: 2n, memoryLimitInBytes: 0n } }));
    validateRequest("CreateContainer", ctr({ envs: [{ key: "A", value: "x=y" }], mounts: [{ containerPath: "/data", hostPath: "/var/lib/kubelet/pods/x/volumes/a" }], linux: { resources: { cpuShares: 1024n, cpuQuota: 50_000n, cpuPeriod: 100_000n, memoryLimitInBytes: 1n << 30n, oomScoreAdj: 1000n, unified: { "memory.high": "max" } } } }));
    validateRequest("Version", { version: "" });
    // critest's container names are a prefix and a UUID: longer than a DNS label's 63.
    validateRequest("CreateContainer", ctr({ metadata: { name: "container-for-execSync-test-0b3c6f2e-8a53-4a8e-9d3f-5c3a1f0e7b21" } }));
  });

  it.each([
    ["a NUL in the pod name", pod({ metadata: { name: "we\0b", namespace: "default", uid: "u" } }), /metadata.name contains a NUL/],
    ["a NUL deep in an annotation", pod({ annotations: { a: "x\0" } }), /annotations.a contains a NUL/],
    ["a pod name that is not a DNS subdomain", pod({ metadata: { name: "a/b", namespace: "default", uid: "u" } }), /DNS subdomain/],
    ["a 70 KB name", pod({ metadata: { name: "a".repeat(70_000), namespace: "default", uid: "u" } }), /DNS subdomain/],
    ["a namespace with a dot", pod({ metadata: { name: "a", namespace: "a.b", uid: "u" } }), /DNS label/],
    ["an empty uid", pod({ metadata: { name: "a", namespace: "b", uid: "" } }), /uid is required/],
    ["a 65-character hostname", pod({ hostname: "h".repeat(65) }), /hostname/],
    ["a relative log directory", pod({ logDirectory: "var/log" }), /absolute/],
    ["a log directory with ..", pod({ logDirectory: "/var/log/../../etc" }), /'\.\.'/],
    ["a DNS server that is no IP", pod({ dnsConfig: { servers: ["8.8.8.8\nnameserver 1.1.1.1"] } }), /not an IP/],
    ["a port out of range", pod({ portMappings: [{ containerPort: 70000, hostPort: 0 }] }), /container_port 70000/],
    ["a bad host IP", pod({ portMappings: [{ containerPort: 80, hostPort: 80, hostIp: "999.1.1.1" }] }), /host_ip/],
  ])("refuses %s in RunPodSandbox", (_, req, message) => refuses("RunPodSandbox", req, message));

  it.each([
    ["a sysctl that is a path", { "../../../../etc": "1" }, {}, /not a sysctl name/],
    ["a node-wide sysctl", { "kernel.panic": "1" }, {}, /kernel.panic is not namespaced/],
    ["a net sysctl with host network", { "net.core.somaxconn": "1" }, { namespaceOptions: { network: NamespaceMode.NODE } }, /host networking/],
    ["an ipc sysctl with host IPC", { "kernel.msgmax": "1" }, { namespaceOptions: { ipc: NamespaceMode.NODE } }, /host IPC/],
  ])("refuses %s", (_, sysctls, securityContext, message) => refuses("RunPodSandbox", pod({}, { sysctls, securityContext }), message));

  it.each([
    ["a container name with capital spaces", ctr({ metadata: { name: "my app" } }), /letters, digits and '-'/],
    ["a container name of 254 characters", ctr({ metadata: { name: "a".repeat(254) } }), /at most 253/],
    ["an absolute log path", ctr({ logPath: "/etc/shadow" }), /log_path/],
    ["a log path with ..", ctr({ logPath: "../../x.log" }), /log_path/],
    ["an env key with =", ctr({ envs: [{ key: "A=B", value: "" }] }), /envs\[0\]/],
    ["a NUL in an argument", ctr({ args: ["a\0b"] }), /args\[0\] contains a NUL/],
    ["a relative mount target", ctr({ mounts: [{ containerPath: "data", hostPath: "/x" }] }), /container_path/],
    ["a bad device permission", ctr({ devices: [{ containerPath: "/dev/x", hostPath: "/dev/null", permissions: "rwx" }] }), /permissions/],
    ["negative cpu shares", ctr({ linux: { resources: { cpuShares: -5n } } }), /cpu_shares -5/],
    ["huge memory", ctr({ linux: { resources: { memoryLimitInBytes: 1n << 63n } } }), /memory_limit_in_bytes/],
    ["oom_score_adj past 1000", ctr({ linux: { resources: { oomScoreAdj: 5000n } } }), /oom_score_adj/],
    ["a unified key that is a path", ctr({ linux: { resources: { unified: { "../../cgroup.procs": "1" } } } }), /unified key/],
    ["a bad capability", ctr({ linux: { securityContext: { capabilities: { addCapabilities: ["SYS_ADMIN; rm -rf /"] } } } }), /capability/],
    ["a uid past 2^32", ctr({ linux: { securityContext: { runAsUser: { value: 1n << 33n } } } }), /run_as_user/],
  ])("refuses %s in CreateContainer", (_, req, message) => refuses("CreateContainer", req, message));

  it("checks the resources of UpdateContainerResources", () => {
    refuses("UpdateContainerResources", UpdateContainerResourcesRequest.fromPartial({ containerId: "c", linux: { cpuPeriod: 5n } }), /cpu_period/);
  });

  it("refuses an empty or huge id", () => {
    refuses("StartContainer", { containerId: "" }, /required/);
    refuses("StartContainer", { containerId: "a".repeat(70_000) }, /at most 256/);
  });

  it("withValidation runs the check before the handler", async () => {
    let ran = false;
    const h = withValidation({ unary: { StartContainer: async () => { ran = true; return {}; } }, stream: {} });
    await expect(h.unary!.StartContainer!({ containerId: "x\0" } as never, {} as never)).rejects.toThrow(InvalidArgumentError);
    expect(ran).toBe(false);
    await h.unary!.StartContainer!({ containerId: "x" } as never, {} as never);
    expect(ran).toBe(true);
  });
});
