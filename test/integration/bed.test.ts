// Checks the integration bed itself with containerd's own client (ctr): the shared containerd
// answers, the registry serves pullable and runnable images, the pause program behaves as PID 1,
// and a private containerd survives stop/restart and cleans up after itself.
import { existsSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, inject, test } from "vitest";
import { startContainerd } from "../bed/containerd.js";
import { busyboxLayer } from "../bed/images.js";
import { buildImage, hostPlatform, pushImage } from "../bed/oci.js";
import { cgroupDirs, mountsUnder, removeCgroups, run, shimsReferencing, sleep } from "../bed/proc.js";
import type { ImageSpec } from "../bed/oci.js";
import type { RunResult } from "../bed/proc.js";
import { startRegistry } from "../bed/registry.js";
import "../bed/types.js";

const bed = inject("bed");
const ns = `bedtest-${process.pid}`;
const platform = `${hostPlatform().os}/${hostPlatform().architecture}`;

function ctr(args: string[], opts: { timeoutMs?: number; socket?: string } = {}): Promise<RunResult> {
  return run("ctr", ["--address", opts.socket ?? bed.containerdSocket, "-n", ns, ...args], {
    timeoutMs: opts.timeoutMs ?? 60_000,
  });
}

async function ctrOk(args: string[], opts: { timeoutMs?: number; socket?: string } = {}): Promise<RunResult> {
  const res = await ctr(args, opts);
  if (res.code !== 0) {
    throw new Error(`ctr ${args.join(" ")}: exit ${res.code ?? res.signal}\n${res.stdout}\n${res.stderr}`);
  }
  return res;
}

/** `ctr run` with runc state and IO FIFOs in the bed dir rather than under /run/containerd and
 * the cgroup under the bed's parent rather than /<namespace>, so even an aborted test leaves
 * nothing outside what the bed's teardown removes. id must be the container id in args. */
function ctrRun(id: string, args: string[], dir = bed.containerdDir, cgroupParent = bed.cgroupParent): string[] {
  return [
    "run",
    "--runc-root",
    join(dir, "runc"),
    "--fifo-dir",
    join(dir, "fifo"),
    "--cgroup",
    `${cgroupParent}/${id}`,
    ...args,
  ];
}

function ctrExec(args: string[]): string[] {
  return ["task", "exec", "--fifo-dir", join(bed.containerdDir, "fifo"), ...args];
}

async function imageNames(): Promise<string[]> {
  const res = await ctrOk(["images", "ls", "-q"]);
  return res.stdout.split("\n").filter((s) => s !== "");
}

afterAll(async () => {
  for (const id of ["bed-pause", "bed-reaper"]) {
    await ctr(["task", "kill", "-s", "SIGKILL", id]);
    await ctr(["task", "delete", "-f", id]);
    await ctr(["containers", "delete", id]);
  }
  const images = await imageNames();
  if (images.length > 0) await ctrOk(["images", "rm", "--sync", ...images]);
  await ctrOk(["namespaces", "remove", ns]);

  expect(await shimsReferencing(bed.containerdSocket)).toEqual([]);
  expect(await mountsUnder(bed.tmpDir)).toEqual([]);
  // Containers that ran to completion took their cgroups along. Only this file's are looked at:
  // other test files run pods under the same parent meanwhile.
  const leftovers = await cgroupDirs(bed.cgroupParent);
  expect(leftovers.filter((d) => /\/bed-[^/]+$/.test(d))).toEqual([]);
});

describe("shared containerd", () => {
  test("answers ctr version", async () => {
    const res = await run("ctr", ["--address", bed.containerdSocket, "version"], { timeoutMs: 10_000 });
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/Server:\s+Version:/);
  });

  test("pulls busybox and pause from the bed registry", async () => {
    for (const ref of [bed.images.busybox, bed.images.pause]) {
      await ctrOk(["images", "pull", "--plain-http", ref]);
    }
    expect(await imageNames()).toEqual(expect.arrayContaining([bed.images.busybox, bed.images.pause]));
  });

  test("runs the busybox image", async () => {
    await ctrOk(["images", "pull", "--plain-http", bed.images.busybox]);
    const args = ["--rm", bed.images.busybox, "bed-hello", "/bin/sh", "-c", "echo hello"];
    const res = await ctrOk(ctrRun("bed-hello", args));
    expect(res.stdout.trim()).toBe("hello");
  });

  test("busybox applets are hard links of /bin/busybox and users resolve", async () => {
    // sh and ls must share busybox's inode; then the user database and /tmp's sticky mode.
    const script = "stat -c %i /bin/busybox /bin/sh /bin/ls; id test; stat -c %a /tmp";
    const res = await ctrOk(ctrRun("bed-links", ["--rm", bed.images.busybox, "bed-links", "/bin/sh", "-c", script]));
    const lines = res.stdout.trim().split("\n");
    expect(new Set(lines.slice(0, 3)).size).toBe(1);
    expect(lines[3]).toBe("uid=1000(test) gid=1000(test) groups=1000(test),50000(extra)");
    expect(lines[4]).toBe("1777");
  });

  test("the web image serves its index page", async () => {
    await ctrOk(["images", "pull", "--plain-http", bed.images.web]);
    // Host network keeps the test free of CNI; a private port avoids clashing with anything on 80.
    const port = 20_000 + (process.pid % 20_000);
    // httpd daemonizes; it dies with the container's PID 1 when the shell exits.
    const script = `httpd -p 127.0.0.1:${port} -h /www && wget -q -O - http://127.0.0.1:${port}/`;
    const args = ["--rm", "--net-host", bed.images.web, "bed-web", "/bin/sh", "-c", script];
    const res = await ctrOk(ctrRun("bed-web", args));
    expect(res.stdout).toContain("podshim test web");
  });

  test("the pause program reaps orphans as PID 1 and exits 0 on SIGTERM", async () => {
    await ctrOk(["images", "pull", "--plain-http", bed.images.pause]);
    await ctrOk(["images", "pull", "--plain-http", bed.images.busybox]);

    // pause from its own image: SIGTERM ends it with status 0.
    await ctrOk(ctrRun("bed-pause", ["-d", bed.images.pause, "bed-pause"]));
    await ctrOk(["task", "kill", "-s", "SIGTERM", "bed-pause"]);
    const deadline = Date.now() + 10_000;
    let status = "";
    while (Date.now() < deadline) {
      status = (await ctrOk(["task", "ls"])).stdout;
      if (/bed-pause\s+\d+\s+STOPPED/.test(status)) break;
      await sleep(50);
    }
    expect(status).toMatch(/bed-pause\s+\d+\s+STOPPED/);
    const del = await ctrOk(["task", "delete", "bed-pause"]);
    // ctr only mentions the exit code when it is not 0.
    expect(del.stderr).not.toMatch(/exit code/);
    await ctrOk(["containers", "delete", "bed-pause"]);

    // pause bind-mounted into busybox, so a shell can orphan a child under it.
    const mount = `type=bind,src=${bed.pauseBinary},dst=/pause,options=rbind:ro`;
    await ctrOk(ctrRun("bed-reaper", ["-d", "--mount", mount, bed.images.busybox, "bed-reaper", "/pause"]));
    await ctrOk(ctrExec(["--exec-id", "orphan", "bed-reaper", "/bin/sh", "-c", "sleep 0.1 & exit 0"]));
    await sleep(500);
    const ps = await ctrOk(ctrExec(["--exec-id", "ps", "bed-reaper", "/bin/ps", "-o", "pid,stat,comm"]));
    expect(ps.stdout).toMatch(/^\s*1\s+\S+\s+pause$/m);
    expect(ps.stdout).not.toMatch(/\sZ\S*\s/);
    await ctrOk(["task", "kill", "-s", "SIGTERM", "bed-reaper"]);
    await sleep(200);
    await ctrOk(["task", "delete", "-f", "bed-reaper"]);
    await ctrOk(["containers", "delete", "bed-reaper"]);
  });

  test("the multi-platform index pulls for this machine's platform", async () => {
    await ctrOk(["images", "pull", "--plain-http", "--platform", platform, bed.images.multi]);
    const check = await ctrOk(["images", "check"]);
    const line = check.stdout.split("\n").find((l) => l.startsWith(`${bed.images.multi} `));
    expect(line).toMatch(/application\/vnd\.oci\.image\.index\.v1\+json\s+\S+\s+complete/);
  });
});

describe("private containerd", () => {
  test("stops, restarts on the same root and state, and cleans up", async () => {
    const dir = await mkdtemp(join(bed.tmpDir, "own-cd-"));
    const cd = await startContainerd({ dir });
    try {
      const opts = { socket: cd.socket };
      await ctrOk(["images", "pull", "--plain-http", bed.images.busybox], opts);
      const firstPid = cd.pid;

      await cd.stop();
      expect(cd.pid).toBe(0);
      const down = await run("ctr", ["--address", cd.socket, "--connect-timeout", "1s", "version"], {
        timeoutMs: 10_000,
      });
      expect(down.code).not.toBe(0);

      await cd.restart();
      expect(cd.pid).not.toBe(firstPid);
      // The image pulled before the restart is still there: same root.
      const images = await ctrOk(["images", "ls", "-q"], opts);
      expect(images.stdout).toContain(bed.images.busybox);

      // A running container when cleanup comes: cleanup must take the shim and container too.
      const cgroupParent = `${bed.cgroupParent}/own-cd`;
      const args = ["-d", bed.images.busybox, "left-running", "sleep", "600"];
      await ctrOk(ctrRun("left-running", args, cd.dir, cgroupParent), opts);
      expect((await cgroupDirs(`${cgroupParent}/left-running`)).length).toBeGreaterThan(0);
      expect(await shimsReferencing(cd.socket)).toHaveLength(1);
      expect((await mountsUnder(cd.dir)).length).toBeGreaterThan(0);
    } finally {
      await cd.cleanup();
    }
    expect(await shimsReferencing(cd.socket)).toEqual([]);
    expect(await mountsUnder(dir)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
    await removeCgroups(`${bed.cgroupParent}/own-cd`);
    expect(await cgroupDirs(`${bed.cgroupParent}/own-cd`)).toEqual([]);
  });
});

describe("registry with htpasswd auth", () => {
  test("refuses anonymous requests and serves with credentials", async () => {
    const dir = await mkdtemp(join(bed.tmpDir, "auth-reg-"));
    const creds = { user: "bed", password: "s3cret pass" };
    const reg = await startRegistry({ dir, htpasswd: creds });
    try {
      expect((await fetch(`${reg.url}/v2/`)).status).toBe(401);
      const ok = await fetch(`${reg.url}/v2/`, {
        headers: { Authorization: `Basic ${Buffer.from(`${creds.user}:${creds.password}`).toString("base64")}` },
      });
      expect(ok.status).toBe(200);

      const img = await buildImage({ layers: [await busyboxLayer()], config: { Cmd: ["sh"] } });
      await expect(pushImage(reg.host, "private/busybox", "v1", img)).rejects.toThrow(/401/);
      const { digest } = await pushImage(reg.host, "private/busybox", "v1", img, { auth: creds });
      expect(digest).toBe(img.manifest.digest);

      const ref = `${reg.host}/private/busybox:v1`;
      expect((await ctr(["images", "pull", "--plain-http", ref])).code).not.toBe(0);
      await ctrOk(["images", "pull", "--plain-http", "--user", `${creds.user}:${creds.password}`, ref]);
      await ctrOk(["images", "rm", "--sync", ref]);
    } finally {
      await reg.cleanup();
    }
    expect(existsSync(dir)).toBe(false);
  });
});

describe("oci writer", () => {
  test("builds byte-identical images from the same spec", async () => {
    const spec = (): ImageSpec => ({
      layers: [
        [
          { type: "dir", path: "/a" },
          { type: "file", path: "/a/f", content: "x", mode: 0o600 },
          { type: "hardlink", path: "/a/g", target: "/a/f" },
          { type: "symlink", path: "/a/h", target: "f" },
        ],
      ],
    });
    const one = await buildImage(spec());
    const two = await buildImage(spec());
    expect(one.manifest.digest).toBe(two.manifest.digest);
    expect(one.diffIds).toEqual(two.diffIds);
    const config = JSON.parse(one.config.data.toString()) as { architecture: string; rootfs: { diff_ids: string[] } };
    expect(config.architecture).toBe(hostPlatform().architecture);
    expect(config.rootfs.diff_ids).toEqual(one.diffIds);
  });
});
