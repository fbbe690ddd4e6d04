import { describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { status as Status } from "@grpc/grpc-js";
import { RuntimeServiceService } from "../../src/gen/cri/runtime/v1/api.js";
import { implementService } from "../../src/server/boundary.js";
import { createLogger } from "../../src/logger/logger.js";

const quiet = createLogger("error", new Writable({ write: (_c, _e, done) => done() }));

function callUnary(impl: Record<string, unknown>, key: string): Promise<{ code: number; details: string } | null> {
  return new Promise((resolve) => {
    const call = { request: {}, on: () => undefined, getDeadline: () => Infinity };
    (impl[key] as (c: unknown, cb: (err: { code: number; details: string } | null) => void) => void)(call, (err) => resolve(err));
  });
}

describe("implementService", () => {
  it("answers UNIMPLEMENTED naming the RPC for a method without a handler", async () => {
    const impl = implementService(RuntimeServiceService, { unary: {} }, { service: "RuntimeService", logger: quiet, isReady: () => true });
    expect(await callUnary(impl, "version")).toEqual({ code: Status.UNIMPLEMENTED, details: "podshim does not implement RuntimeService/Version yet" });
  });

  it("answers UNAVAILABLE while podshim is not ready", async () => {
    const impl = implementService(RuntimeServiceService, { unary: { Version: async () => ({}) } }, { service: "RuntimeService", logger: quiet, isReady: () => false });
    expect((await callUnary(impl, "version"))?.code).toBe(Status.UNAVAILABLE);
  });
});

describe("the handler's signal", () => {
  // grpc-js emits "cancelled" when any call's stream closes, answered calls too.
  function cancellable() {
    const listeners: Array<() => void> = [];
    return { call: { request: {}, on: (ev: string, fn: () => void) => ev === "cancelled" && listeners.push(fn), getDeadline: () => Infinity }, cancel: () => listeners.forEach((fn) => fn()) };
  }

  it("aborts when the client cancels while the handler runs", async () => {
    let signal: AbortSignal | undefined;
    let release!: () => void;
    const impl = implementService(RuntimeServiceService, {
      unary: { Version: async (_req, ctx) => { signal = ctx.signal; await new Promise<void>((r) => (release = r)); return {}; } },
    }, { service: "RuntimeService", logger: quiet, isReady: () => true });
    const { call, cancel } = cancellable();
    const answered = new Promise((resolve) => (impl.version as (c: unknown, cb: (e: unknown) => void) => void)(call, resolve));
    await new Promise((r) => setImmediate(r));
    cancel();
    expect(signal?.aborted).toBe(true);
    release();
    await answered;
  });

  it("stays quiet when the stream closes after the answer", async () => {
    let signal: AbortSignal | undefined;
    const impl = implementService(RuntimeServiceService, { unary: { Version: async (_req, ctx) => ((signal = ctx.signal), {}) } }, { service: "RuntimeService", logger: quiet, isReady: () => true });
    const { call, cancel } = cancellable();
    await new Promise((resolve) => (impl.version as (c: unknown, cb: (e: unknown) => void) => void)(call, resolve));
    cancel();
    expect(signal?.aborted).toBe(false);
  });
});
