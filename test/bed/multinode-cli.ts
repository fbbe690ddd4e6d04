// The multi-node bed as a command (scripts/multinode.sh runs it compiled):
//   up [--nodes N] [--dir DIR]   bring the bed up (or the parts of it that are not running)
//   down [--dir DIR]             take it down and remove DIR
//   status [--dir DIR]           what runs
// Images: busybox, web and pause are built from the host's static busybox and podshim's pause
// program, pushed once through a short-lived loopback registry into the bed's storage, and
// served to the nodes by the fabric's registry.
import { readFileSync } from "node:fs";
import { access, mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { buildAndPushTestImages, IMAGE_NAMESPACE } from "./images.js";
import { loadBed, multinodeDown, multinodeUp, podshimPid, REGISTRY, type MultinodeBed } from "./multinode.js";
import { startRegistry } from "./registry.js";

// scripts/multinode.sh runs a compiled copy elsewhere and says where the repository is.
const REPO = process.env.PODSHIM_REPO ?? resolve(fileURLToPath(new URL(".", import.meta.url)), "../..");

function flag(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

/** Pushes the bed's images into dir/images/storage unless they are there. */
async function seedImages(dir: string): Promise<string> {
  const regDir = join(dir, "images");
  const storage = join(regDir, "storage");
  if (await exists(join(storage, "docker/registry/v2/repositories", IMAGE_NAMESPACE, "pause"))) return storage;
  await mkdir(regDir, { recursive: true });
  const reg = await startRegistry({ dir: regDir });
  try {
    await buildAndPushTestImages({ registryHost: reg.host, pauseBinary: join(REPO, "dist/pause/pause") });
  } finally {
    await reg.stop();
  }
  return storage;
}

/** CAP_SYS_RESOURCE (bit 24) in our bounding set: without it runc cannot lower oom_score_adj. */
function hasSysResource(): boolean {
  const capbnd = /^CapBnd:\s+([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "0";
  return ((BigInt(`0x${capbnd}`) >> 24n) & 1n) === 1n;
}

async function printBed(bed: MultinodeBed): Promise<void> {
  const lines = [`multi-node bed in ${bed.dir}: ${bed.nodes.length} nodes, registry ${REGISTRY} (inside the bed)`];
  for (const n of bed.nodes) {
    const pid = await podshimPid(n);
    lines.push(
      `  node ${n.index}: netns ${n.netns}, address ${n.address}, pod CIDR ${n.podCidr}, podshim ${pid ? `pid ${pid}` : "NOT RUNNING"}`,
      `    CRI endpoint unix://${n.podshimSocket}   (kubelet: --container-runtime-endpoint unix://${n.podshimSocket}, run inside netns ${n.netns})`,
      `    logs ${n.podshimLog}, ${n.containerdLog}`,
      ...(bed.options.peering ?? true ? [`    peer mirror http://${n.peerAddress}/v2/ (peers file ${n.peersFile})`] : []),
    );
  }
  lines.push(`  images: ${REGISTRY}/${IMAGE_NAMESPACE}/{busybox,web}:latest, ${REGISTRY}/${IMAGE_NAMESPACE}/pause:3.10`);
  lines.push(`  crictl: crictl --runtime-endpoint unix://${bed.nodes[0]!.podshimSocket} pods`);
  console.log(lines.join("\n"));
}

async function main(): Promise<void> {
  const [command, ...args] = process.argv.slice(2);
  const dir = resolve(flag(args, "--dir", "/run/podshim-multinode"));
  if (command === "up") {
    const nodes = Number(flag(args, "--nodes", "3"));
    const t = performance.now();
    const registryStorage = await seedImages(dir);
    const bed = await multinodeUp({
      dir, nodes, registryStorage,
      podshimMain: join(REPO, "dist/main.js"),
      restrictOomScoreAdj: !hasSysResource(),
      pauseImage: `${REGISTRY}/${IMAGE_NAMESPACE}/pause:3.10`,
      peering: !args.includes("--no-peering"),
    });
    await printBed(bed);
    console.log(`up in ${Math.round(performance.now() - t)} ms`);
  } else if (command === "down") {
    const t = performance.now();
    await multinodeDown(dir);
    console.log(`down in ${Math.round(performance.now() - t)} ms`);
  } else if (command === "status") {
    const bed = await loadBed(dir);
    if (!bed) {
      console.log(`no bed in ${dir}`);
      process.exitCode = 1;
      return;
    }
    await printBed(bed);
  } else {
    console.error("usage: multinode.sh up [--nodes 2..4] [--dir DIR] [--no-peering] | down [--dir DIR] | status [--dir DIR]");
    process.exitCode = 2;
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof AggregateError ? `${err.message}:\n${err.errors.map(String).join("\n")}` : String(err instanceof Error ? err.stack : err));
  process.exitCode = 1;
});
