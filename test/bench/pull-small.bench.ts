// PullImage of a small image (busybox plus a random file: one ~1 MB layer no runtime has seen)
// from the local registry, one at a time on an idle node: podshim against containerd's own
// CRI plugin, interleaved so drift in the machine's load hits both alike. Each image is
// removed after its pull. podshim's step timings (its "pulled" log lines) are summarised too,
// to show where a pull's time goes.
//
// PODSHIM_BENCH_PULLS sets the number of pulls per runtime (default 24).
import { afterAll, beforeAll, inject, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { testNetwork, type TestNetwork } from "../support/cni.js";
import { startPodshim, type PodshimHandle } from "../support/podshim.js";
import { freshImage, startBuiltinCri, latencyOf, timed, type BuiltinCri } from "./builtin-cri.js";
import { report } from "./measure.js";

const bed = inject("bed");
const PULLS = Number(process.env.PODSHIM_BENCH_PULLS ?? 24);
let base: string;
let net: TestNetwork;
let podshim: PodshimHandle;
let builtin: BuiltinCri;

beforeAll(async () => {
  base = mkdtempSync(join(bed.tmpDir, "bench-pull-small-"));
  net = testNetwork(base);
  builtin = await startBuiltinCri(bed, base, net);
  podshim = await startPodshim({ containerdSocket: builtin.containerd.socket, baseDir: base, cniConfDir: net.confDir, extraArgs: ["--log-level", "info", "--pause-image", bed.images.pause] });
}, 300_000);

afterAll(async () => {
  await podshim?.cleanup();
  await builtin?.cleanup();
  await net?.cleanup();
  if (base) rmSync(base, { recursive: true, force: true });
});

it("pulls a small fresh image: podshim vs containerd's CRI plugin", async () => {
  const targets = [{ label: "podshim", cri: podshim.cri, ms: [] as number[] }, { label: "containerd", cri: builtin.cri, ms: [] as number[] }];
  // Warm-up, not counted: the first pull of each pays for connections and compilation.
  for (const t of targets) {
    const image = await freshImage(bed);
    await t.cri.image("PullImage", { image: { image } }, 60_000);
    await t.cri.image("RemoveImage", { image: { image } }, 60_000);
  }
  const logFrom = podshim.output().length;
  for (let i = 0; i < PULLS; i++) {
    for (const t of i % 2 === 0 ? targets : [...targets].reverse()) {
      const image = await freshImage(bed);
      await timed(t.ms, () => t.cri.image("PullImage", { image: { image } }, 60_000));
      await t.cri.image("RemoveImage", { image: { image } }, 60_000);
    }
  }
  const rows = targets.map((t) => latencyOf(`PullImage ${t.label} (ms)`, 1, t.ms));
  // podshim's steps, median of each over the measured pulls.
  const steps: Record<string, number[]> = {};
  for (const line of podshim.output().slice(logFrom).split("\n")) {
    if (!line.includes('"msg":"pulled"')) continue;
    for (const [k, v] of Object.entries((JSON.parse(line) as { steps: Record<string, number> }).steps)) (steps[k] ??= []).push(v);
  }
  report("pull-small", rows, {
    pulls: PULLS,
    ratioP50: Math.round((rows[0]!.p50 / rows[1]!.p50) * 100) / 100,
    podshimStepsMedianMs: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, latencyOf(k, 1, v).p50])),
  });
}, 600_000);
