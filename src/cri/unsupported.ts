// Calls podshim answers on purpose with UNIMPLEMENTED, each saying why, so that an operator
// (or a kubelet feature gate) learns what is missing rather than a bare "not implemented".
// Checkpoint/restore needs CRIU driven through the runtime and an archive format that
// podshim does not produce.
import { UnimplementedError } from "../errors/errors.js";
import type { UnaryRpc } from "../rpc/handlers.js";

function refuse(message: string): UnaryRpc<unknown, never> {
  return async () => {
    throw new UnimplementedError(message);
  };
}

export const checkpointContainer = (): UnaryRpc<unknown, never> =>
  refuse("CheckpointContainer is not supported by podshim: it has no CRIU checkpoint/restore support (the kubelet's ContainerCheckpoint feature needs a runtime that has)");

export const checkpointPod = (): UnaryRpc<unknown, never> =>
  refuse("CheckpointPod is not supported by podshim: it has no CRIU checkpoint/restore support");

export const restorePod = (): UnaryRpc<unknown, never> =>
  refuse("RestorePod is not supported by podshim: it has no CRIU checkpoint/restore support");
