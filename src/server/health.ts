// grpc.health.v1.Health on the CRI socket, for grpc_health_probe and liveness checks. Small
// enough to own rather than add a dependency: Check answers the current status, Watch sends
// it and then every change. "" (the server as a whole) and each CRI service are known names.
import { status as Status } from "@grpc/grpc-js";
import { HealthCheckResponse_ServingStatus as ServingStatus, HealthService, type HealthCheckRequest, type HealthCheckResponse } from "../gen/grpc/health/v1/health.js";
import type { ServerCall, ServiceBinding, StreamMethod, UnaryMethod } from "./grpc-server.js";

export const HEALTH_SERVICES = ["", "runtime.v1.RuntimeService", "runtime.v1.ImageService"] as const;
const WATCH_POLL_MS = 1000;

export class HealthServer {
  /** Wakes every Watch waiting for its next poll. */
  private readonly sleepers = new Set<() => void>();
  private closed = false;

  /** `serving` says whether podshim can serve pods now (containerd answers, state loaded). */
  constructor(private readonly serving: () => Promise<boolean>) {}

  private async status(service: string): Promise<ServingStatus | undefined> {
    if (!(HEALTH_SERVICES as readonly string[]).includes(service)) return undefined;
    const ok = await this.serving().catch(() => false);
    return ok ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  }

  binding(): ServiceBinding {
    const check: UnaryMethod = async (call): Promise<HealthCheckResponse> => {
      const { service } = call.request as HealthCheckRequest;
      const s = await this.status(service);
      if (s === undefined) throw { code: Status.NOT_FOUND, details: `unknown service "${service}"` };
      return { status: s };
    };
    const watch: StreamMethod = (call, send) => this.watch(call, send);
    return { definition: HealthService, implementation: { check, watch } };
  }

  /** The protocol's Watch: the status now and then every change; an unknown service is
   * SERVICE_UNKNOWN on the stream, not an error. */
  private async watch(call: ServerCall, send: (m: HealthCheckResponse) => Promise<void>): Promise<void> {
    const { service } = call.request as HealthCheckRequest;
    let last: ServingStatus | undefined;
    while (!call.signal.aborted && !this.closed) {
      const s = (await this.status(service)) ?? ServingStatus.SERVICE_UNKNOWN;
      if (s !== last && !call.signal.aborted) {
        last = s;
        await send({ status: s });
      }
      await this.nextPoll(call.signal);
    }
  }

  /** Resolves after the poll interval, or at once when the call ends or the server closes. */
  private nextPoll(signal: AbortSignal): Promise<void> {
    if (this.closed || signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", wake);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, WATCH_POLL_MS);
      signal.addEventListener("abort", wake, { once: true });
      this.sleepers.add(wake);
    });
  }

  /** Ends every Watch so the server's drain is not held open by them (shutdown). */
  close(): void {
    this.closed = true;
    for (const wake of [...this.sleepers]) wake();
  }
}
