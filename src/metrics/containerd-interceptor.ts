// A grpc-js client interceptor that times every streaming containerd call,
// from start to final status, labelled by containerd service and method.
import { InterceptingCall, status as Status, type Interceptor } from "@grpc/grpc-js";
import { observeContainerdCall } from "./metrics.js";

const CODE_NAMES = new Map<number, string>(Object.entries(Status).filter(([, v]) => typeof v === "number").map(([k, v]) => [v as number, k]));

/** "/containerd.services.tasks.v1.Tasks/Start" -> ["Tasks", "Start"] */
export function splitPath(path: string): [string, string] {
  const [service = "", method = ""] = path.replace(/^\//, "").split("/");
  return [service.split(".").pop() ?? service, method];
}

export const containerdMetricsInterceptor: Interceptor = (options, nextCall) => {
  const [service, method] = splitPath(options.method_definition.path);
  const started = performance.now();
  return new InterceptingCall(nextCall(options), {
    start(metadata, _listener, next) {
      // A partial listener: grpc-js passes the other events through and hands us next().
      next(metadata, {
        onReceiveStatus(s, nextStatus) {
          observeContainerdCall(service, method, CODE_NAMES.get(s.code) ?? String(s.code), (performance.now() - started) / 1000);
          nextStatus(s);
        },
      });
    },
  });
};

/** The same record for a unary call made outside grpc-js (containerd/grpc-channel.ts). */
export function observeContainerdUnaryCall(path: string, code: number, seconds: number): void {
  const [service, method] = splitPath(path);
  observeContainerdCall(service, method, CODE_NAMES.get(code) ?? String(code), seconds);
}
