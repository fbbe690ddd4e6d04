// gRPC health's Watch on podshim's server: the status now, each change (polled each second),
// SERVICE_UNKNOWN for a name it does not know, and an end when the call is cancelled or the
// server closes for shutdown.
import { describe, expect, it } from "vitest";
import { HealthServer } from "../../src/server/health.js";
import type { StreamMethod, UnaryMethod } from "../../src/server/grpc-server.js";
import { HealthCheckResponse_ServingStatus as ServingStatus } from "../../src/gen/grpc/health/v1/health.js";

function watch(server: HealthServer, service: string) {
  const controller = new AbortController();
  const sent: number[] = [];
  const run = (server.binding().implementation.watch as StreamMethod)(
    { request: { service }, signal: controller.signal, deadline: undefined },
    async (m) => void sent.push((m as { status: number }).status),
  );
  return { sent, run, cancel: () => controller.abort() };
}

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 10));
}

describe("HealthServer", () => {
  it("Check answers the status, NOT_FOUND for an unknown service", async () => {
    const check = new HealthServer(async () => true).binding().implementation.check as UnaryMethod;
    const call = (service: string) => check({ request: { service }, signal: new AbortController().signal, deadline: undefined });
    expect(await call("runtime.v1.RuntimeService")).toEqual({ status: ServingStatus.SERVING });
    await expect(call("x.Y")).rejects.toMatchObject({ code: 5 });
  });

  it("Watch sends the status, then its change, and ends when cancelled", async () => {
    let serving = true;
    const server = new HealthServer(async () => serving);
    const w = watch(server, "");
    await until(() => w.sent.length === 1);
    serving = false;
    await until(() => w.sent.length === 2);
    expect(w.sent).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    w.cancel();
    await w.run;
  });

  it("Watch says SERVICE_UNKNOWN for an unknown name, and every Watch ends when the server closes", async () => {
    const server = new HealthServer(async () => true);
    const a = watch(server, "no.such.Service");
    const b = watch(server, "runtime.v1.ImageService");
    await until(() => a.sent.length === 1 && b.sent.length === 1);
    expect(a.sent).toEqual([ServingStatus.SERVICE_UNKNOWN]);
    server.close();
    await Promise.all([a.run, b.run]);
  });
});
