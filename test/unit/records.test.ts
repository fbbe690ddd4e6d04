import { describe, expect, it } from "vitest";
import { PodSandboxConfig, ContainerConfig, LinuxContainerResources } from "../../src/gen/cri/runtime/v1/api.js";
import { decodeSandboxRecord, encodeSandboxRecord } from "../../src/sandbox/sandbox-record.js";
import { decodeContainerMetadata, decodeContainerStatus, encodeContainerMetadata, encodeContainerStatus } from "../../src/container/container-record.js";
import type { ContainerMetadata, ContainerStatusFields } from "../../src/container/container-store.js";

const config = PodSandboxConfig.fromPartial({
  metadata: { name: "web", namespace: "default", uid: "u-1", attempt: 2 },
  hostname: "web",
  labels: { app: "web" },
  portMappings: [{ containerPort: 80, hostPort: 8080 }],
});

describe("sandbox records", () => {
  it("round-trip in podshim's own schema (v2), the config as its protobuf encoding", () => {
    const any = encodeSandboxRecord({ id: "a".repeat(64), config, runtimeHandler: "", createdAt: 123n, netnsPath: "/run/netns/x", ips: ["10.0.0.2"], complete: true });
    expect(any.typeUrl).toBe("podshim.io/SandboxMetadata/v2");
    const stored = JSON.parse(Buffer.from(any.value).toString());
    expect(stored.version).toBe(2);
    expect(typeof stored.configProto).toBe("string");
    const back = decodeSandboxRecord("a".repeat(64), any);
    expect(back).toEqual({ id: "a".repeat(64), config, runtimeHandler: "", createdAt: 123n, netnsPath: "/run/netns/x", ips: ["10.0.0.2"], complete: true });
  });

  it("still read what an older podshim wrote (v1, CRI JSON), as finished sandboxes", () => {
    const v1 = { id: "b", config: PodSandboxConfig.toJSON(config), runtimeHandler: "", createdAt: "5", netnsPath: "", ips: [] };
    const back = decodeSandboxRecord("b", { typeUrl: "podshim.io/SandboxMetadata/v1", value: Buffer.from(JSON.stringify(v1)) });
    expect(back.config).toEqual(config);
    expect(back.complete).toBe(true);
    expect(back.createdAt).toBe(5n);
  });

  it("refuse a schema they do not know, naming the record and the schema", () => {
    expect(() => decodeSandboxRecord("c", { typeUrl: "podshim.io/SandboxMetadata/v9", value: Buffer.from("{}") })).toThrow(/sandbox c: .*podshim\.io\/SandboxMetadata\/v9.*cannot read/);
    expect(() => decodeSandboxRecord("c", undefined)).toThrow(/sandbox c: .*no io\.podshim\.sandbox\/metadata extension/);
    expect(() => decodeSandboxRecord("c", { typeUrl: "podshim.io/SandboxMetadata/v2", value: Buffer.from("{") })).toThrow(/not valid JSON/);
  });
});

const meta: ContainerMetadata = {
  id: "d".repeat(64), sandboxId: "a".repeat(64), nameKey: "app_web_default_u-1_0",
  config: ContainerConfig.fromPartial({ metadata: { name: "app" }, image: { image: "busybox" }, command: ["sleep", "1"], linux: { resources: { memoryLimitInBytes: 1024 } } }),
  imageRef: "busybox", imageId: "sha256:1", imageName: "docker.io/library/busybox:latest", imageRepoDigest: "", createdAt: 42n,
  logPath: "/var/log/pods/x/app/0.log", user: { uid: 0, gid: 0, additionalGids: [10] }, stopSignal: 15, runtimeHandler: "",
};
const status: ContainerStatusFields = {
  state: "exited", pid: 0, startedAt: 10n, finishedAt: 20n, exitCode: 3, reason: "Error", message: "", oomKilled: false,
  resources: LinuxContainerResources.fromPartial({ cpuShares: 2, memoryLimitInBytes: 1 << 20 }),
};

describe("container records", () => {
  it("round-trip metadata and status in v2", () => {
    const any = encodeContainerMetadata(meta);
    expect(any.typeUrl).toBe("podshim.io/ContainerMetadata/v2");
    expect(decodeContainerMetadata(meta.id, any)).toEqual(meta);
    const saved = JSON.parse(JSON.stringify(encodeContainerStatus(status)));
    expect(saved.version).toBe(2);
    expect(decodeContainerStatus("f", saved)).toEqual(status);
  });

  it("read v1 metadata and status files", () => {
    const { config, createdAt, ...rest } = meta;
    const v1 = { ...rest, config: ContainerConfig.toJSON(config), createdAt: createdAt.toString() };
    expect(decodeContainerMetadata(meta.id, { typeUrl: "podshim.io/ContainerMetadata/v1", value: Buffer.from(JSON.stringify(v1)) })).toEqual(meta);
    const sv1 = { ...status, startedAt: "10", finishedAt: "20", resources: LinuxContainerResources.toJSON(status.resources!) };
    expect(decodeContainerStatus("f", sv1)).toEqual(status);
  });

  it("refuse unknown schemas by name", () => {
    expect(() => decodeContainerMetadata("e", { typeUrl: "podshim.io/ContainerMetadata/v3", value: Buffer.from("{}") })).toThrow(/container e: .*v3/);
    expect(() => decodeContainerStatus("/x/status.json", { version: 7 })).toThrow(/\/x\/status\.json has schema version 7/);
  });
});
