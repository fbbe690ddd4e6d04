// Typed errors for the whole daemon. The domain throws these; exactly one table
// (server/status.ts) turns them into gRPC status codes, and exactly one function
// (containerd/errors.ts) turns containerd's status codes into them.

export const ErrorKind = {
  InvalidArgument: "InvalidArgument",
  NotFound: "NotFound",
  AlreadyExists: "AlreadyExists",
  FailedPrecondition: "FailedPrecondition",
  Unavailable: "Unavailable",
  DeadlineExceeded: "DeadlineExceeded",
  Canceled: "Canceled",
  Unimplemented: "Unimplemented",
  ResourceExhausted: "ResourceExhausted",
  Unauthenticated: "Unauthenticated",
  PermissionDenied: "PermissionDenied",
  Internal: "Internal",
} as const;
export type ErrorKind = (typeof ErrorKind)[keyof typeof ErrorKind];

export class PodshimError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.name = `${kind}Error`;
  }
}

function kindOf(kind: ErrorKind) {
  return class extends PodshimError {
    constructor(message: string, options?: { cause?: unknown }) {
      super(kind, message, options);
    }
  };
}

export const InvalidArgumentError = kindOf(ErrorKind.InvalidArgument);
export const NotFoundError = kindOf(ErrorKind.NotFound);
export const AlreadyExistsError = kindOf(ErrorKind.AlreadyExists);
export const FailedPreconditionError = kindOf(ErrorKind.FailedPrecondition);
export const UnavailableError = kindOf(ErrorKind.Unavailable);
export const DeadlineExceededError = kindOf(ErrorKind.DeadlineExceeded);
export const CanceledError = kindOf(ErrorKind.Canceled);
export const UnimplementedError = kindOf(ErrorKind.Unimplemented);
export const ResourceExhaustedError = kindOf(ErrorKind.ResourceExhausted);
export const UnauthenticatedError = kindOf(ErrorKind.Unauthenticated);
export const PermissionDeniedError = kindOf(ErrorKind.PermissionDenied);
export const InternalError = kindOf(ErrorKind.Internal);

export function isKind(err: unknown, kind: ErrorKind): err is PodshimError {
  return err instanceof PodshimError && err.kind === kind;
}

export function isNotFound(err: unknown): err is PodshimError {
  return isKind(err, ErrorKind.NotFound);
}

export function isAlreadyExists(err: unknown): err is PodshimError {
  return isKind(err, ErrorKind.AlreadyExists);
}

/** The message of anything thrown, for logs and wrapped errors. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
