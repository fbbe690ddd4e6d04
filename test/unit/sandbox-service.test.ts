// The sandbox service against small fakes of its adapters: what a run makes, what a failure
// undoes, how retries are answered, what recovery makes of the records it finds.
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { defaultConfig } from "../../src/config/options.js";
import type { Container } from "../../src/containerd/containers.js";
import { TaskStatusCode } from "../../src/containerd/tasks.js";
import { ContainerEventHub } from "../../src/lifecycle-events/container-events.js";
import { PodSandboxConfig } from "../../src/gen/cri/runtime/v1/api.js";
import type { ImageEntry } from "../../src/image/image-store.js";
import { createLogger } from "../../src/logger/logger.js";
import type { SandboxAdapters } from "../../src/sandbox/sandbox-adapters.js";
import { encodeSandboxRecord, SANDBOX_RECORD_EXTENSION } from "../../src/sandbox/sandbox-record.js";
import { SandboxService } from "../../src/sandbox/sandbox-service.js";
import { SandboxState } from "../../src/sandbox/sandbox-store.js";
import type { Spec } from "../../src/oci/spec-types.js";
import type { Config } from "../../src/config/options.js";

const quiet = createLogger("error", new Writable({ write: (_c, _e, done) => done() }));
const base = mkdtempSync(join(tmpdir(), "podshim-sandbox-unit-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** A containerd, a netns pinner, a mounter and a CNI that only keep books. */
class FakeNode {
  records = new Map<string, Container>();
  tasks = new Map<string, { pid: number; status: number }>();
  snapshots = new Set<string>();
  netns = new Set<string>();
  mounts = new Set<string>();
  networks = new Set<string>();
  leases = 0;
  failCniAdd = false;
  /** Called when a pause task starts: lets a test make it exit at once. */
  onStart: (id: string) => void = () => undefined;
  /** The OCI spec each record was created with. */
  specs = new Map<string, Spec>();
  private nextPid = 100;

  adapters(): SandboxAdapters {
    // The fake's methods are object-literal methods, so `this` inside them is the literal.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const n = this;
    return {
      records: {
        async create(c) {
          if (n.records.has(c.id)) throw new Error("exists");
          const rec = { id: c.id, labels: c.labels ?? {}, extensions: c.extensions ?? {}, snapshotKey: c.snapshotKey } as unknown as Container;
          n.records.set(c.id, rec);
          n.specs.set(c.id, c.spec as Spec);
          return rec;
        },
        async delete(id) {
          n.records.delete(id);
        },
        async list() {
          return [...n.records.values()];
        },
        async setExtension(id, key, value) {
          const r = n.records.get(id);
          if (r) r.extensions[key] = value;
        },
      },
      tasks: {
        async create(id) {
          n.tasks.set(id, { pid: 0, status: TaskStatusCode.CREATED });
          return 0;
        },
        async start(id) {
          const t = n.tasks.get(id)!;
          t.pid = n.nextPid++;
          t.status = TaskStatusCode.RUNNING;
          n.onStart(id);
          return t.pid;
        },
        async get(id) {
          const t = n.tasks.get(id);
          return t ? ({ id, pid: t.pid, status: t.status } as never) : undefined;
        },
        async killAndDelete(id) {
          n.tasks.delete(id);
        },
        async undoCreate(id) {
          n.tasks.delete(id);
        },
      },
      snapshots: {
        snapshotter: "overlayfs",
        async prepare(key) {
          n.snapshots.add(key);
          return [];
        },
        async remove(key) {
          n.snapshots.delete(key);
        },
      },
      async withLease(_purpose, work) {
        n.leases++;
        try {
          return await work("lease");
        } finally {
          n.leases--;
        }
      },
      netns: {
        pathOf: (name) => `/run/netns/${name}`,
        async create(name) {
          n.netns.add(name);
          return `/run/netns/${name}`;
        },
        async delete(path) {
          n.netns.delete(path.slice("/run/netns/".length));
        },
      },
      mounts: {
        async tmpfs(path) {
          n.mounts.add(path);
        },
        async unmountAndRemove(path) {
          n.mounts.delete(path);
        },
      },
      network: {
        async setUpPod(pod) {
          if (n.failCniAdd) throw new Error("CNI plugin bridge failed (ADD): no IP addresses available");
          n.networks.add(pod.id);
          return { ips: ["10.1.0.5"], result: { cniVersion: "1.0.0" } as never };
        },
        async tearDownPod(id) {
          n.networks.delete(id);
        },
      },
      images: {
        async ensurePauseImage() {
          return { id: "sha256:pause", chainId: "sha256:chain", names: new Set(["pause:3.10"]), config: { config: { Entrypoint: ["/pause"] } } } as unknown as ImageEntry;
        },
      },
    };
  }

  /** What is left outside the index: should be nothing after a failure or a removal. */
  leftovers() {
    return { records: this.records.size, tasks: this.tasks.size, snapshots: this.snapshots.size, netns: this.netns.size, mounts: this.mounts.size, networks: this.networks.size, leases: this.leases };
  }
}

const none = { records: 0, tasks: 0, snapshots: 0, netns: 0, mounts: 0, networks: 0, leases: 0 };
let node: FakeNode;
let dir: string;
let events: ContainerEventHub;
const service = (overrides: Partial<Config> = {}) => {
  const config = { ...defaultConfig(), root: join(dir, "root"), state: join(dir, "state"), restrictOomScoreAdj: true, ...overrides };
  return new SandboxService({ config, adapters: node.adapters(), logger: quiet, lifecycleEvents: events });
};
const pod = (name: string, attempt = 0) =>
  PodSandboxConfig.fromPartial({ metadata: { name, namespace: "default", uid: `uid-${name}`, attempt }, linux: {} });

beforeEach(() => {
  node = new FakeNode();
  dir = mkdtempSync(join(base, "t-"));
  events = new ContainerEventHub();
});

describe("SandboxService.run", () => {
  it("makes a ready sandbox: netns, shm, network, record, running pause, files", async () => {
    const svc = service();
    const rec = await svc.run(pod("web"), "");
    expect(rec).toMatchObject({ state: SandboxState.Ready, ips: ["10.1.0.5"], creating: false });
    expect(node.leftovers()).toMatchObject({ records: 1, tasks: 1, snapshots: 1, netns: 1, mounts: 1, networks: 1, leases: 0 });
    expect(readdirSync(join(dir, "root", "sandboxes", rec.id)).sort()).toEqual(["hostname", "hosts", "intent.json", "resolv.conf"]);
    expect(svc.list().map((r) => r.id)).toEqual([rec.id]);
  });

  it("puts the configured knobs into the pause spec: unprivileged ports and ICMP, the handler's pod annotations", async () => {
    const runtimes = { ...defaultConfig().runtimes, kata: { runtimeType: "io.containerd.runc.v2", podAnnotations: ["io.katacontainers.*"], options: {} } };
    const svc = service({ enableUnprivilegedPorts: true, enableUnprivilegedIcmp: true, runtimes });
    const config = PodSandboxConfig.fromPartial({ ...pod("web"), annotations: { "io.katacontainers.config": "x", other: "y" } });
    const rec = await svc.run(config, "kata");
    const spec = node.specs.get(rec.id)!;
    expect(spec.linux.sysctl).toMatchObject({ "net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647" });
    expect(spec.annotations).toMatchObject({ "io.katacontainers.config": "x" });
    expect(spec.annotations).not.toHaveProperty("other");
    const plain = node.specs.get((await service().run(pod("db"), "")).id)!;
    expect(plain.linux.sysctl ?? {}).not.toHaveProperty("net.ipv4.ip_unprivileged_port_start");
  });

  it("answers a retry with the same identity with the same sandbox, whether it is under way or ready", async () => {
    const svc = service();
    const [a, b] = await Promise.all([svc.run(pod("web"), ""), svc.run(pod("web"), "")]);
    expect(b.id).toBe(a.id);
    expect((await svc.run(pod("web"), "")).id).toBe(a.id);
    expect(node.records.size).toBe(1);
    // A new attempt is a new sandbox.
    expect((await svc.run(pod("web", 1), "")).id).not.toBe(a.id);
  });

  it("refuses the identity of a sandbox that is not ready any more", async () => {
    const svc = service();
    const a = await svc.run(pod("web"), "");
    await svc.stopSandbox(a.id);
    await expect(svc.run(pod("web"), "")).rejects.toThrow(`already reserved for pod sandbox ${a.id}`);
  });

  it("undoes every step when CNI ADD fails, and the identity is free again", async () => {
    node.failCniAdd = true;
    const svc = service();
    await expect(svc.run(pod("web"), "")).rejects.toThrow("no IP addresses available");
    expect(node.leftovers()).toEqual(none);
    expect(readdirSync(join(dir, "root", "sandboxes"))).toEqual([]);
    expect(svc.store.size).toBe(0);
    node.failCniAdd = false;
    expect((await svc.run(pod("web"), "")).state).toBe(SandboxState.Ready);
  });

  it("fails and undoes a run whose pause exits while it starts, instead of reporting it ready", async () => {
    const svc = service();
    node.onStart = (id) => svc.handleEvent({ kind: "exit", containerId: id, processId: id, exitStatus: 1, exitedAt: 1n });
    await expect(svc.run(pod("web"), "")).rejects.toThrow("exited while the sandbox was being started");
    expect(node.leftovers()).toEqual(none);
    expect(svc.list()).toEqual([]);
  });

  it("keeps a sandbox being created out of lists and lookups until it is ready", async () => {
    const svc = service();
    let seenWhileCreating: unknown[] = ["unset"];
    node.onStart = () => (seenWhileCreating = svc.list());
    const rec = await svc.run(pod("web"), "");
    expect(seenWhileCreating).toEqual([]);
    expect(svc.get(rec.id).id).toBe(rec.id);
  });
});

describe("SandboxService stop and remove", () => {
  it("stop releases the network, netns, shm and pause; remove the rest; both are idempotent", async () => {
    const svc = service();
    const rec = await svc.run(pod("web"), "");
    await svc.stopSandbox(rec.id);
    await svc.stopSandbox(rec.id);
    expect(svc.get(rec.id)).toMatchObject({ state: SandboxState.NotReady, netnsPath: "" });
    expect(node.leftovers()).toMatchObject({ tasks: 0, netns: 0, mounts: 0, networks: 0, records: 1, snapshots: 1 });
    await svc.remove(rec.id);
    await svc.remove(rec.id);
    expect(node.leftovers()).toEqual(none);
    expect(existsSync(join(dir, "root", "sandboxes", rec.id))).toBe(false);
  });
});

describe("SandboxService.load", () => {
  const recordOf = (id: string, complete: boolean): Container => ({
    id,
    labels: { "io.podshim.kind": "sandbox" },
    extensions: { [SANDBOX_RECORD_EXTENSION]: encodeSandboxRecord({ id, config: pod(id), runtimeHandler: "", createdAt: 1n, netnsPath: "/run/netns/x", ips: ["10.1.0.9"], complete }) },
  }) as unknown as Container;

  it("reports a finished sandbox with a running pause READY, and one whose run never finished NOTREADY", async () => {
    node.records.set("a", recordOf("a", true));
    node.records.set("b", recordOf("b", false));
    node.tasks.set("a", { pid: 7, status: TaskStatusCode.RUNNING });
    node.tasks.set("b", { pid: 8, status: TaskStatusCode.RUNNING });
    const svc = service();
    await svc.load();
    expect(svc.get("a")).toMatchObject({ state: SandboxState.Ready, pid: 7, ips: ["10.1.0.9"] });
    expect(svc.get("b")).toMatchObject({ state: SandboxState.NotReady, pid: 0 });
  });

  it("fails the whole load on a record it cannot read, naming it, instead of dropping it", async () => {
    node.records.set("c", { id: "c", labels: {}, extensions: { [SANDBOX_RECORD_EXTENSION]: { typeUrl: "podshim.io/SandboxMetadata/v99", value: Buffer.from("{}") } } } as unknown as Container);
    const svc = service();
    await expect(svc.load()).rejects.toThrow(/sandbox c: .*v99/);
    expect(svc.store.size).toBe(0);
  });
});
