// The Stream* variants of the list calls (ListContainers -> StreamContainers, ...): the same
// result as the unary call, taken at one moment, sent as consecutive messages of at most
// BATCH_BYTES each so that no message nears the 16 MiB gRPC limit however many items there
// are. Each response message has one field, the repeated items, as in the unary response.
import { batchesOf, PreEncoded, repeatedMessageField, type Encoded } from "../rpc/pre-encoded.js";

export const BATCH_BYTES = 1024 * 1024;

export async function sendInBatches(items: readonly Encoded[], fieldNumber: number, send: (msg: PreEncoded) => Promise<void>): Promise<void> {
  for (const batch of batchesOf(items, BATCH_BYTES)) await send(new PreEncoded(repeatedMessageField(fieldNumber, batch)));
}

/** Items of a list call's result, encoded one by one and streamed in batches. */
export function sendListInBatches<T>(items: readonly T[], encode: (item: T) => Encoded, fieldNumber: number, send: (msg: PreEncoded) => Promise<void>): Promise<void> {
  return sendInBatches(items.map(encode), fieldNumber, send);
}
