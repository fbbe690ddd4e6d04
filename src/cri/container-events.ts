// GetContainerEvents: a stream of CONTAINER_CREATED / STARTED / STOPPED / DELETED events, for
// containers and (with the sandbox's id) for sandboxes, each with the pod's freshly computed
// status and its containers' statuses. Many subscribers at once; one that reads too slowly is
// cut off with RESOURCE_EXHAUSTED instead of being buffered without bound.
import { ContainerEventType, type ContainerEventResponse, type GetEventsRequest } from "../gen/cri/runtime/v1/api.js";
import { LifecycleEvent } from "../lifecycle-events/container-events.js";
import type { StreamRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";
import { toCriContainerStatus } from "./container-format.js";
import { toCriSandboxStatus } from "./sandbox-format.js";

const TYPE: Record<LifecycleEvent, ContainerEventType> = {
  [LifecycleEvent.Created]: ContainerEventType.CONTAINER_CREATED_EVENT,
  [LifecycleEvent.Started]: ContainerEventType.CONTAINER_STARTED_EVENT,
  [LifecycleEvent.Stopped]: ContainerEventType.CONTAINER_STOPPED_EVENT,
  [LifecycleEvent.Deleted]: ContainerEventType.CONTAINER_DELETED_EVENT,
};

export function getContainerEvents(deps: CriDeps): StreamRpc<GetEventsRequest, ContainerEventResponse> {
  return async (_req, send, ctx) => {
    for await (const event of deps.lifecycleEvents.subscribe(ctx.signal)) {
      const sandbox = deps.sandboxes.store.find(event.sandboxId);
      await send({
        containerId: event.containerId,
        containerEventType: TYPE[event.type],
        createdAt: event.createdAt,
        podSandboxStatus: sandbox && sandbox.id === event.sandboxId ? toCriSandboxStatus(sandbox) : undefined,
        containersStatuses: deps.containers.store.inSandbox(event.sandboxId).map(toCriContainerStatus),
      });
    }
  };
}
