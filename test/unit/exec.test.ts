// runProgram: programs are started by the spawner process; what callers see is unchanged,
// whichever helper starts them (the C one from dist/spawner, or the Node fallback).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CanceledError, DeadlineExceededError, InternalError } from "../../src/errors/errors.js";
import { defaultEnv, runProgram, spawnerForTests, type SpawnerKind } from "../../src/util/exec.js";

/** A process that is neither gone nor a zombie. */
function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

/** Polls cond every 10 ms until it holds (the test's own timeout bounds the wait). */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 10));
}

/** The helper's child processes, each with its state letter from /proc/<pid>/stat. */
function childrenOf(pid: number): { pid: number; state: string }[] {
  const list = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
  if (list === "") return [];
  return list.split(/\s+/).map((c) => {
    try {
      const stat = readFileSync(`/proc/${c}/stat`, "utf8");
      // The state follows the command name, which is in parentheses and may hold spaces.
      return { pid: Number(c), state: stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0] ?? "?" };
    } catch {
      return { pid: Number(c), state: "gone" };
    }
  });
}

// The build puts it here; `npm run build` runs before the tests in CI, so it is skipped only
// in a tree that was never built (or built without gcc).
const nativeBuilt = existsSync(spawnerForTests.nativePath);
const builtExec = new URL("../../dist/util/exec.js", import.meta.url);
const MAX_OUTPUT = 4 * 1024 * 1024; // exec.ts's cap on each of stdout and stderr

describe.each<{ kind: SpawnerKind }>([{ kind: "native" }, { kind: "node" }])("runProgram ($kind spawner)", ({ kind }) => {
  beforeAll(() => {
    if (kind === "native" && !nativeBuilt) return;
    spawnerForTests.use(kind);
  });
  afterAll(() => spawnerForTests.use(undefined));
  const test = it.skipIf(kind === "native" && !nativeBuilt);

  test("uses the helper asked for", async () => {
    await runProgram("true", [], { timeoutMs: 10_000, what: "true" });
    expect(spawnerForTests.kind()).toBe(kind);
  });

  test("feeds stdin and returns stdout, stderr and the exit code", async () => {
    const res = await runProgram("sh", ["-c", "cat; echo oops >&2; exit 3"], { input: "hello", timeoutMs: 10_000, what: "sh" });
    expect(res).toEqual({ code: 3, signal: null, stdout: "hello", stderr: "oops\n" });
  });

  test("stdin is /dev/null without input, and the program gets the env it was given", async () => {
    const res = await runProgram("sh", ["-c", 'cat; echo "$PODSHIM_X"; readlink /proc/self/fd/0'], {
      env: { ...defaultEnv(), PODSHIM_X: "y z" },
      timeoutMs: 10_000,
      what: "sh",
    });
    expect(res).toEqual({ code: 0, signal: null, stdout: "y z\n/dev/null\n", stderr: "" });
  });

  test("looks the program up on the PATH of the env it was given", async () => {
    const dir = mkdtempSync(join(tmpdir(), "podshim-exec-"));
    try {
      writeFileSync(join(dir, "podshim-exec-probe"), "#!/bin/sh\necho probe \"$@\"\n");
      chmodSync(join(dir, "podshim-exec-probe"), 0o755);
      const env = { ...defaultEnv(), PATH: `${dir}:${defaultEnv().PATH}` };
      const res = await runProgram("podshim-exec-probe", ["a b", "c"], { env, timeoutMs: 10_000, what: "probe" });
      expect(res.stdout).toBe("probe a b c\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("runs in a session and process group of its own", async () => {
    const res = await runProgram("sh", ["-c", "cat /proc/$$/stat"], { timeoutMs: 10_000, what: "sh" });
    // pid (comm) state ppid pgrp session ...
    const [pid, rest] = [res.stdout.split(" ")[0], res.stdout.slice(res.stdout.lastIndexOf(")") + 2).split(" ")];
    expect({ pgrp: rest[2], session: rest[3] }).toEqual({ pgrp: pid, session: pid });
  });

  test("a program killed by a signal reports its name", async () => {
    const res = await runProgram("sh", ["-c", "kill -TERM $$"], { timeoutMs: 10_000, what: "sh" });
    expect(res).toMatchObject({ code: null, signal: "SIGTERM" });
  });

  test("a program that cannot start is an InternalError naming it", async () => {
    const err = await runProgram("podshim-no-such-program", [], { timeoutMs: 10_000, what: "x" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InternalError);
    expect((err as Error).message).toContain("podshim-no-such-program");
    expect((err as Error).message).toContain("ENOENT");
  });

  test("runs programs side by side: one waits for what a later one does", async () => {
    const dir = mkdtempSync(join(tmpdir(), "podshim-exec-"));
    try {
      const flag = join(dir, "flag");
      const waiter = runProgram("sh", ["-c", 'while [ ! -e "$0" ]; do sleep 0.01; done; echo seen', flag], { timeoutMs: 30_000, what: "waiter" });
      const setter = runProgram("touch", [flag], { timeoutMs: 30_000, what: "touch" });
      expect((await setter).code).toBe(0);
      expect((await waiter).stdout).toBe("seen\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("answers many programs at once, each with its own output", async () => {
    const runs = Array.from({ length: 50 }, (_, i) => runProgram("sh", ["-c", 'echo "$0"; echo "e$0" >&2', String(i)], { timeoutMs: 30_000, what: `sh ${i}` }));
    const results = await Promise.all(runs);
    results.forEach((res, i) => expect(res).toEqual({ code: 0, signal: null, stdout: `${i}\n`, stderr: `e${i}\n` }));
  });

  test("output over the cap is cut, and the program still runs to its end", async () => {
    const res = await runProgram("sh", ["-c", "head -c 6000000 /dev/zero | tr '\\0' a; head -c 6000000 /dev/zero | tr '\\0' b >&2; exit 7"], {
      timeoutMs: 30_000,
      what: "sh",
    });
    expect(res.code).toBe(7);
    // The C helper keeps exactly the cap; the Node one stops appending once past it.
    for (const [out, ch] of [[res.stdout, "a"], [res.stderr, "b"]] as const) {
      expect(out.length).toBeGreaterThanOrEqual(MAX_OUTPUT);
      expect(out.length).toBeLessThan(6_000_000);
      expect(out.replaceAll(ch, "")).toBe("");
    }
  });

  test("a program that exits without reading a large input is answered", async () => {
    const input = "x".repeat(8 * 1024 * 1024);
    expect(await runProgram("true", [], { input, timeoutMs: 30_000, what: "true" })).toEqual({ code: 0, signal: null, stdout: "", stderr: "" });
    const res = await runProgram("sh", ["-c", "head -c 3; exit 5"], { input, timeoutMs: 30_000, what: "sh" });
    expect(res).toEqual({ code: 5, signal: null, stdout: "xxx", stderr: "" });
  });

  test("a timeout kills the program", async () => {
    const err = await runProgram("sleep", ["30"], { timeoutMs: 300, what: "sleepy" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect((err as Error).message).toContain("sleepy");
  });

  test("a cancel kills the program's whole process group", async () => {
    const dir = mkdtempSync(join(tmpdir(), "podshim-exec-"));
    try {
      const pidFile = join(dir, "pid");
      const ac = new AbortController();
      const run = runProgram("sh", ["-c", 'sleep 30 & echo $! > "$0.tmp"; mv "$0.tmp" "$0"; wait', pidFile], { timeoutMs: 30_000, what: "sh", signal: ac.signal });
      await until(() => existsSync(pidFile));
      const grandchild = Number(readFileSync(pidFile, "utf8"));
      expect(alive(grandchild)).toBe(true);
      ac.abort();
      await expect(run).rejects.toBeInstanceOf(CanceledError);
      // SIGKILL went to the group; the grandchild is reaped by init soon after.
      await until(() => !alive(grandchild));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a timeout answers even when a grandchild holds the output open", async () => {
    const err = await runProgram("sh", ["-c", "sleep 30 & exit 0"], { timeoutMs: 300, what: "holder" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeadlineExceededError);
  });

  test("a cancel before or while it runs is a CanceledError", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    await expect(runProgram("sleep", ["30"], { timeoutMs: 10_000, what: "sleep", signal: ac.signal })).rejects.toBeInstanceOf(CanceledError);
    await expect(runProgram("true", [], { timeoutMs: 10_000, what: "true", signal: ac.signal })).rejects.toBeInstanceOf(CanceledError);
  });

  test("leaves no zombie children behind", async () => {
    await Promise.all([
      ...Array.from({ length: 20 }, () => runProgram("true", [], { timeoutMs: 10_000, what: "true" })),
      runProgram("podshim-no-such-program", [], { timeoutMs: 10_000, what: "x" }).catch(() => undefined),
      runProgram("sleep", ["30"], { timeoutMs: 100, what: "sleep" }).catch(() => undefined),
      runProgram("sh", ["-c", "exit 1"], { input: "x".repeat(1 << 20), timeoutMs: 10_000, what: "sh" }),
    ]);
    const pid = spawnerForTests.pid();
    expect(pid).toBeDefined();
    // Every answer comes after its program was reaped, so nothing is left at all.
    expect(childrenOf(pid!)).toEqual([]);
  });

  test("a helper that died is replaced; what it was running fails", async () => {
    const dir = mkdtempSync(join(tmpdir(), "podshim-exec-"));
    const pidFile = join(dir, "pid");
    try {
      const run = runProgram("sh", ["-c", 'echo $$ > "$0.tmp"; mv "$0.tmp" "$0"; exec sleep 30', pidFile], { timeoutMs: 30_000, what: "sh" });
      const failed = run.catch((e: unknown) => e);
      await until(() => existsSync(pidFile));
      const old = spawnerForTests.pid()!;
      process.kill(old, "SIGKILL");
      expect(await failed).toBeInstanceOf(InternalError);
      await until(() => spawnerForTests.dead());
      expect((await runProgram("true", [], { timeoutMs: 10_000, what: "true" })).code).toBe(0);
      expect(spawnerForTests.pid()).not.toBe(old);
      expect(spawnerForTests.kind()).toBe(kind);
    } finally {
      // The program outlived its helper (own process group), as it would podshim.
      if (existsSync(pidFile)) process.kill(-Number(readFileSync(pidFile, "utf8")), "SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!existsSync(builtExec) || (kind === "native" && !nativeBuilt))("the helper exits when podshim does", async () => {
    // A separate podshim-like process (built dist/, as node cannot load the .ts source) runs a
    // program and ends on its own, which also shows an idle helper keeps nothing alive.
    const script = `
      import { runProgram, spawnerForTests } from ${JSON.stringify(builtExec.href)};
      const res = await runProgram("true", [], { timeoutMs: 10000, what: "true" });
      process.stdout.write(JSON.stringify({ pid: spawnerForTests.pid(), kind: spawnerForTests.kind(), code: res.code }));`;
    const env = { ...process.env, PODSHIM_SPAWNER: kind === "node" ? "node" : "" };
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ["--input-type=module", "-e", script], { env, timeout: 20_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
    );
    const { pid, kind: used, code } = JSON.parse(out) as { pid: number; kind: string; code: number };
    expect({ kind: used, code }).toEqual({ kind, code: 0 });
    await until(() => !alive(pid));
  });
});
