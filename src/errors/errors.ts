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

// One class per kind, so each can be thrown, caught with instanceof and named as a type.
export class InvalidArgumentError extends PodshimError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorKind.InvalidArgument, message, options);
  }
}
export class NotFoundError extends PodshimError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorKind.NotFound, message, options);
  }
}
export class AlreadyExistsError extends PodshimError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorKind.AlreadyExists, message, options);
  }
}
export class FailedPreconditionError extends PodshimError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorKind.FailedPrecondition, message, options);
  }
}
export class UnavailableError extends PodshimError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorKind.Unavailable, message, options);
  }
}
export class DeadlineExceededError extends PodshimError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorKind.DeadlineExceeded, message, options);
  }
}
export class CanceledError extends PodshimError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorKind.Canceled, message, options);
  }
}
export class UnimplementedError extends PodshimError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorKind.Unimplemented, message, options);
  }
}
export class ResourceExhaustedError extends PodshimError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorKind.ResourceExhausted, message, options);
  }
}
export class UnauthenticatedError extends PodshimError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorKind.Unauthenticated, message, options);
  }
}
export class PermissionDeniedError extends PodshimError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorKind.PermissionDenied, message, options);
  }
}
export class InternalError extends PodshimError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorKind.Internal, message, options);
  }
}

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
