import { randomBytes } from "node:crypto";
import { EventsService } from "../gen/containerd/services/events/v1/events.js";
import { TaskExit, TaskOOM } from "../gen/containerd/events/task.js";
import type { Envelope } from "../gen/containerd/types/event.js";
import { messageOf, UnavailableError } from "../errors/errors.js";
import type { Logger } from "../logger/logger.js";
import { deferred, type Deferred } from "../util/deferred.js";
import { sleep } from "../util/timeout.js";
import type { ContainerdClient } from "./client.js";

/** What the services learn from containerd's event stream, decoded once here. */
export type TaskEvent =
  | {
      kind: "exit";
      containerId: string;
      /** The exited process: the container's own when it equals containerId, else an exec. */
      processId: string;
      exitStatus: number;
      /** Nanoseconds since the epoch; 0n when containerd gave no time. */
      exitedAt: bigint;
    }
  | { kind: "oom"; containerId: string };

export type TaskEventHandler = (event: TaskEvent) => void;

const TOPICS = { exit: "/tasks/exit", oom: "/tasks/oom" } as const;
// podshim publishes a marker on this topic to learn that its subscription is live.
const SYNC_TOPIC = "/podshim/subscribed";
const SYNC_TYPE_URL = "podshim.io/SubscriptionMarker";
const SYNC_TIMEOUT_MS = 5000;

/** An envelope as a TaskEvent; undefined for anything podshim does not act on. */
export function decodeTaskEvent(env: Envelope): TaskEvent | undefined {
  const any = env.event;
  if (!any) return undefined;
  if (env.topic === TOPICS.exit || any.typeUrl.endsWith("containerd.events.TaskExit")) {
    const e = TaskExit.decode(any.value);
    const exitedAt = e.exitedAt ? e.exitedAt.seconds * 1_000_000_000n + BigInt(e.exitedAt.nanos) : 0n;
    return { kind: "exit", containerId: e.containerId, processId: e.id, exitStatus: e.exitStatus, exitedAt };
  }
  if (env.topic === TOPICS.oom || any.typeUrl.endsWith("containerd.events.TaskOOM")) {
    return { kind: "oom", containerId: TaskOOM.decode(any.value).containerId };
  }
  return undefined;
}

/**
 * One subscription to containerd's task events for podshim's namespace, re-established with
 * backoff whenever containerd goes away. `subscribed()` resolves once containerd has
 * delivered a marker podshim published after subscribing, so recovery can list state
 * knowing that no exit from then on is missed. After a reconnect `onResync` runs, because
 * events sent while the stream was down are lost and state must be re-read.
 */
export class EventMonitor {
  private stopped = false;
  private started = false;
  private readonly controller = new AbortController();
  private live: Deferred<void> = deferred<void>();
  private marker = "";

  constructor(
    private readonly client: ContainerdClient,
    private readonly logger: Logger,
    private readonly handle: TaskEventHandler,
    private readonly onResync: () => Promise<void>,
  ) {}

  /** Starts the subscription once; later calls are no-ops. */
  start(): void {
    if (this.started) return;
    this.started = true;
    void this.loop();
  }

  /** Resolves when the current subscription is known to receive events. */
  async subscribed(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new UnavailableError(`containerd's event stream did not confirm the subscription within ${SYNC_TIMEOUT_MS / 1000} s`)), SYNC_TIMEOUT_MS);
    });
    try {
      await Promise.race([this.live.promise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  stop(): void {
    this.stopped = true;
    this.controller.abort();
  }

  private async loop(): Promise<void> {
    let backoff = 100;
    let first = true;
    while (!this.stopped) {
      const topics = [TOPICS.exit, TOPICS.oom, SYNC_TOPIC];
      const filters = topics.map((t) => `namespace==${this.client.namespace},topic==${JSON.stringify(t)}`);
      const stream = this.client.serverStream(EventsService.subscribe, { filters }, { signal: this.controller.signal, namespace: null });
      try {
        // Events sent while the stream was down are lost: re-read state once subscribed
        // again. A handler may see an event twice around this point; handlers are idempotent.
        const resync = !first;
        void this.confirm().then(() => {
          backoff = 100;
          if (resync) this.onResync().catch((err) => this.logger.warn({ err: messageOf(err) }, "resync after event stream reconnect failed"));
        }, (err) => this.logger.debug({ err: messageOf(err) }, "could not confirm the event subscription"));
        for await (const env of stream) this.receive(env as Envelope);
      } catch (err) {
        if (this.stopped) return;
        this.logger.debug({ err: messageOf(err) }, "containerd event stream broke; reconnecting");
      }
      if (this.live.settled) this.live = deferred<void>();
      first = false;
      await sleep(backoff, this.controller.signal);
      backoff = Math.min(backoff * 2, 2000);
    }
  }

  private receive(env: Envelope): void {
    if (env.topic === SYNC_TOPIC) {
      if (env.event && Buffer.from(env.event.value).toString() === this.marker) this.live.resolve();
      return;
    }
    const event = decodeTaskEvent(env);
    if (event) this.handle(event);
  }

  /** Publishes markers until one comes back on the stream (the subscription may take a
   * moment to register after the call is made). */
  private async confirm(): Promise<void> {
    const live = this.live;
    this.marker = randomBytes(8).toString("hex");
    for (let i = 0; i < 50 && !live.settled && !this.stopped; i++) {
      await this.client.call(EventsService.publish, { topic: SYNC_TOPIC, event: { typeUrl: SYNC_TYPE_URL, value: Buffer.from(this.marker) } }, { timeoutMs: 2000 });
      await Promise.race([live.promise, sleep(100, this.controller.signal)]);
    }
  }
}
