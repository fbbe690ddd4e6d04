// The tests' CRI client. It loads proto/ through @grpc/proto-loader (protobufjs), a codec
// independent of the ts-proto code podshim serves with, so a wire mistake in either shows.
import { credentials, loadPackageDefinition, type Client, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";

const PROTO_DIR = fileURLToPath(new URL("../../proto", import.meta.url));

const definition = loadSync("cri/runtime/v1/api.proto", {
  includeDirs: [PROTO_DIR],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const pkg = loadPackageDefinition(definition) as any;

export type CriError = ServiceError;
type Call = (method: string, request?: object, deadlineMs?: number) => Promise<any>;

export interface CriClient {
  runtime: Call;
  image: Call;
  /** A server-streaming RuntimeService call (GetContainerEvents); cancel() ends it. */
  runtimeStream(method: string, request?: object): NodeJS.ReadableStream & { cancel(): void };
  /** A server-streaming ImageService call (StreamImages). */
  imageStream(method: string, request?: object): NodeJS.ReadableStream & { cancel(): void };
  close(): void;
}

export function criClient(socket: string): CriClient {
  const address = `unix://${socket}`;
  // The kubelet's limits: 16 MiB each way.
  const limits = { "grpc.max_receive_message_length": 16 * 1024 * 1024, "grpc.max_send_message_length": 16 * 1024 * 1024 };
  const runtime: Client = new pkg.runtime.v1.RuntimeService(address, credentials.createInsecure(), limits);
  const image: Client = new pkg.runtime.v1.ImageService(address, credentials.createInsecure(), limits);
  const caller = (client: any): Call => (method, request = {}, deadlineMs = 30_000) =>
    new Promise((resolve, reject) => {
      if (typeof client[method] !== "function") throw new Error(`no such CRI method ${method}`);
      client[method](request, { deadline: Date.now() + deadlineMs }, (err: ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res)));
    });
  return {
    runtime: caller(runtime),
    image: caller(image),
    runtimeStream: (method, request = {}) => (runtime as any)[method](request),
    imageStream: (method, request = {}) => (image as any)[method](request),
    close() {
      runtime.close();
      image.close();
    },
  };
}

/** The gRPC status of a rejected call, for assertions. */
export async function statusOf(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as ServiceError;
    return { code: e.code, details: e.details };
  }
  throw new Error("expected the call to fail");
}
