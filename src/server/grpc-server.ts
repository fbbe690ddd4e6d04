import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { chmod, lstat } from "node:fs/promises";
import type { Logger } from "../logger/logger.js";
import { prepareSocketPath, removeSocket } from "./socket.js";

export interface ServiceBinding {
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
}

// The kubelet's CRI client allows 16 MiB messages; match it in both directions.
const MAX_MESSAGE = 16 * 1024 * 1024;
const SOCKET_MODE = 0o660;

/** The CRI gRPC server on its unix socket. */
export class CriServer {
  private readonly server = new Server({
    "grpc.max_receive_message_length": MAX_MESSAGE,
    "grpc.max_send_message_length": MAX_MESSAGE,
    // channelz (a debugging service podshim never registers) tracks every call and socket.
    "grpc.enable_channelz": 0,
  });
  private socketIno: number | undefined;

  constructor(
    private readonly path: string,
    private readonly logger: Logger,
  ) {}

  add(binding: ServiceBinding): void {
    this.server.addService(binding.definition, binding.implementation);
  }

  /** Fails when a live server holds the socket; removes a stale one. */
  async checkSocket(): Promise<void> {
    await prepareSocketPath(this.path);
  }

  async listen(): Promise<void> {
    await prepareSocketPath(this.path);
    // The umask makes the socket 0660 from its first moment; the chmod makes it so whatever
    // the umask was.
    const umask = process.umask(0o117);
    try {
      await new Promise<void>((resolve, reject) => {
        this.server.bindAsync(`unix://${this.path}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
      });
    } finally {
      process.umask(umask);
    }
    await chmod(this.path, SOCKET_MODE);
    this.socketIno = (await lstat(this.path)).ino;
  }

  /**
   * Stops accepting calls, lets in-flight ones finish for up to graceMs, then cancels the
   * rest; removes the socket. Resolves to whether every call finished in time.
   */
  async stop(graceMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const drained = new Promise<boolean>((resolve) => this.server.tryShutdown(() => resolve(true)));
    const expired = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), graceMs);
    });
    const clean = await Promise.race([drained, expired]);
    clearTimeout(timer);
    if (!clean) {
      this.logger.warn({ graceMs }, "in-flight calls did not finish in time; cancelling them");
      this.server.forceShutdown();
    }
    await removeSocket(this.path, this.socketIno);
    return clean;
  }
}
