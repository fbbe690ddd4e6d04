// The container service against small fakes of its adapters: create, retries, a failed
// create undone, start, an exit recorded through the transition table, remove.
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { defaultConfig } from "../../src/config/options.js";
import type { Spec } from "../../src/oci/spec-types.js";
import type { Container } from "../../src/containerd/containers.js";
import { TaskStatusCode, type TaskApi } from "../../src/containerd/tasks.js";
import type { ContainerAdapters } from "../../src/container/container-adapters.js";
import { ContainerService } from "../../src/container/container-service.js";
import { ContainerState } from "../../src/container/container-store.js";
import { ContainerConfig, PodSandboxConfig } from "../../src/gen/cri/runtime/v1/api.js";
import type { ImageEntry } from "../../src/image/image-store.js";
import { createLogger } from "../../src/logger/logger.js";
import { SandboxState, type SandboxRecord } from "../../src/sandbox/sandbox-store.js";
import { NotFoundError } from "../../src/errors/errors.js";

const quiet = createLogger("error", new Writable({ write: (_c, _e, done) => done() }));
const base = mkdtempSync(join(tmpdir(), "podshim-container-unit-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

const SANDBOX_ID = "a".repeat(64);

class FakeContainerd {
  records = new Map<string, Container>();
  tasks = new Map<string, { pid: number; status: number }>();
  snapshots = new Set<string>();
  failRecordCreate = false;
  /** The OCI spec each record was created with. */
  specs = new Map<string, Spec>();
  private nextPid = 200;

  adapters(dir: string): ContainerAdapters {
    // The fake's methods are object-literal methods, so `this` inside them is the literal.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const n = this;
    const sandbox: SandboxRecord = {
      id: SANDBOX_ID, nameKey: "web_default_u_0", config: PodSandboxConfig.fromPartial({ metadata: { name: "web", namespace: "default", uid: "u", attempt: 0 } }),
      runtimeHandler: "", createdAt: 1n, netnsPath: "", ips: [], state: SandboxState.Ready, pid: 42, dir,
    };
    const tasks: Partial<TaskApi> = {
      async create(id) {
        n.tasks.set(id, { pid: 0, status: TaskStatusCode.CREATED });
        return 0;
      },
      async start(id) {
        const t = n.tasks.get(id)!;
        t.pid = n.nextPid++;
        t.status = TaskStatusCode.RUNNING;
        return t.pid;
      },
      async get(id) {
        const t = n.tasks.get(id);
        return t ? ({ id, pid: t.pid, status: t.status } as never) : undefined;
      },
      async delete(id) {
        n.tasks.delete(id);
        return undefined;
      },
      async killAndDelete(id) {
        n.tasks.delete(id);
      },
      async undoCreate(id) {
        n.tasks.delete(id);
      },
      async kill(id) {
        const t = n.tasks.get(id);
        if (t) t.status = TaskStatusCode.STOPPED;
      },
      async wait() {
        return { exitStatus: 137, exitedAt: 0n };
      },
    };
    return {
      records: {
        async create(c) {
          if (n.failRecordCreate) throw new Error("containerd refused the record");
          const rec = { id: c.id, labels: c.labels ?? {}, extensions: c.extensions ?? {}, snapshotKey: c.snapshotKey, spec: undefined } as unknown as Container;
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
        async get(id) {
          return n.records.get(id);
        },
        async setSpec() {},
      },
      tasks: tasks as TaskApi,
      snapshots: {
        snapshotter: "overlayfs",
        async prepare(key) {
          n.snapshots.add(key);
          return [{ type: "bind", source: dir, target: "", options: ["rbind"] }];
        },
        async remove(key) {
          n.snapshots.delete(key);
        },
        async mounts() {
          return [{ type: "bind", source: dir, target: "", options: ["rbind"] }];
        },
      },
      withLease: (_purpose, work) => work("lease"),
      images: {
        status(ref: string) {
          return ref === "busybox" ? ({ id: "sha256:img", chainId: "sha256:chain", names: new Set(["docker.io/library/busybox:latest"]), config: { config: { Cmd: ["sh"] } } } as unknown as ImageEntry) : undefined;
        },
      },
      sandboxes: {
        get(id: string) {
          if (!SANDBOX_ID.startsWith(id)) throw new NotFoundError(`pod sandbox "${id}" not found`);
          return sandbox;
        },
        files: () => ({ hostname: join(dir, "hostname"), hosts: join(dir, "hosts"), resolvConf: join(dir, "resolv.conf") }),
        runtimeOf: () => ({ name: "io.containerd.runc.v2" }),
        handlerFeatures: async () => [],
      },
    };
  }
}

let fake: FakeContainerd;
let dir: string;
let svc: ContainerService;
const app = (name: string, attempt = 0) => ContainerConfig.fromPartial({ metadata: { name, attempt }, image: { image: "busybox" }, command: ["sleep", "1000"] });

beforeEach(async () => {
  fake = new FakeContainerd();
  dir = mkdtempSync(join(base, "t-"));
  const config = { ...defaultConfig(), root: join(dir, "root"), state: join(dir, "state"), restrictOomScoreAdj: true };
  svc = new ContainerService({ config, adapters: fake.adapters(dir), logger: quiet });
  await svc.load();
});

afterEach(async () => {
  await svc.stop();
});

describe("ContainerService", () => {
  it("creates a container record on a snapshot of its image, and answers a retry with it", async () => {
    const rec = await svc.create(SANDBOX_ID, app("app"));
    expect(rec.status.state).toBe(ContainerState.Created);
    expect([...fake.records.keys()]).toEqual([rec.id]);
    expect([...fake.snapshots]).toEqual([rec.id]);
    expect((await svc.create(SANDBOX_ID, app("app"))).id).toBe(rec.id);
    expect(fake.records.size).toBe(1);
    expect((await svc.create(SANDBOX_ID, app("app", 1))).id).not.toBe(rec.id);
  });

  it("gives CRI devices the process's uid and gid with device_ownership_from_security_context", async () => {
    const owned = async (on: boolean) => {
      const config = { ...defaultConfig(), root: join(dir, `root-${on}`), state: join(dir, `state-${on}`), restrictOomScoreAdj: true, deviceOwnershipFromSecurityContext: on };
      const s = new ContainerService({ config, adapters: fake.adapters(dir), logger: quiet });
      await s.load();
      try {
        const c = ContainerConfig.fromPartial({
          ...app(`dev-${on}`), devices: [{ containerPath: "/dev/xnull", hostPath: "/dev/null", permissions: "rwm" }],
          linux: { securityContext: { runAsUser: { value: 1000n }, runAsGroup: { value: 2000n } } },
        });
        const rec = await s.create(SANDBOX_ID, c);
        return fake.specs.get(rec.id)!.linux.devices!.find((d) => d.path === "/dev/xnull");
      } finally {
        await s.stop();
      }
    };
    expect(await owned(true)).toMatchObject({ uid: 1000, gid: 2000 });
    expect(await owned(false)).toMatchObject({ uid: 0, gid: 0 });
  });

  it("refuses an image that is not there and a pod that is not, and a failed create leaves nothing", async () => {
    await expect(svc.create(SANDBOX_ID, ContainerConfig.fromPartial({ metadata: { name: "x" }, image: { image: "nginx" } }))).rejects.toThrow('image "nginx" not found');
    await expect(svc.create("f".repeat(64), app("x"))).rejects.toThrow("not found");
    fake.failRecordCreate = true;
    await expect(svc.create(SANDBOX_ID, app("app"))).rejects.toThrow("containerd refused the record");
    expect({ records: fake.records.size, snapshots: fake.snapshots.size, store: svc.store.size }).toEqual({ records: 0, snapshots: 0, store: 0 });
    expect(readdirSync(join(dir, "state", "containers"))).toEqual([]);
  });

  it("starts a created container, records its exit from the event, then removes everything", async () => {
    const rec = await svc.create(SANDBOX_ID, app("app"));
    await svc.start(rec.id);
    expect(svc.get(rec.id).status).toMatchObject({ state: ContainerState.Running, pid: 200 });
    await expect(svc.start(rec.id)).rejects.toThrow("only a created container can be started");
    svc.handleEvent({ kind: "exit", containerId: rec.id, processId: rec.id, exitStatus: 3, exitedAt: 0n });
    // The exit is recorded under the container's lock; a removal queues behind it.
    await svc.remove(rec.id);
    expect(svc.store.size).toBe(0);
    expect({ records: fake.records.size, snapshots: fake.snapshots.size, tasks: fake.tasks.size }).toEqual({ records: 0, snapshots: 0, tasks: 0 });
    expect(existsSync(join(dir, "root", "containers", rec.id))).toBe(false);
  });

  it("ignores the exit of an exec'd process and of an unknown container", async () => {
    const rec = await svc.create(SANDBOX_ID, app("app"));
    await svc.start(rec.id);
    svc.handleEvent({ kind: "exit", containerId: rec.id, processId: "exec-1", exitStatus: 1, exitedAt: 0n });
    svc.handleEvent({ kind: "exit", containerId: "nope", processId: "nope", exitStatus: 1, exitedAt: 0n });
    expect(svc.get(rec.id).status.state).toBe(ContainerState.Running);
  });

  it("recovers what it checkpointed: a restarted service sees the container with its state", async () => {
    const rec = await svc.create(SANDBOX_ID, app("app"));
    await svc.start(rec.id);
    await svc.stop();
    // The same root (records and checkpoints); a state dir of its own, so the first service's
    // FIFO pool refilling in the background cannot race the second's.
    const config = { ...defaultConfig(), root: join(dir, "root"), state: join(dir, "state2"), restrictOomScoreAdj: true };
    // The task exited while nobody watched: recovery reads its end from the (fake) task.
    fake.tasks.get(rec.id)!.status = TaskStatusCode.STOPPED;
    const again = new ContainerService({ config, adapters: fake.adapters(dir), logger: quiet });
    await again.load();
    expect(again.get(rec.id).status.state).toBe(ContainerState.Exited);
    await again.stop();
  });
});
