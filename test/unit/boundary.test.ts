import { describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { status as Status } from "@grpc/grpc-js";
import { RuntimeServiceService } from "../../src/gen/cri/runtime/v1/api.js";
import { implementService } from "../../src/server/boundary.js";
import type { ServerCall, UnaryMethod } from "../../src/server/grpc-server.js";
import type { RpcContext } from "../../src/rpc/handlers.js";
import { NotFoundError } from "../../src/errors/errors.js";
import { createLogger } from "../../src/logger/logger.js";

const quiet = createLogger("error", new Writable({ write: (_c, _e, done) => done() }));

function call(over: Partial<ServerCall> = {}): ServerCall {
  return { request: {}, signal: new AbortController().signal, deadline: undefined, ...over };
}

describe("implementService", () => {
  it("answers UNIMPLEMENTED naming the RPC for a method without a handler", async () => {
    const impl = implementService(RuntimeServiceService, { unary: {} }, { service: "RuntimeService", logger: quiet, isReady: () => true });
    await expect((impl.version as UnaryMethod)(call())).rejects.toEqual({ code: Status.UNIMPLEMENTED, details: "podshim does not implement RuntimeService/Version yet" });
  });

  it("answers UNAVAILABLE while podshim is not ready", async () => {
    const impl = implementService(RuntimeServiceService, { unary: { Version: async () => ({}) } }, { service: "RuntimeService", logger: quiet, isReady: () => false });
    await expect((impl.version as UnaryMethod)(call())).rejects.toMatchObject({ code: Status.UNAVAILABLE });
  });

  it("answers a typed error with its code and message, and anything else as INTERNAL", async () => {
    const impl = implementService(RuntimeServiceService, {
      unary: { Version: async () => { throw new NotFoundError("pod \"x\" not found"); }, Status: async () => { throw new TypeError("oops"); } },
    }, { service: "RuntimeService", logger: quiet, isReady: () => true });
    await expect((impl.version as UnaryMethod)(call())).rejects.toEqual({ code: Status.NOT_FOUND, details: 'pod "x" not found' });
    await expect((impl.status as UnaryMethod)(call())).rejects.toEqual({ code: Status.INTERNAL, details: "internal error: oops" });
  });
});

describe("the handler's context", () => {
  it("carries the call's signal and deadline", async () => {
    const controller = new AbortController();
    let ctx: RpcContext | undefined;
    const impl = implementService(RuntimeServiceService, { unary: { Version: async (_req, c) => ((ctx = c), {}) } }, { service: "RuntimeService", logger: quiet, isReady: () => true });
    await (impl.version as UnaryMethod)(call({ signal: controller.signal, deadline: 1234 }));
    expect(ctx?.signal).toBe(controller.signal);
    expect(ctx?.deadline).toBe(1234);
    await (impl.version as UnaryMethod)(call());
    expect(ctx?.deadline).toBeUndefined();
  });
});
