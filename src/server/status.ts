import { status as Status } from "@grpc/grpc-js";
import { ErrorKind, PodshimError, messageOf } from "../errors/errors.js";

// The one table from typed errors to gRPC codes. Handlers never build a status themselves.
const CODES: Record<ErrorKind, Status> = {
  [ErrorKind.InvalidArgument]: Status.INVALID_ARGUMENT,
  [ErrorKind.NotFound]: Status.NOT_FOUND,
  [ErrorKind.AlreadyExists]: Status.ALREADY_EXISTS,
  [ErrorKind.FailedPrecondition]: Status.FAILED_PRECONDITION,
  [ErrorKind.Unavailable]: Status.UNAVAILABLE,
  [ErrorKind.DeadlineExceeded]: Status.DEADLINE_EXCEEDED,
  [ErrorKind.Canceled]: Status.CANCELLED,
  [ErrorKind.Unimplemented]: Status.UNIMPLEMENTED,
  [ErrorKind.ResourceExhausted]: Status.RESOURCE_EXHAUSTED,
  [ErrorKind.Unauthenticated]: Status.UNAUTHENTICATED,
  [ErrorKind.PermissionDenied]: Status.PERMISSION_DENIED,
  [ErrorKind.Internal]: Status.INTERNAL,
};

export interface GrpcStatus {
  code: Status;
  details: string;
}

/** Anything thrown by a handler -> the status the client sees. Unknown errors are INTERNAL. */
export function toGrpcStatus(err: unknown): GrpcStatus {
  if (err instanceof PodshimError) return { code: CODES[err.kind], details: err.message };
  return { code: Status.INTERNAL, details: `internal error: ${messageOf(err)}` };
}

export function codeName(code: Status): string {
  return Status[code] ?? String(code);
}
