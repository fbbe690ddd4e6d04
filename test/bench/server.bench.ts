// The cost of the gRPC boundary itself: Version (no containerd), Status (a containerd probe
// and a CNI config read, cached briefly), sequential and 4 in parallel, and podshim's RSS.
import { afterAll, beforeAll, inject, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { startPodshim, type PodshimHandle } from "../support/podshim.js";
import { report, sample } from "./measure.js";

const bed = inject("bed");
const base = mkdtempSync(join(bed.tmpDir, "bench-server-"));
let podshim: PodshimHandle;

beforeAll(async () => {
  podshim = await startPodshim({ containerdSocket: bed.containerdSocket, baseDir: base, extraArgs: ["--log-level", "info"] });
});
afterAll(async () => {
  await podshim?.cleanup();
  rmSync(base, { recursive: true, force: true });
});

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

it("Version and Status latency", async () => {
  const { runtime } = podshim.cri;
  for (let i = 0; i < 200; i++) await runtime("Version", {}); // warm-up: JIT, channel
  const rows = [
    await sample("Version", 2000, 1, () => runtime("Version", {})),
    await sample("Version", 4000, 4, () => runtime("Version", {})),
    await sample("Status", 2000, 1, () => runtime("Status", {})),
    await sample("Status", 4000, 4, () => runtime("Status", {})),
    await sample("Status verbose", 1000, 1, () => runtime("Status", { verbose: true })),
  ];
  report("server", rows, { podshimRssMb: rssMb(podshim.process.pid!) });
});
