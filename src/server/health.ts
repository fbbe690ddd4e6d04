// grpc.health.v1.Health on the CRI socket, for grpc_health_probe and liveness checks. Small
// enough to own rather than add a dependency: Check answers the current status, Watch sends
// it and then every change. "" (the server as a whole) and each CRI service are known names.
import { status as Status } from "@grpc/grpc-js";
import { HealthCheckResponse_ServingStatus as ServingStatus, HealthService, type HealthCheckRequest, type HealthCheckResponse } from "../gen/grpc/health/v1/health.js";
import { sleep } from "../util/timeout.js";
import type { ServerCall, ServiceBinding, StreamMethod, UnaryMethod } from "./grpc-server.js";

export const HEALTH_SERVICES = ["", "runtime.v1.RuntimeService", "runtime.v1.ImageService"] as const;
const WATCH_POLL_MS = 1000;

export class HealthServer {
  /** Aborted on shutdown: ends every Watch. */
  private readonly closing = new AbortController();

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
    const ended = AbortSignal.any([call.signal, this.closing.signal]);
    let last: ServingStatus | undefined;
    while (!ended.aborted) {
      const s = (await this.status(service)) ?? ServingStatus.SERVICE_UNKNOWN;
      if (s !== last && !call.signal.aborted) {
        last = s;
        await send({ status: s });
      }
      await sleep(WATCH_POLL_MS, ended);
    }
  }

  /** Ends every Watch so the server's drain is not held open by them (shutdown). */
  close(): void {
    this.closing.abort();
  }
}
