// The stream-cancel contract of the boundary: a server-streaming call whose client cancels
// while the handler waits for `drain` ends (grpc-js never emits drain after a cancel).
import { describe, expect, it } from "vitest";
import { EventEmitter } from "node:events";
import { Writable } from "node:stream";
import { RuntimeServiceService } from "../../src/gen/cri/runtime/v1/api.js";
import { implementService } from "../../src/server/boundary.js";
import { createLogger } from "../../src/logger/logger.js";

const quiet = createLogger("error", new Writable({ write: (_c, _e, done) => done() }));

/** Enough of a grpc-js ServerWritableStream: a full send buffer from the first write on. */
class FakeStream extends EventEmitter {
  request = {};
  writes: unknown[] = [];
  ended = false;
  errors: unknown[] = [];
  constructor() {
    super();
    // The boundary reports a failed stream by emitting "error"; keep it from throwing here.
    this.on("error", (e) => this.errors.push(e));
  }
  write(msg: unknown): boolean {
    this.writes.push(msg);
    return false;
  }
  end(): void {
    this.ended = true;
  }
  getDeadline(): number {
    return Infinity;
  }
}

function settledWithin<T>(p: Promise<T>, ms: number): Promise<{ settled: boolean; value?: T; error?: unknown }> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ settled: false }), ms);
    p.then(
      (value) => { clearTimeout(timer); resolve({ settled: true, value }); },
      (error) => { clearTimeout(timer); resolve({ settled: true, error }); },
    );
  });
}

describe("a server-streaming call", () => {
  it("rejects the handler's send and finishes when the client cancels while it waits for drain", async () => {
    const stream = new FakeStream();
    let firstSend!: Promise<void>;
    let run!: Promise<void>;
    const impl = implementService(RuntimeServiceService, {
      stream: {
        GetContainerEvents: (_req, send) => (run = (async () => {
          firstSend = send({ n: 1 });
          await firstSend;
          // Reached only if the cancel resolved the wait: this write would then hang too.
          await send({ n: 2 });
        })()),
      },
    }, { service: "RuntimeService", logger: quiet, isReady: () => true });
    (impl.getContainerEvents as (c: unknown) => void)(stream);
    expect(stream.writes).toEqual([{ n: 1 }]);
    // Still waiting for drain: nothing settles on its own.
    expect((await settledWithin(firstSend, 50)).settled).toBe(false);

    stream.emit("cancelled");
    const send = await settledWithin(firstSend, 1000);
    expect(send.settled, "send settles after the cancel").toBe(true);
    expect(send.settled && send.error, "send rejects after the cancel").toBeInstanceOf(Error);
    expect((await settledWithin(run, 1000)).settled, "the handler finishes").toBe(true);
    expect(stream.writes).toHaveLength(1);
    // The call itself is finished: ended, or failed with a status nobody listens to any more.
    await new Promise((r) => setImmediate(r));
    expect(stream.ended || stream.errors.length > 0).toBe(true);
  });

  it("rejects a send made after the cancel without writing", async () => {
    const stream = new FakeStream();
    let sendRef!: (m: unknown) => Promise<void>;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const impl = implementService(RuntimeServiceService, {
      stream: {
        GetContainerEvents: async (_req, send) => {
          sendRef = send;
          await gate;
        },
      },
    }, { service: "RuntimeService", logger: quiet, isReady: () => true });
    (impl.getContainerEvents as (c: unknown) => void)(stream);
    stream.emit("cancelled");
    const late = await settledWithin(sendRef({ n: 1 }), 1000);
    release();
    expect(late.settled && late.error).toBeInstanceOf(Error);
    expect(stream.writes).toEqual([]);
  });
});
