// CRI log framing against the rules containerd follows and kubelet's reader expects.
import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/errors/errors.js";
import {
  CriLineSplitter,
  CriLogReassembler,
  criTimestamp,
  DEFAULT_MAX_LINE_SIZE,
  formatCriRecord,
  formatRfc3339Nano,
  nowUnixNanos,
  parseCriLog,
  parseCriLogLine,
  parseRfc3339Nano,
  reassembleCriLog,
} from "../../src/container-logs/cri-log-format.js";
import type { CriStream } from "../../src/container-logs/cri-log-format.js";

const TS = "2026-08-23T10:15:02.123456789Z";

/** Feeds the chunks, then the end of stream; returns all records as one string. */
function frame(chunks: Array<string | Buffer>, opts: { stream?: CriStream; maxLineSize?: number; end?: boolean } = {}): string {
  const s = new CriLineSplitter(opts.stream ?? "stdout", { maxLineSize: opts.maxLineSize, now: () => TS });
  const out: Buffer[] = [];
  for (const c of chunks) out.push(...s.push(typeof c === "string" ? Buffer.from(c, "utf8") : c));
  if (opts.end !== false) out.push(...s.end());
  return Buffer.concat(out).toString("utf8");
}

const rec = (tag: string, content: string, stream = "stdout") => `${TS} ${stream} ${tag} ${content}\n`;

describe("CriLineSplitter", () => {
  it.each<[string, Array<string | Buffer>, string]>([
    ["one line", ["hello world\n"], rec("F", "hello world")],
    ["an empty line keeps the space after the tag", ["\n"], rec("F", "")],
    ["two empty lines", ["\n\n"], rec("F", "") + rec("F", "")],
    ["CRLF is stripped as a unit", ["a\r\nb\n"], rec("F", "a") + rec("F", "b")],
    ["a CR of a CRLF split across chunks", ["abc\r", "\ndef\n"], rec("F", "abc") + rec("F", "def")],
    ["a CR alone in a chunk", ["abc", "\r", "\n"], rec("F", "abc")],
    ["a bare CR inside a line stays", ["a\rb\n"], rec("F", "a\rb")],
    ["a CR at a chunk end that is content", ["a\r", "b\n"], rec("F", "a\rb")],
    ["only the last CR before the LF goes", ["a\r\r\n"], rec("F", "a\r")],
    ["a line over several chunks", ["he", "ll", "o\nwor", "ld\n"], rec("F", "hello") + rec("F", "world")],
    ["no output at all", [], ""],
    ["an empty chunk", ["", "x\n", ""], rec("F", "x")],
    ["an unterminated line at EOF is P", ["done\nhalf"], rec("F", "done") + rec("P", "half")],
    ["a CR at EOF is content", ["half\r"], rec("P", "half\r")],
  ])("%s", (_, chunks, want) => {
    expect(frame(chunks)).toBe(want);
  });

  it("tags stderr records", () => {
    expect(frame(["oops\n"], { stream: "stderr" })).toBe(rec("F", "oops", "stderr"));
  });

  it("holds a line back until it ends, and writes nothing for a pending one without end()", () => {
    const s = new CriLineSplitter("stdout", { now: () => TS });
    expect(s.push(Buffer.from("partial"))).toEqual([]);
    expect(s.pendingBytes).toBe(7);
    expect(Buffer.concat(s.push(Buffer.from(" line\n"))).toString()).toBe(rec("F", "partial line"));
    expect(s.pendingBytes).toBe(0);
    expect(s.end()).toEqual([]);
  });

  const max = DEFAULT_MAX_LINE_SIZE;

  it("writes a line of exactly the limit as one F record", () => {
    const line = "a".repeat(max);
    expect(frame([`${line}\n`])).toBe(rec("F", line));
  });

  it("writes a line of exactly the limit ended by CRLF split across chunks as one F record", () => {
    const line = "a".repeat(max);
    expect(frame([`${line}\r`, "\n"])).toBe(rec("F", line));
  });

  it("splits a line one byte over the limit into P of the limit and F of one byte", () => {
    const line = "b".repeat(max) + "c";
    expect(frame([`${line}\n`])).toBe(rec("P", "b".repeat(max)) + rec("F", "c"));
  });

  it("writes P records as soon as the limit is passed, before the line ends", () => {
    const s = new CriLineSplitter("stdout", { now: () => TS });
    expect(s.push(Buffer.alloc(max, "x"))).toEqual([]);
    const out = s.push(Buffer.from("y"));
    expect(out.map((b) => b.toString())).toEqual([rec("P", "x".repeat(max))]);
    expect(s.pendingBytes).toBe(1);
  });

  it("splits at any configured limit and not at all when it is <= 0", () => {
    expect(frame(["abcdefg\n"], { maxLineSize: 3 })).toBe(rec("P", "abc") + rec("P", "def") + rec("F", "g"));
    expect(frame(["abcdef\n"], { maxLineSize: 3 })).toBe(rec("P", "abc") + rec("F", "def"));
    expect(frame(["abcdefg"], { maxLineSize: 3 })).toBe(rec("P", "abc") + rec("P", "def") + rec("P", "g"));
    const long = "z".repeat(3 * max);
    expect(frame([`${long}\n`], { maxLineSize: 0 })).toBe(rec("F", long));
    expect(frame([`${long}\n`], { maxLineSize: -1 })).toBe(rec("F", long));
  });

  it("reassembles a 40 KiB line cut into odd chunks exactly", () => {
    const line = Buffer.from(Array.from({ length: 40 * 1024 }, (_, i) => 0x21 + (i % 90)));
    const input = Buffer.concat([line, Buffer.from("\r\nnext\n")]);
    const chunks: Buffer[] = [];
    for (let at = 0; at < input.length; at += 4093) chunks.push(input.subarray(at, at + 4093));
    const log = Buffer.from(frame(chunks), "utf8");
    const entries = parseCriLog(log);
    expect(entries.map((e) => [e.tag, e.content.length])).toEqual([
      ["P", max],
      ["P", max],
      ["F", 40 * 1024 - 2 * max],
      ["F", 4],
    ]);
    const msgs = reassembleCriLog(log);
    expect(msgs).toHaveLength(2);
    expect(msgs[0]!.content.equals(line)).toBe(true);
    expect(msgs[0]!.complete).toBe(true);
    expect(msgs[1]!.content.toString()).toBe("next");
  });

  it("never decodes: a multi-byte character split across chunks and across P records survives", () => {
    const text = Buffer.from("héllo wörld ✓ 𝄞 end", "utf8");
    const s = new CriLineSplitter("stdout", { maxLineSize: 5, now: () => TS });
    const records: Buffer[] = [];
    // One byte at a time: every boundary inside every character.
    for (const byte of text) records.push(...s.push(Buffer.from([byte])));
    records.push(...s.push(Buffer.from("\n")), ...s.end());
    const entries = parseCriLog(Buffer.concat(records));
    expect(entries.every((e) => e.content.length <= 5)).toBe(true);
    expect(Buffer.concat(entries.map((e) => e.content)).equals(text)).toBe(true);
    // Some record must have cut a character: its bytes alone are not valid UTF-8.
    expect(entries.some((e) => Buffer.from(e.content.toString("utf8"), "utf8").length !== e.content.length)).toBe(true);
  });

  it("passes bytes that are not UTF-8 through untouched", () => {
    const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x0a]);
    const s = new CriLineSplitter("stdout", { now: () => TS });
    const [record] = s.push(bytes);
    expect(parseCriLogLine(record!).content.equals(bytes.subarray(0, 4))).toBe(true);
  });

  it("does not keep a big read buffer alive for a few pending bytes", () => {
    const s = new CriLineSplitter("stdout", { now: () => TS });
    const chunk = Buffer.alloc(64 * 1024, "a");
    chunk[chunk.length - 4] = 0x0a;
    s.push(chunk);
    const pending = (s as unknown as { pending: Buffer[] }).pending;
    expect(pending).toHaveLength(1);
    expect(pending[0]!.buffer).not.toBe(chunk.buffer);
  });
});

describe("timestamps", () => {
  it.each([
    [0n, "1970-01-01T00:00:00Z"],
    [1_787_480_102_000_000_000n, "2026-08-23T10:15:02Z"],
    [1_787_480_102_100_000_000n, "2026-08-23T10:15:02.1Z"],
    [1_787_480_102_123_400_000n, "2026-08-23T10:15:02.1234Z"],
    [1_787_480_102_123_456_789n, "2026-08-23T10:15:02.123456789Z"],
    [1_787_480_102_000_000_001n, "2026-08-23T10:15:02.000000001Z"],
    [1_787_480_102_010_000_000n, "2026-08-23T10:15:02.01Z"],
  ])("formats %s as Go's RFC3339Nano in UTC", (ns, want) => {
    expect(formatRfc3339Nano(ns)).toBe(want);
    expect(parseRfc3339Nano(want)).toBe(ns);
  });

  it("parses leniently: any fraction length, offsets", () => {
    expect(parseRfc3339Nano("2026-08-23T10:15:02.1234567891234Z")).toBe(1_787_480_102_123_456_789n);
    expect(parseRfc3339Nano("2026-08-23T12:15:02.5+02:00")).toBe(1_787_480_102_500_000_000n);
    expect(parseRfc3339Nano("2026-08-23T05:45:02-04:30")).toBe(1_787_480_102_000_000_000n);
  });

  it.each(["", "2026-08-23 10:15:02Z", "2026-08-23T10:15:02", "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-08-23T24:00:00Z", "2026-08-23T10:60:00Z", "2026-08-23T10:15:02.Z"])(
    "refuses %j",
    (text) => {
      expect(() => parseRfc3339Nano(text)).toThrow(InvalidArgumentError);
    },
  );

  it("criTimestamp is now, in the RFC3339Nano UTC form", () => {
    const before = Date.now();
    const ts = criTimestamp();
    const after = Date.now();
    expect(ts).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d*[1-9])?Z$/);
    const ms = Number(parseRfc3339Nano(ts) / 1_000_000n);
    expect(ms).toBeGreaterThanOrEqual(before - 1);
    expect(ms).toBeLessThanOrEqual(after + 1);
  });

  it("never goes backwards and has sub-millisecond resolution", () => {
    let prev = nowUnixNanos();
    let backwards = 0;
    let subMs = 0;
    for (let i = 0; i < 20_000; i++) {
      const t = nowUnixNanos();
      if (t < prev) backwards++;
      if (t % 1_000_000n !== 0n) subMs++;
      prev = t;
    }
    expect(backwards).toBe(0);
    expect(subMs).toBeGreaterThan(0);
    // Parsed back, consecutive formatted stamps keep their order too.
    const stamps = Array.from({ length: 1000 }, () => criTimestamp());
    const ns = stamps.map(parseRfc3339Nano);
    for (let i = 1; i < ns.length; i++) expect(ns[i]! >= ns[i - 1]!).toBe(true);
  });
});

describe("parseCriLogLine", () => {
  it("reads the four fields, with or without the newline", () => {
    for (const line of [`${TS} stderr F hello world\n`, `${TS} stderr F hello world`]) {
      const e = parseCriLogLine(line);
      expect(e.timestamp).toBe(TS);
      expect(e.timeNs).toBe(1_787_480_102_123_456_789n);
      expect(e.stream).toBe("stderr");
      expect(e.tag).toBe("F");
      expect(e.content.toString()).toBe("hello world");
    }
  });

  it("keeps spaces in the content and reads an empty one", () => {
    expect(parseCriLogLine(`${TS} stdout F  a  b \n`).content.toString()).toBe(" a  b ");
    expect(parseCriLogLine(`${TS} stdout F \n`).content.length).toBe(0);
  });

  it("looks only at the first of several tags", () => {
    expect(parseCriLogLine(`${TS} stdout P:X x`).tag).toBe("P");
  });

  it.each([
    ["no fields", "garbage"],
    ["no content separator", `${TS} stdout F`],
    ["a bad stream", `${TS} stdin F x`],
    ["a bad tag", `${TS} stdout X x`],
    ["a bad timestamp", "yesterday stdout F x"],
    ["Docker JSON", '{"log":"x\\n","stream":"stdout","time":"2026-08-23T10:15:02Z"}'],
  ])("refuses %s", (_, line) => {
    expect(() => parseCriLogLine(line)).toThrow(InvalidArgumentError);
  });

  it("round-trips formatCriRecord", () => {
    const r = formatCriRecord(TS, "stdout", "P", [Buffer.from("ab"), Buffer.from("c")]);
    expect(r.toString()).toBe(`${TS} stdout P abc\n`);
    expect(parseCriLogLine(r).content.toString()).toBe("abc");
  });
});

describe("CriLogReassembler", () => {
  it("joins pieces per stream when stdout and stderr interleave, and reports what is left open", () => {
    const r = new CriLogReassembler();
    const lines = [
      `${TS} stdout P out-1 `,
      `2026-08-23T10:15:03Z stderr P err-1 `,
      `2026-08-23T10:15:04Z stdout F out-2`,
      `2026-08-23T10:15:05Z stderr F err-2`,
      `2026-08-23T10:15:06Z stdout P tail`,
    ];
    const done = lines.map((l) => r.push(parseCriLogLine(l))).filter((m) => m !== undefined);
    expect(done.map((m) => [m.stream, m.timestamp, m.content.toString(), m.complete])).toEqual([
      ["stdout", TS, "out-1 out-2", true],
      ["stderr", "2026-08-23T10:15:03Z", "err-1 err-2", true],
    ]);
    expect(r.flush().map((m) => [m.stream, m.content.toString(), m.complete])).toEqual([["stdout", "tail", false]]);
    expect(r.flush()).toEqual([]);
  });
});
