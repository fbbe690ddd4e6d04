// ExecSync through the CRI socket: processes exec'd into running containers through containerd.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { status as Status } from "@grpc/grpc-js";
import type { PodshimHandle } from "../support/podshim.js";
import { startPodFixture, type PodFixture } from "../support/pod-fixture.js";
import { statusOf } from "../support/cri-client.js";

const bed = inject("bed");
let fx: PodFixture;
let podshim: PodshimHandle;
let pod: string;
let podConfig: Record<string, unknown>;

beforeAll(async () => {
  fx = await startPodFixture(bed, "exec", [bed.images.busybox]);
  ({ podshim, pod, podConfig } = fx);
});
afterAll(async () => {
  
  await fx?.cleanup();
});

const container = (name: string, extra: Record<string, unknown> = {}) => fx.container(name, extra);

const execSync = (id: string, cmd: string[], timeout = 0) => podshim.cri.runtime("ExecSync", { container_id: id, cmd, timeout }, 60_000);

describe("ExecSync", () => {
  it("returns stdout, stderr and the exit code; a non-zero exit is a result", async () => {
    const id = await container("basic");
    const hello = await execSync(id, ["echo", "-n", "hello"]);
    expect([hello.stdout.toString(), hello.stderr.toString(), hello.exit_code]).toEqual(["hello", "", 0]);
    const failed = await execSync(id, ["sh", "-c", "echo out; echo err >&2; exit 7"]);
    expect([failed.stdout.toString(), failed.stderr.toString(), failed.exit_code]).toEqual(["out\n", "err\n", 7]);
    // As with containerd, a command that cannot start is an error, not an exit code.
    const missing = await statusOf(execSync(id, ["/no/such/binary"]));
    expect(missing.details).toContain("no such file");
  });

  it("runs several execs at once in one container", async () => {
    const id = await container("parallel");
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => execSync(id, ["sh", "-c", `sleep 0.2; echo ${i}`])));
    expect(results.map((r) => r.stdout.toString())).toEqual(Array.from({ length: 8 }, (_, i) => `${i}\n`));
  });

  it("kills the command at the timeout and answers DEADLINE_EXCEEDED", async () => {
    const id = await container("timeout");
    const started = Date.now();
    const res = await statusOf(execSync(id, ["sleep", "4321"], 1));
    expect(res.code).toBe(Status.DEADLINE_EXCEEDED);
    expect(Date.now() - started).toBeLessThan(10_000);
    const left = await execSync(id, ["sh", "-c", "for p in /proc/[0-9]*; do cat $p/cmdline 2>/dev/null | tr '\\0' ' '; echo; done | grep '[s]leep 4321' || true"]);
    expect(left.stdout.toString()).toBe("");
  });

  it("runs as the container's user and groups", async () => {
    const id = await container("user", { linux: { security_context: { run_as_user: { value: 1000 }, supplemental_groups: [1234] } } });
    const res = await execSync(id, ["id"]);
    expect(res.stdout.toString().trim()).toBe("uid=1000(test) gid=1000(test) groups=1000(test),1234,50000(extra)");
  });

  it("keeps at most 16 MiB less 64 KiB of output, so the reply fits a kubelet's gRPC limit", async () => {
    const id = await container("big");
    const res = await execSync(id, ["sh", "-c", "echo first >&2; sleep 0.2; head -c 20971520 /dev/zero; echo late >&2"]);
    expect(res.stderr.toString()).toBe("first\n");
    expect(res.stdout.length).toBe(16 * 1024 * 1024 - 64 * 1024 - "first\n".length);
    expect(res.exit_code).toBe(0);
  });

  it("refuses containers that are not running and unknown ones", async () => {
    const { container_id: created } = await podshim.cri.runtime("CreateContainer", {
      pod_sandbox_id: pod, sandbox_config: podConfig, config: { metadata: { name: "created" }, image: { image: bed.images.busybox }, command: ["true"] },
    }, 60_000);
    expect((await statusOf(execSync(created, ["true"]))).code).toBe(Status.FAILED_PRECONDITION);
    expect((await statusOf(execSync("0".repeat(64), ["true"]))).code).toBe(Status.NOT_FOUND);
    expect((await statusOf(execSync(created, []))).code).toBe(Status.INVALID_ARGUMENT);
  });
});
