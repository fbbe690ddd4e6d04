import type { Handlers } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";
import { imageFsInfo } from "./image-fs-info.js";
import { listImages, streamImages } from "./image-list.js";
import { pullImage } from "./image-pull.js";
import { removeImage } from "./image-remove.js";
import { imageStatus } from "./image-status.js";
import { sandboxListRpcs } from "./sandbox-list.js";
import { removePodSandbox } from "./sandbox-remove.js";
import { runPodSandbox } from "./sandbox-run.js";
import { podSandboxStatus } from "./sandbox-status.js";
import { stopPodSandbox } from "./sandbox-stop.js";
import { runtimeConfig } from "./runtime-config.js";
import { status } from "./status.js";
import { updateRuntimeConfig } from "./update-runtime-config.js";
import { version } from "./version.js";
import { createContainer } from "./container-create.js";
import { startContainer } from "./container-start.js";
import { stopContainer } from "./container-stop.js";
import { removeContainer } from "./container-remove.js";
import { containerStatus } from "./container-status.js";
import { containerListRpcs } from "./container-list.js";
import { updateContainerResources } from "./container-update-resources.js";
import { reopenContainerLog } from "./container-reopen-log.js";
import { execSync } from "./container-exec-sync.js";
import { exec } from "./container-exec.js";
import { attach } from "./container-attach.js";
import { portForward } from "./sandbox-port-forward.js";
import { containerStats } from "./stats-container.js";
import { listContainerStats, streamContainerStats } from "./stats-container-list.js";
import { podSandboxStats } from "./stats-pod-sandbox.js";
import { listPodSandboxStats, streamPodSandboxStats } from "./stats-pod-sandbox-list.js";
import { listMetricDescriptors } from "./stats-metric-descriptors.js";
import { listPodSandboxMetrics, streamPodSandboxMetrics } from "./stats-pod-sandbox-metrics.js";
import { getContainerEvents } from "./container-events.js";
import { updatePodSandboxResources } from "./sandbox-update-resources.js";
import { checkpointContainer, checkpointPod, restorePod } from "./unsupported.js";
import { withValidation } from "./validate.js";

/** RuntimeService handlers by RPC name. What is missing here answers UNIMPLEMENTED. */
export function runtimeServiceHandlers(deps: CriDeps): Partial<Handlers> {
  const sandboxList = sandboxListRpcs(deps);
  const containerList = containerListRpcs(deps);
  return withValidation({
    unary: {
      Version: version(),
      Status: status(deps),
      RuntimeConfig: runtimeConfig(deps),
      UpdateRuntimeConfig: updateRuntimeConfig(deps),
      RunPodSandbox: runPodSandbox(deps),
      StopPodSandbox: stopPodSandbox(deps),
      RemovePodSandbox: removePodSandbox(deps),
      PodSandboxStatus: podSandboxStatus(deps),
      ListPodSandbox: sandboxList.list,
      CreateContainer: createContainer(deps),
      StartContainer: startContainer(deps),
      StopContainer: stopContainer(deps),
      RemoveContainer: removeContainer(deps),
      ContainerStatus: containerStatus(deps),
      ListContainers: containerList.list,
      UpdateContainerResources: updateContainerResources(deps),
      ReopenContainerLog: reopenContainerLog(deps),
      ExecSync: execSync(deps),
      Exec: exec(deps),
      Attach: attach(deps),
      PortForward: portForward(deps),
      ContainerStats: containerStats(deps),
      ListContainerStats: listContainerStats(deps),
      PodSandboxStats: podSandboxStats(deps),
      ListPodSandboxStats: listPodSandboxStats(deps),
      ListMetricDescriptors: listMetricDescriptors(deps),
      ListPodSandboxMetrics: listPodSandboxMetrics(deps),
      UpdatePodSandboxResources: updatePodSandboxResources(deps),
      CheckpointContainer: checkpointContainer(),
      CheckpointPod: checkpointPod(),
      RestorePod: restorePod(),
    },
    stream: {
      GetContainerEvents: getContainerEvents(deps),
      StreamPodSandboxes: sandboxList.stream,
      StreamContainers: containerList.stream,
      StreamContainerStats: streamContainerStats(deps),
      StreamPodSandboxStats: streamPodSandboxStats(deps),
      StreamPodSandboxMetrics: streamPodSandboxMetrics(deps),
    },
  });
}

/** ImageService handlers by RPC name. */
export function imageServiceHandlers(deps: CriDeps): Partial<Handlers> {
  return withValidation({
    unary: {
      PullImage: pullImage(deps),
      ImageStatus: imageStatus(deps),
      ListImages: listImages(deps),
      RemoveImage: removeImage(deps),
      ImageFsInfo: imageFsInfo(deps),
    },
    stream: {
      StreamImages: streamImages(deps),
    },
  });
}
