import { describe, expect, it } from "vitest";
import { Container, ContainerState, ListContainersResponse, RuntimeServiceService, StreamContainersResponse, VersionResponse } from "../../src/gen/cri/runtime/v1/api.js";
import { batchesOf, PreEncoded, repeatedMessageField } from "../../src/rpc/pre-encoded.js";
import { acceptPreEncoded } from "../../src/server/pre-encoded.js";
import { EncodedItems, LastAnswer } from "../../src/cri/encoded-items.js";

const container = (i: number, extra = ""): Container => Container.fromPartial({
  id: `c${i}`, podSandboxId: "p", metadata: { name: `n${i}${extra}`, attempt: 1 }, state: ContainerState.CONTAINER_RUNNING,
  createdAt: 1_700_000_000_000_000_000n + BigInt(i), labels: { a: String(i) }, annotations: { big: "x".repeat(i * 50) },
});

describe("repeatedMessageField", () => {
  it("decodes as the response the items make, whatever their lengths (1- and 2-byte length varints)", () => {
    const items = [0, 1, 2, 5, 40].map((i) => container(i));
    const bytes = repeatedMessageField(1, items.map((c) => Container.encode(c).finish()));
    expect(ListContainersResponse.decode(bytes)).toEqual(ListContainersResponse.fromPartial({ containers: items }));
    expect(Buffer.compare(bytes, Buffer.from(ListContainersResponse.encode({ containers: items }).finish()))).toBe(0);
  });

  it("an empty list is an empty message", () => {
    expect(repeatedMessageField(1, []).length).toBe(0);
    expect(ListContainersResponse.decode(repeatedMessageField(1, []))).toEqual({ containers: [] });
  });

  it("handles items longer than 16 KiB (3-byte length varint)", () => {
    const big = container(400);
    const bytes = repeatedMessageField(1, [Container.encode(big).finish()]);
    expect(StreamContainersResponse.decode(bytes).containers[0]).toEqual(big);
  });
});

describe("batchesOf", () => {
  it("keeps order, bounds each batch, and lets an oversized item travel alone", () => {
    const items = [10, 10, 10, 100, 10].map((n) => new Uint8Array(n));
    const batches = batchesOf(items, 45);
    expect(batches.map((b) => b.map((i) => i.length))).toEqual([[10, 10], [10], [100], [10]]);
    expect(batchesOf([], 45)).toEqual([]);
  });
});

describe("acceptPreEncoded", () => {
  it("passes pre-encoded bytes through and encodes objects as before", () => {
    const def = acceptPreEncoded(RuntimeServiceService);
    const raw = Buffer.from([1, 2, 3]);
    expect(def.version.responseSerialize(new PreEncoded(raw) as never)).toBe(raw);
    const v = VersionResponse.fromPartial({ version: "0.1.0", runtimeName: "podshim" });
    expect(VersionResponse.decode(def.version.responseSerialize(v))).toEqual(v);
    expect(def.version.path).toBe(RuntimeServiceService.version.path);
  });
});

describe("EncodedItems", () => {
  it("encodes a record once per version", () => {
    let calls = 0;
    const items = new EncodedItems<{ state: number }>((r) => {
      calls++;
      return new Uint8Array([r.state]);
    }, (r) => r.state);
    const rec = { state: 1 };
    expect(items.of(rec)).toEqual(new Uint8Array([1]));
    items.of(rec);
    expect(calls).toBe(1);
    rec.state = 2;
    expect(items.of(rec)).toEqual(new Uint8Array([2]));
    expect(calls).toBe(2);
    items.of({ state: 2 });
    expect(calls).toBe(3);
  });
});

describe("LastAnswer", () => {
  it("answers the same bytes for the same items and rebuilds when any item differs", () => {
    const a = new Uint8Array([1]);
    const b = new Uint8Array([2]);
    const last = new LastAnswer(1);
    const first = last.of([a, b]);
    expect(last.of([a, b])).toBe(first);
    const changed = last.of([a, new Uint8Array([2])]);
    expect(changed).not.toBe(first);
    expect(changed).toEqual(first);
    expect(last.of([a])).toEqual(repeatedMessageField(1, [a]));
  });
});
