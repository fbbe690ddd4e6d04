// runProgram: programs are started by the spawner process; what callers see is unchanged.
import { describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CanceledError, DeadlineExceededError, InternalError } from "../../src/errors/errors.js";
import { runProgram } from "../../src/util/exec.js";

/** A process that is neither gone nor a zombie. */
function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

describe("runProgram", () => {
  it("feeds stdin and returns stdout, stderr and the exit code", async () => {
    const res = await runProgram("sh", ["-c", "cat; echo oops >&2; exit 3"], { input: "hello", timeoutMs: 10_000, what: "sh" });
    expect(res).toEqual({ code: 3, signal: null, stdout: "hello", stderr: "oops\n" });
  });

  it("a program that cannot start is an InternalError naming it", async () => {
    const err = await runProgram("podshim-no-such-program", [], { timeoutMs: 10_000, what: "x" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InternalError);
    expect((err as Error).message).toContain("podshim-no-such-program");
  });

  it("runs programs side by side: one waits for what a later one does", async () => {
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

  it("a timeout kills the program", async () => {
    const err = await runProgram("sleep", ["30"], { timeoutMs: 300, what: "sleepy" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect((err as Error).message).toContain("sleepy");
  });

  it("a cancel kills the program's whole process group", async () => {
    const dir = mkdtempSync(join(tmpdir(), "podshim-exec-"));
    try {
      const pidFile = join(dir, "pid");
      const ac = new AbortController();
      const run = runProgram("sh", ["-c", 'sleep 30 & echo $! > "$0.tmp"; mv "$0.tmp" "$0"; wait', pidFile], { timeoutMs: 30_000, what: "sh", signal: ac.signal });
      while (!existsSync(pidFile)) await new Promise((r) => setTimeout(r, 10));
      const grandchild = Number(readFileSync(pidFile, "utf8"));
      expect(alive(grandchild)).toBe(true);
      ac.abort();
      await expect(run).rejects.toBeInstanceOf(CanceledError);
      // SIGKILL went to the group; the grandchild is reaped by init soon after.
      for (let i = 0; i < 500 && alive(grandchild); i++) await new Promise((r) => setTimeout(r, 10));
      expect(alive(grandchild)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a cancel before or while it runs is a CanceledError", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    await expect(runProgram("sleep", ["30"], { timeoutMs: 10_000, what: "sleep", signal: ac.signal })).rejects.toBeInstanceOf(CanceledError);
    await expect(runProgram("true", [], { timeoutMs: 10_000, what: "true", signal: ac.signal })).rejects.toBeInstanceOf(CanceledError);
  });
});
