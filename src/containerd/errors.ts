import { status as Status, type ServiceError } from "@grpc/grpc-js";
import {
  AlreadyExistsError, CanceledError, DeadlineExceededError, FailedPreconditionError, InternalError,
  InvalidArgumentError, NotFoundError, PodshimError, ResourceExhaustedError, UnavailableError,
  UnimplementedError, PermissionDeniedError, UnauthenticatedError,
} from "../errors/errors.js";

const BY_CODE: Partial<Record<Status, new (m: string, o?: { cause?: unknown }) => PodshimError>> = {
  [Status.NOT_FOUND]: NotFoundError,
  [Status.ALREADY_EXISTS]: AlreadyExistsError,
  [Status.INVALID_ARGUMENT]: InvalidArgumentError,
  [Status.FAILED_PRECONDITION]: FailedPreconditionError,
  [Status.UNAVAILABLE]: UnavailableError,
  [Status.DEADLINE_EXCEEDED]: DeadlineExceededError,
  [Status.CANCELLED]: CanceledError,
  [Status.UNIMPLEMENTED]: UnimplementedError,
  [Status.RESOURCE_EXHAUSTED]: ResourceExhaustedError,
  [Status.PERMISSION_DENIED]: PermissionDeniedError,
  [Status.UNAUTHENTICATED]: UnauthenticatedError,
};

/**
 * The one place where containerd's gRPC status becomes a typed podshim error. `what`
 * names the containerd call (Containers.Get) so the message says where it failed.
 */
export function fromContainerdError(err: unknown, what: string, socket: string): PodshimError {
  if (err instanceof PodshimError) return err;
  const e = err as Partial<ServiceError>;
  if (typeof e.code !== "number") return new InternalError(`containerd ${what}: ${String((err as Error)?.message ?? err)}`, { cause: err });
  // grpc-js appends an empty "Resolution note:" to connection errors; it tells a person nothing.
  const details = (e.details || e.message || "no details").replace(/\.?\s*Resolution note:\s*$/, "");
  if (e.code === Status.UNAVAILABLE) {
    return new UnavailableError(`containerd is not reachable at ${socket} (${what}: ${details})`, { cause: err });
  }
  const Kind = BY_CODE[e.code as Status] ?? InternalError;
  return new Kind(`containerd ${what}: ${details}`, { cause: err });
}
