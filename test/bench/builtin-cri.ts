// containerd's own CRI plugin, the bar podshim's benchmarks compare against: a private
// containerd with the plugin enabled, on the same CNI network and images as podshim uses.
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { startContainerd, type ContainerdHandle } from "../bed/containerd.js";
import { busyboxLayer } from "../bed/images.js";
import { buildImage, pushImage } from "../bed/oci.js";
import { criClient, type CriClient } from "../support/cri-client.js";
import type { BedInfo } from "../bed/types.js";
import type { TestNetwork } from "../support/cni.js";
import type { Latency } from "./measure.js";

export interface BuiltinCri {
  containerd: ContainerdHandle;
  cri: CriClient;
  cleanup(): Promise<void>;
}

export async function startBuiltinCri(bed: BedInfo, base: string, net: TestNetwork): Promise<BuiltinCri> {
  const containerd = await startContainerd({
    dir: join(base, "containerd"),
    criPluginToml: [
      '  [plugins."io.containerd.grpc.v1.cri"]',
      `    sandbox_image = "${bed.images.pause}"`,
      "    restrict_oom_score_adj = true",
      '    stream_server_port = "0"',
      '    [plugins."io.containerd.grpc.v1.cri".cni]',
      '      bin_dir = "/usr/lib/cni"',
      `      conf_dir = "${net.confDir}"`,
      `    [plugins."io.containerd.grpc.v1.cri".registry.mirrors."${bed.registryHost}"]`,
      `      endpoint = ["http://${bed.registryHost}"]`,
    ].join("\n"),
  });
  const cri = criClient(containerd.socket);
  return {
    containerd,
    cri,
    async cleanup() {
      cri.close();
      await containerd.cleanup();
    },
  };
}

/** Percentiles of samples gathered by a caller that times several operations per round. */
export function latencyOf(name: string, concurrency: number, ms: number[]): Latency {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]! * 10) / 10;
  return { name, n: s.length, concurrency, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1), rate: 0 };
}

/** Runs `work` with an async stopwatch: `timed(bucket, op)` records op's duration in bucket. */
export async function timed<T>(bucket: number[], work: () => Promise<T>): Promise<T> {
  const t = performance.now();
  const res = await work();
  bucket.push(performance.now() - t);
  return res;
}

/** A pod for benchmarks: its logs under `base`, its cgroup under the bed's (teardown removes it). */
export function benchPodConfig(bed: BedInfo, base: string, i: number) {
  const uid = randomBytes(8).toString("hex");
  return {
    metadata: { name: `bench-${i}`, uid, namespace: "bench", attempt: 0 },
    hostname: `bench-${i}`,
    log_directory: join(base, "logs", uid),
    linux: { cgroup_parent: `${bed.cgroupParent}/bench-${uid}`, security_context: { namespace_options: { network: "POD", pid: "CONTAINER", ipc: "POD" } } },
  };
}

/** A small image no runtime has seen, pushed to the bed's registry: busybox plus a random
 * file, so its one layer is new. Returns its reference. */
export async function freshImage(bed: BedInfo): Promise<string> {
  const tag = randomBytes(6).toString("hex");
  const img = await buildImage({ layers: [[...(await busyboxLayer()), { type: "file", path: "/bench-id", content: Buffer.from(tag) }]], config: { Cmd: ["sh"] } });
  await pushImage(bed.registryHost, "bench/small", tag, img);
  return `${bed.registryHost}/bench/small:${tag}`;
}
