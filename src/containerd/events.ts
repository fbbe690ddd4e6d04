import { EventsService } from "../gen/containerd/services/events/v1/events.js";
import type { Envelope } from "../gen/containerd/types/event.js";
import { messageOf } from "../errors/errors.js";
import type { Logger } from "../log/logger.js";
import { sleep } from "../util/timeout.js";
import type { ContainerdClient } from "./client.js";

export type EventHandler = (env: Envelope) => void;

/**
 * One subscription to containerd's event stream for podshim's namespace, re-established with
 * backoff whenever containerd goes away. After a reconnect `onResync` runs, because events
 * sent while the stream was down are lost and state must be re-read.
 */
export class EventMonitor {
  private stopped = false;
  private started = false;
  private readonly controller = new AbortController();

  constructor(
    private readonly client: ContainerdClient,
    private readonly logger: Logger,
    private readonly topics: string[],
    private readonly handle: EventHandler,
    private readonly onResync: () => Promise<void>,
  ) {}

  /** Starts the subscription once; later calls are no-ops. */
  start(): void {
    if (this.started) return;
    this.started = true;
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.controller.abort();
  }

  private async loop(): Promise<void> {
    let backoff = 100;
    let first = true;
    while (!this.stopped) {
      const filters = this.topics.map((t) => `namespace==${this.client.namespace},topic==${JSON.stringify(t)}`);
      const stream = this.client.serverStream(EventsService.subscribe, { filters }, { signal: this.controller.signal, namespace: null });
      try {
        // Events sent while the stream was down are lost: re-read state once subscribed
        // again. A handler may see an event twice around this point; handlers are idempotent.
        if (!first) this.onResync().catch((err) => this.logger.warn({ err: messageOf(err) }, "resync after event stream reconnect failed"));
        stream.once("data", () => (backoff = 100));
        for await (const env of stream) this.handle(env as Envelope);
      } catch (err) {
        if (this.stopped) return;
        this.logger.debug({ err: messageOf(err) }, "containerd event stream broke; reconnecting");
      }
      first = false;
      await sleep(backoff, this.controller.signal);
      backoff = Math.min(backoff * 2, 2000);
    }
  }
}
