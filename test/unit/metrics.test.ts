// The metrics seams without a daemon: the boundary's observer, the event hub's drop count, the
// state gauges' collect callbacks, and the containerd interceptor on a real grpc-js channel.
import { afterAll, describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { Server, ServerCredentials, status as Status } from "@grpc/grpc-js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RuntimeServiceService } from "../../src/gen/cri/runtime/v1/api.js";
import { VersionService } from "../../src/gen/containerd/services/version/v1/version.js";
import { implementService } from "../../src/server/boundary.js";
import type { UnaryMethod } from "../../src/server/grpc-server.js";
import { createLogger } from "../../src/logger/logger.js";
import { ContainerEventHub, LifecycleEvent, MAX_PENDING_EVENTS } from "../../src/lifecycle-events/container-events.js";
import { registry, setStateSource } from "../../src/metrics/metrics.js";
import { containerdMetricsInterceptor, observeContainerdUnaryCall, splitPath } from "../../src/metrics/containerd-interceptor.js";
import { ContainerdClient } from "../../src/containerd/client.js";

const quiet = createLogger("silent", new Writable({ write: (_c, _e, done) => done() }));

async function value(name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = registry.getSingleMetric(name);
  const data = await metric?.get();
  return data?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l) && ((v as { metricName?: string }).metricName ?? name) === name)?.value;
}

describe("CRI boundary observer", () => {
  it("is told each call's method, code and duration, refusals included", async () => {
    const seen: Array<[string, string]> = [];
    const impl = implementService(RuntimeServiceService, { unary: { Version: async () => ({}) } }, {
      service: "RuntimeService", logger: quiet, isReady: () => true, observe: (rpc, code) => seen.push([rpc, code]),
    });
    const call = (key: string) => (impl[key] as UnaryMethod)({ request: {}, signal: new AbortController().signal, deadline: undefined }).catch(() => undefined);
    await call("version");
    await call("status");
    expect(seen).toEqual([["RuntimeService/Version", "OK"], ["RuntimeService/Status", "UNIMPLEMENTED"]]);
  });
});

describe("event hub", () => {
  it("counts the events a cut-off subscriber did not get", async () => {
    const hub = new ContainerEventHub();
    const before = (await value("podshim_events_dropped_total")) ?? 0;
    const abort = new AbortController();
    const sub = hub.subscribe(abort.signal);
    const first = sub.next();
    hub.publish("c", "s", LifecycleEvent.Created);
    await first;
    for (let i = 0; i < MAX_PENDING_EVENTS + 5; i++) hub.publish("c", "s", LifecycleEvent.Started);
    await expect(sub.next()).rejects.toThrow(/fell 1024 events behind/);
    expect(((await value("podshim_events_dropped_total")) ?? 0) - before).toBe(MAX_PENDING_EVENTS + 5);
    abort.abort();
  });
});

describe("state gauges", () => {
  afterAll(() => setStateSource(undefined));
  it("count sandboxes and containers by state when scraped", async () => {
    setStateSource({ sandboxStates: () => ["ready", "ready", "notready"], containerStates: () => ["running"], eventSubscribers: () => 3 });
    expect(await value("podshim_sandboxes", { state: "ready" })).toBe(2);
    expect(await value("podshim_sandboxes", { state: "notready" })).toBe(1);
    expect(await value("podshim_containers", { state: "exited" })).toBe(0);
    expect(await value("podshim_events_subscribers")).toBe(3);
  });
});

describe("containerd interceptor", () => {
  const dir = mkdtempSync(join(tmpdir(), "podshim-metrics-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("splits method paths into service and method", () => {
    expect(splitPath("/containerd.services.tasks.v1.Tasks/Start")).toEqual(["Tasks", "Start"]);
  });

  it("times calls by service, method and code on a real channel", async () => {
    const server = new Server();
    server.addService(VersionService, {
      version: (_call: unknown, cb: (err: { code: number; details: string }) => void) => cb({ code: Status.UNAVAILABLE, details: "down" }),
    });
    const socket = join(dir, "c.sock");
    await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socket}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    const client = new ContainerdClient({ socket, namespace: "x", logger: quiet, interceptors: [containerdMetricsInterceptor], observe: observeContainerdUnaryCall });
    try {
      await expect(client.call(VersionService.version, {}, { namespace: null })).rejects.toThrow();
      expect(await value("podshim_containerd_requests_total", { service: "Version", method: "Version", code: "UNAVAILABLE" })).toBe(1);
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});
