// grpc.health.v1.Health on the CRI socket, for grpc_health_probe and liveness checks. Small
// enough to own rather than add a dependency: Check answers the current status, Watch sends
// it and then every change. "" (the server as a whole) and each CRI service are known names.
import { status as Status, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { HealthCheckResponse_ServingStatus as ServingStatus, HealthService, type HealthCheckRequest, type HealthCheckResponse } from "../gen/grpc/health/v1/health.js";
import type { ServiceBinding } from "./grpc-server.js";

export const HEALTH_SERVICES = ["", "runtime.v1.RuntimeService", "runtime.v1.ImageService"] as const;
const WATCH_POLL_MS = 1000;

export class HealthServer {
  private readonly watches = new Set<ServerWritableStream<HealthCheckRequest, HealthCheckResponse>>();
  private readonly timers = new Set<NodeJS.Timeout>();

  /** `serving` says whether podshim can serve pods now (containerd answers, state loaded). */
  constructor(private readonly serving: () => Promise<boolean>) {}

  private async status(service: string): Promise<ServingStatus | undefined> {
    if (!(HEALTH_SERVICES as readonly string[]).includes(service)) return undefined;
    const ok = await this.serving().catch(() => false);
    return ok ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  }

  binding(): ServiceBinding {
    const implementation: UntypedServiceImplementation = {
      check: (call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, callback: sendUnaryData<HealthCheckResponse>) => {
        void this.status(call.request.service).then((s) => {
          if (s === undefined) callback({ code: Status.NOT_FOUND, details: `unknown service "${call.request.service}"` });
          else callback(null, { status: s });
        });
      },
      // The protocol's Watch: an unknown service is SERVICE_UNKNOWN on the stream, not an error.
      watch: (call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
        this.watches.add(call);
        let last: ServingStatus | undefined;
        let timer: NodeJS.Timeout | undefined;
        const done = () => {
          clearTimeout(timer);
          if (timer) this.timers.delete(timer);
          this.watches.delete(call);
        };
        call.on("cancelled", done);
        const tick = async () => {
          const s = (await this.status(call.request.service)) ?? ServingStatus.SERVICE_UNKNOWN;
          if (!this.watches.has(call)) return;
          if (s !== last) {
            last = s;
            call.write({ status: s });
          }
          timer = setTimeout(() => void tick(), WATCH_POLL_MS);
          this.timers.add(timer);
        };
        void tick();
      },
    };
    return { definition: HealthService, implementation };
  }

  /** Ends every Watch so the server's drain is not held open by them (shutdown). */
  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const call of this.watches) call.end();
    this.watches.clear();
  }
}
