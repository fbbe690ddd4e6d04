import type { ServiceDefinition } from "./grpc-server.js";
import { PreEncoded } from "../rpc/pre-encoded.js";

/** The service definition with every response serializer accepting PreEncoded as well. */
export function acceptPreEncoded<T extends ServiceDefinition>(def: T): T {
  const out: Record<string, unknown> = {};
  for (const [key, method] of Object.entries(def)) {
    const encode = method.responseSerialize;
    out[key] = { ...method, responseSerialize: (value: unknown) => (value instanceof PreEncoded ? value.bytes : encode(value as never)) };
  }
  return out as T;
}
