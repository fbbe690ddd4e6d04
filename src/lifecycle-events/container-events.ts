// Lifecycle events of containers and sandboxes for GetContainerEvents subscribers. Services
// publish plain facts (which object, which transition); each subscriber gets them in order
// through a bounded queue. A subscriber that falls that far behind is cut off with an error
// rather than buffered without end: it resubscribes and relists, as the kubelet's evented PLEG
// does after a broken stream.
import { ResourceExhaustedError } from "../errors/errors.js";
import { nowUnixNanos } from "../util/clock.js";
import { countEventsDropped } from "../metrics/metrics.js";

export const LifecycleEvent = { Created: "created", Started: "started", Stopped: "stopped", Deleted: "deleted" } as const;
export type LifecycleEvent = (typeof LifecycleEvent)[keyof typeof LifecycleEvent];

export interface ContainerEvent {
  /** The container's id, or the sandbox's for events of the sandbox itself. */
  containerId: string;
  sandboxId: string;
  type: LifecycleEvent;
  /** Nanoseconds since the epoch. */
  createdAt: bigint;
}

/** Events a subscriber may have waiting before it is cut off. */
export const MAX_PENDING_EVENTS = 1024;

interface Subscriber {
  queue: ContainerEvent[];
  wake: (() => void) | undefined;
  failed: Error | undefined;
}

export class ContainerEventHub {
  private readonly subscribers = new Set<Subscriber>();
  private closed = false;

  /** Ends every subscription (podshim is shutting down): streams complete instead of holding
   * the server's drain open. */
  close(): void {
    this.closed = true;
    for (const sub of this.subscribers) sub.wake?.();
  }

  publish(containerId: string, sandboxId: string, type: LifecycleEvent): void {
    if (this.subscribers.size === 0) return;
    const event: ContainerEvent = { containerId, sandboxId, type, createdAt: nowUnixNanos() };
    for (const sub of this.subscribers) {
      if (sub.failed) {
        countEventsDropped(1);
        continue;
      }
      if (sub.queue.length >= MAX_PENDING_EVENTS) {
        sub.failed = new ResourceExhaustedError(`the event stream fell ${MAX_PENDING_EVENTS} events behind and was closed; subscribe again and relist`);
        countEventsDropped(sub.queue.length + 1);
        sub.queue.length = 0;
      } else sub.queue.push(event);
      sub.wake?.();
    }
  }

  /** Events from now on, until `signal` aborts; throws when the subscriber falls too far behind. */
  async *subscribe(signal: AbortSignal): AsyncGenerator<ContainerEvent> {
    const sub: Subscriber = { queue: [], wake: undefined, failed: undefined };
    this.subscribers.add(sub);
    const onAbort = (): void => sub.wake?.();
    signal.addEventListener("abort", onAbort);
    try {
      for (;;) {
        if (sub.failed) throw sub.failed;
        const next = sub.queue.shift();
        if (next) {
          yield next;
          continue;
        }
        if (signal.aborted || this.closed) return;
        await new Promise<void>((resolve) => (sub.wake = resolve));
        sub.wake = undefined;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.subscribers.delete(sub);
    }
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }
}
