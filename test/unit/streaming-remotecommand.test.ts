import { describe, expect, it } from "vitest";
import { encodeStatus, JsonObjectSplitter, protocolGeneration, toTerminalSize } from "../../src/streaming/remotecommand.js";
import { expectedStreamTypes } from "../../src/streaming/remotecommand-spdy.js";
import { chooseWebSocketProtocol, offeredProtocols, WS_REMOTECOMMAND_PROTOCOLS } from "../../src/streaming/websocket.js";

describe("error stream encoding", () => {
  it("v4+: JSON Status for success, exit codes and failures", () => {
    expect(encodeStatus({ kind: "success" }, 4)!.toString()).toBe('{"metadata":{},"status":"Success"}');
    expect(JSON.parse(encodeStatus({ kind: "exit", exitCode: 42, cmd: ["sh", "-c", "exit 42"] }, 5)!.toString())).toEqual({
      metadata: {},
      status: "Failure",
      message: "command terminated with non-zero exit code: error executing command [sh -c exit 42], exit code 42",
      reason: "NonZeroExitCode",
      details: { causes: [{ reason: "ExitCode", message: "42" }] },
    });
    expect(JSON.parse(encodeStatus({ kind: "error", message: "boom" }, 4)!.toString())).toEqual({
      metadata: {},
      status: "Failure",
      message: "Internal error occurred: boom",
      reason: "InternalError",
      code: 500,
    });
  });

  it("v1-v3: nothing on success, the message as text otherwise", () => {
    for (const gen of [1, 2, 3]) {
      expect(encodeStatus({ kind: "success" }, gen)).toBeUndefined();
      expect(encodeStatus({ kind: "error", message: "boom" }, gen)!.toString()).toBe("Internal error occurred: boom");
    }
  });

  it("knows the generations by name", () => {
    expect(["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io", "", "base64.channel.k8s.io"].map(protocolGeneration)).toEqual([5, 4, 3, 2, 1, 1, 1]);
  });
});

describe("resize stream decoding", () => {
  it("splits objects however the bytes arrive, ignoring noise and broken objects", () => {
    const s = new JsonObjectSplitter();
    expect(s.push('{"Width":1')).toEqual([]);
    expect(s.push('0,"Height":2}\n{"Width":3,"Height":4}')).toEqual([
      { Width: 10, Height: 2 },
      { Width: 3, Height: 4 },
    ]);
    expect(s.push('\n{"Width":"}{",\n"Height":5}x{bad json}{"Width":6,"Height":7}\n')).toEqual([{ Width: "}{", Height: 5 }, { Width: 6, Height: 7 }]);
  });

  it("does not grow without bound on an object that never closes", () => {
    const s = new JsonObjectSplitter();
    s.push("{" + "a".repeat(70 * 1024));
    expect(s.push('{"Width":1,"Height":1}')).toEqual([{ Width: 1, Height: 1 }]);
  });

  it("takes field names in any case and refuses non-sizes", () => {
    expect(toTerminalSize({ WIDTH: 80, height: 25 })).toEqual({ width: 80, height: 25 });
    expect(toTerminalSize({ Width: -1, Height: 2 })).toBeUndefined();
    expect(toTerminalSize({ Width: 70000, Height: 2 })).toBeUndefined();
    expect(toTerminalSize({ Width: "80", Height: 2 })).toBeUndefined();
    expect(toTerminalSize(null)).toBeUndefined();
  });
});

describe("stream and protocol bookkeeping", () => {
  it("expects the streams client-go opens for each request", () => {
    const req = (p: Partial<{ tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }>) => ({
      kind: "exec" as const,
      params: { containerId: "c", cmd: ["x"], tty: false, stdin: false, stdout: false, stderr: false, ...p },
    });
    expect([...expectedStreamTypes(req({ stdout: true, stderr: true }), 4)]).toEqual(["error", "stdout", "stderr"]);
    expect([...expectedStreamTypes(req({ tty: true, stdin: true, stdout: true }), 4)]).toEqual(["error", "stdin", "stdout", "resize"]);
    expect([...expectedStreamTypes(req({ tty: true, stdin: true, stdout: true }), 2)]).toEqual(["error", "stdin", "stdout"]);
  });

  it("picks the client's first supported WebSocket offer", () => {
    expect(offeredProtocols("v5.channel.k8s.io, v4.channel.k8s.io")).toEqual(["v5.channel.k8s.io", "v4.channel.k8s.io"]);
    expect(chooseWebSocketProtocol(["x", "v4.channel.k8s.io", "v5.channel.k8s.io"], WS_REMOTECOMMAND_PROTOCOLS)).toBe("v4.channel.k8s.io");
    expect(chooseWebSocketProtocol([], WS_REMOTECOMMAND_PROTOCOLS)).toBe("");
    expect(chooseWebSocketProtocol(["nope"], WS_REMOTECOMMAND_PROTOCOLS)).toBeUndefined();
  });
});
