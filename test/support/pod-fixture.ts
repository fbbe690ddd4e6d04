// One podshim with one ready pod on the bed's containerd, for tests that work inside a pod
// (exec, streaming, stats): the shared set-up and teardown, and a way to run containers in it.
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { BedInfo } from "../bed/types.js";
import { startPodshim, type PodshimHandle } from "./podshim.js";
import { testNetwork, type TestNetwork } from "./cni.js";

export interface PodFixture {
  podshim: PodshimHandle;
  pod: string;
  podConfig: Record<string, unknown>;
  /** Creates and starts a container in the pod (busybox `sleep 3600` unless `config` says otherwise). */
  container(name: string, config?: Record<string, unknown>): Promise<string>;
  cleanup(): Promise<void>;
}

export async function startPodFixture(bed: BedInfo, name: string, images: string[]): Promise<PodFixture> {
  const base = mkdtempSync(join(bed.tmpDir, `${name}-`));
  const net: TestNetwork = testNetwork(base);
  const podshim = await startPodshim({ containerdSocket: bed.containerdSocket, baseDir: base, cniConfDir: net.confDir, extraArgs: ["--pause-image", bed.images.pause] });
  for (const image of images) await podshim.cri.image("PullImage", { image: { image } }, 120_000);
  const uid = randomBytes(8).toString("hex");
  const podConfig = {
    metadata: { name, uid, namespace: "default", attempt: 0 },
    log_directory: join(base, "logs"),
    linux: { cgroup_parent: `${bed.cgroupParent}/pod-${uid.slice(0, 8)}` },
  };
  const pod: string = (await podshim.cri.runtime("RunPodSandbox", { config: podConfig }, 120_000)).pod_sandbox_id;
  return {
    podshim,
    pod,
    podConfig,
    async container(cname, config = {}) {
      const { container_id: id } = await podshim.cri.runtime("CreateContainer", {
        pod_sandbox_id: pod, sandbox_config: podConfig,
        config: { metadata: { name: cname }, image: { image: bed.images.busybox }, command: ["sleep", "3600"], log_path: `${cname}.log`, ...config },
      }, 60_000);
      await podshim.cri.runtime("StartContainer", { container_id: id }, 60_000);
      return id;
    },
    async cleanup() {
      await podshim.cri.runtime("RemovePodSandbox", { pod_sandbox_id: pod }, 60_000).catch((err: unknown) => console.error("RemovePodSandbox failed", err, podshim.output().split("\n").slice(-15).join("\n")));
      await podshim.cleanup();
      await net.cleanup();
      rmSync(base, { recursive: true, force: true });
    },
  };
}
