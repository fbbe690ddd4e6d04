import { describe, expect, it } from "vitest";
import { status as Status } from "@grpc/grpc-js";
import { fromContainerdError } from "../../src/containerd/errors.js";
import { methodName } from "../../src/containerd/client.js";
import { ErrorKind, InvalidArgumentError, NotFoundError } from "../../src/errors/errors.js";
import { toGrpcStatus } from "../../src/server/status.js";

describe("containerd errors -> typed errors -> gRPC status", () => {
  it.each([
    [Status.NOT_FOUND, ErrorKind.NotFound, Status.NOT_FOUND],
    [Status.ALREADY_EXISTS, ErrorKind.AlreadyExists, Status.ALREADY_EXISTS],
    [Status.FAILED_PRECONDITION, ErrorKind.FailedPrecondition, Status.FAILED_PRECONDITION],
    [Status.INVALID_ARGUMENT, ErrorKind.InvalidArgument, Status.INVALID_ARGUMENT],
    [Status.UNAVAILABLE, ErrorKind.Unavailable, Status.UNAVAILABLE],
    [Status.DEADLINE_EXCEEDED, ErrorKind.DeadlineExceeded, Status.DEADLINE_EXCEEDED],
    [Status.UNKNOWN, ErrorKind.Internal, Status.INTERNAL],
    [Status.DATA_LOSS, ErrorKind.Internal, Status.INTERNAL],
  ])("containerd code %i -> %s -> %i", (code, kind, grpcCode) => {
    const err = fromContainerdError({ code, details: "boom" }, "Containers.Get", "/run/c.sock");
    expect(err.kind).toBe(kind);
    expect(toGrpcStatus(err).code).toBe(grpcCode);
  });

  it("says where the failure came from and keeps the cause", () => {
    const cause = { code: Status.NOT_FOUND, details: 'container "x": not found' };
    const err = fromContainerdError(cause, "Containers.Get", "/run/c.sock");
    expect(err.message).toBe('containerd Containers.Get: container "x": not found');
    expect(err.cause).toBe(cause);
  });

  it("names the socket when containerd is unreachable, without grpc-js noise", () => {
    const err = fromContainerdError({ code: Status.UNAVAILABLE, details: "No connection established. Last error: connect ENOENT. Resolution note: " }, "Version.Version", "/run/c.sock");
    expect(err.message).toBe("containerd is not reachable at /run/c.sock (Version.Version: No connection established. Last error: connect ENOENT)");
  });

  it("typed errors keep their message; anything else is INTERNAL", () => {
    expect(toGrpcStatus(new NotFoundError('pod "p" not found'))).toEqual({ code: Status.NOT_FOUND, details: 'pod "p" not found' });
    expect(toGrpcStatus(new InvalidArgumentError("bad"))).toEqual({ code: Status.INVALID_ARGUMENT, details: "bad" });
    expect(toGrpcStatus(new TypeError("x is undefined"))).toEqual({ code: Status.INTERNAL, details: "internal error: x is undefined" });
  });

  it("names methods the way logs and messages show them", () => {
    expect(methodName("/containerd.services.containers.v1.Containers/Get")).toBe("Containers.Get");
  });
});
