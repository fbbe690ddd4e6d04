import type { ContainerService } from "../container/container-service.js";
import type { ContainerRecord } from "../container/container-store.js";
import type { ContainerConfig, PodSandboxConfig } from "../gen/cri/runtime/v1/api.js";
import type { SandboxService } from "../sandbox/sandbox-service.js";
import type { SandboxRecord } from "../sandbox/sandbox-store.js";
import { KeyedLock } from "../util/keyed-lock.js";

/**
 * The one owner of a pod: its sandbox and the containers in it. Stop, remove, and creating
 * or starting a container in the pod all hold the pod's lock, so a container can never be
 * created into (or started in) a pod that is being stopped or removed. The CRI handlers only
 * translate; what happens to a pod as a whole is decided here.
 */
export class PodService {
  private readonly lock = new KeyedLock();

  constructor(
    private readonly sandboxes: SandboxService,
    private readonly containers: ContainerService,
  ) {}

  /** RunPodSandbox: a new id, so no lock to take; retries are merged by the sandbox service. */
  run(config: PodSandboxConfig, runtimeHandler: string): Promise<SandboxRecord> {
    return this.sandboxes.run(config, runtimeHandler);
  }

  /** StopPodSandbox: its containers are killed, then the pause container and the network
   * go. An unknown pod is not an error (the kubelet retries stops). */
  async stop(idOrPrefix: string): Promise<void> {
    const pod = this.sandboxes.store.find(idOrPrefix);
    if (!pod) return;
    await this.lock.run(pod.id, async () => {
      await this.containers.stopAllIn(pod.id);
      await this.sandboxes.stopSandbox(pod.id);
    });
  }

  /** RemovePodSandbox: its containers, then the sandbox itself. Unknown is not an error. */
  async remove(idOrPrefix: string): Promise<void> {
    const pod = this.sandboxes.store.find(idOrPrefix);
    if (!pod) return;
    await this.lock.run(pod.id, async () => {
      await this.containers.removeAllIn(pod.id);
      await this.sandboxes.remove(pod.id);
    });
  }

  /** CreateContainer: only into a pod that is ready, checked under the pod's lock. */
  async createContainer(podIdOrPrefix: string, config: ContainerConfig): Promise<ContainerRecord> {
    const pod = this.sandboxes.get(podIdOrPrefix);
    return this.lock.run(pod.id, () => this.containers.create(pod.id, config));
  }

  /** StartContainer: the pod must still be ready when the task starts. */
  async startContainer(idOrPrefix: string): Promise<void> {
    const c = this.containers.get(idOrPrefix);
    await this.lock.run(c.sandboxId, () => this.containers.start(c.id));
  }
}
