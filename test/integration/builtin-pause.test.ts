// The built-in pause image on a real containerd: imported as an OCI layout archive with ctr (no
// registry involved, as on an air-gapped node), it unpacks and runs, both with explicit
// arguments and through its own Entrypoint as a long-lived PID 1 that stops on SIGTERM.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { builtinPauseImage } from "../../src/image/builtin-pause.js";
import type { BuiltinImage } from "../../src/image/builtin-pause.js";
import { hostPlatform, MediaType } from "../../src/distribution/descriptor.js";
import { writeTar } from "../../src/util/tar.js";
import type { TarEntry } from "../../src/util/tar.js";
import { cgroupDirs, mountsUnder, run, shimsReferencing, sleep } from "../bed/proc.js";
import type { RunResult } from "../bed/proc.js";
import "../bed/types.js";

const bed = inject("bed");
const ns = `builtin-pause-${process.pid}`;
const imageName = "podshim.local/builtin-pause:test";
const ids = { version: "builtin-pause-v", entry: "builtin-pause-entry" } as const;
const work = mkdtempSync(join(bed.tmpDir, "builtin-pause-"));

function ctr(args: string[], timeoutMs = 60_000): Promise<RunResult> {
  return run("ctr", ["--address", bed.containerdSocket, "-n", ns, ...args], { timeoutMs });
}

async function ctrOk(args: string[], timeoutMs = 60_000): Promise<RunResult> {
  const res = await ctr(args, timeoutMs);
  if (res.code !== 0) {
    throw new Error(`ctr ${args.join(" ")}: exit ${res.code ?? res.signal}\n${res.stdout}\n${res.stderr}`);
  }
  return res;
}

/** runc state, IO FIFOs and cgroups under what this file or the bed's teardown removes. */
function ctrRun(id: string, args: string[]): string[] {
  return [
    "run",
    "--runc-root",
    join(work, "runc"),
    "--fifo-dir",
    join(work, "fifo"),
    "--cgroup",
    `${bed.cgroupParent}/${id}`,
    ...args,
  ];
}

/** An OCI image layout (oci-layout, index.json, blobs/sha256/...) as one tar, the form
 * `ctr images import` reads. */
function ociLayoutTar(img: BuiltinImage): Buffer {
  const blobs = [img.manifest, img.config, ...img.layers];
  const index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [img.manifest.descriptor] };
  const entries: TarEntry[] = [
    { kind: "file", name: "oci-layout", content: Buffer.from(JSON.stringify({ imageLayoutVersion: "1.0.0" })) },
    { kind: "file", name: "index.json", content: Buffer.from(JSON.stringify(index)) },
    { kind: "dir", name: "blobs" },
    { kind: "dir", name: "blobs/sha256" },
    ...blobs.map((b): TarEntry => ({
      kind: "file",
      name: `blobs/sha256/${b.descriptor.digest.slice("sha256:".length)}`,
      content: b.bytes,
    })),
  ];
  return writeTar(entries);
}

let image: BuiltinImage;

beforeAll(async () => {
  image = await builtinPauseImage(bed.pauseBinary, hostPlatform());
  const archive = join(work, "pause-oci.tar");
  writeFileSync(archive, ociLayoutTar(image));
  await ctrOk(["images", "import", "--index-name", imageName, archive], 120_000);
});

afterAll(async () => {
  for (const id of Object.values(ids)) {
    await ctr(["task", "kill", "-s", "SIGKILL", id]);
    await ctr(["task", "delete", "-f", id]);
    await ctr(["containers", "delete", id]);
  }
  const images = (await ctrOk(["images", "ls", "-q"])).stdout.split("\n").filter((s) => s !== "");
  // --sync: garbage collection takes the content and snapshots along before the namespace goes.
  if (images.length > 0) await ctrOk(["images", "rm", "--sync", ...images]);
  await ctrOk(["namespaces", "remove", ns]);

  expect((await ctrOk(["namespaces", "ls", "-q"])).stdout.split("\n")).not.toContain(ns);
  expect(await shimsReferencing(ns)).toEqual([]);
  // Checked before removing: a recursive rm must never walk into a live mount.
  expect(await mountsUnder(work)).toEqual([]);
  rmSync(work, { recursive: true, force: true });
  for (const id of Object.values(ids)) expect(await cgroupDirs(`${bed.cgroupParent}/${id}`)).toEqual([]);
});

describe("the built-in pause image in containerd", () => {
  it("imports as one complete image named as asked", async () => {
    expect((await ctrOk(["images", "ls", "-q"])).stdout.trim()).toBe(imageName);
    const check = await ctrOk(["images", "check"]);
    const line = check.stdout.split("\n").find((l) => l.startsWith(`${imageName} `));
    expect(line).toMatch(/application\/vnd\.oci\.image\.index\.v1\+json\s+\S+\s+complete/);
    // The stored content is exactly the blobs podshim built.
    const content = await ctrOk(["content", "ls", "-q"]);
    for (const b of [image.manifest, image.config, ...image.layers]) {
      expect(content.stdout).toContain(b.descriptor.digest);
    }
  });

  it("runs /pause -v", async () => {
    const res = await ctrOk(ctrRun(ids.version, ["--rm", imageName, ids.version, "/pause", "-v"]));
    expect(res.stdout).toBe("podshim-pause\n");
  });

  it("runs its Entrypoint as PID 1 until SIGTERM, then exits 0", async () => {
    await ctrOk(ctrRun(ids.entry, ["-d", imageName, ids.entry]));
    const running = (await ctrOk(["task", "ls"])).stdout;
    const pid = new RegExp(`${ids.entry}\\s+(\\d+)\\s+RUNNING`).exec(running)?.[1];
    expect(pid, running).toBeDefined();
    // The image's own Entrypoint, nothing wrapped around it, as PID 1 of the container.
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).toBe("/pause\0");
    const nspid = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    expect(nspid?.split(/\s+/).at(-1)).toBe("1");
    const ps = await ctrOk(["task", "ps", ids.entry]);
    expect(ps.stdout.trim().split("\n")).toHaveLength(2);

    await ctrOk(["task", "kill", "-s", "SIGTERM", ids.entry]);
    const deadline = Date.now() + 5_000;
    let status = "";
    while (Date.now() < deadline) {
      status = (await ctrOk(["task", "ls"])).stdout;
      if (new RegExp(`${ids.entry}\\s+\\d+\\s+STOPPED`).test(status)) break;
      await sleep(50);
    }
    expect(status).toMatch(new RegExp(`${ids.entry}\\s+\\d+\\s+STOPPED`));
    const del = await ctrOk(["task", "delete", ids.entry]);
    // ctr mentions the exit status only when it is not 0.
    expect(del.stderr).not.toMatch(/exit code/);
    await ctrOk(["containers", "delete", ids.entry]);
  });
});
