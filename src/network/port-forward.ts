// Port forwarding into a pod: a TCP connection to 127.0.0.1:<port> inside the pod's network
// namespace. Node cannot enter a namespace itself, so each connection is a small helper:
// nsenter into the netns running socat between its stdio and the port. Host-network pods are
// reached directly.
import { spawn } from "node:child_process";
import { connect } from "node:net";
import { Duplex } from "node:stream";
import { FailedPreconditionError, InvalidArgumentError } from "../errors/errors.js";
import { withSbinPath } from "../util/exec.js";

/**
 * Resolves once the connection inside the pod is made (socat announces its data transfer loop
 * at -d -d), so a refused port fails here, where the caller can report it on the client's error
 * stream, instead of as a stream that just closes.
 */
export async function connectInNetns(netnsPath: string, port: number, opts: { ipv6?: boolean } = {}): Promise<Duplex> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidArgumentError(`port ${port} is not a TCP port`);
  if (netnsPath === "") return connectLocal(port);
  try {
    return await connectVia(netnsPath, port, `TCP4:127.0.0.1:${port}`);
  } catch (err) {
    // Like the kubelet's "localhost": a pod with IPv6 may listen on ::1 only.
    if (!opts.ipv6) throw err;
    return connectVia(netnsPath, port, `TCP6:[::1]:${port}`).catch(() => Promise.reject(err));
  }
}

function connectVia(netnsPath: string, port: number, target: string): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const child = spawn("nsenter", [`--net=${netnsPath}`, "--", "socat", "-d", "-d", "-", target], {
      stdio: ["pipe", "pipe", "pipe"],
      env: withSbinPath(process.env),
    });
    let stderr = "";
    let connected = false;
    const conn = Duplex.from({ readable: child.stdout!, writable: child.stdin! });
    child.stdin!.on("error", () => undefined);
    // The helper dying (a refused port, the pod going away) ends the pair early: the stream's
    // user sees the close; an 'error' with nobody listening must never take podshim down.
    conn.on("error", () => undefined);
    const failure = (): FailedPreconditionError => {
      const lines = stderr.trim().split("\n").filter((l) => / E /.test(l));
      const why = (lines.pop() ?? stderr.trim().split("\n").pop() ?? "").replace(/^.* E /, "");
      return new FailedPreconditionError(`cannot connect to port ${port} in the pod: ${why || "the connection helper failed"}`);
    };
    child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      if (stderr.length < 16_384) stderr += d;
      if (!connected && stderr.includes("starting data transfer loop")) {
        connected = true;
        resolve(conn);
      }
    });
    child.on("exit", (code) => {
      if (!connected) reject(failure());
      else if (code !== 0 && code !== null && !conn.destroyed) conn.destroy(failure());
    });
    child.on("error", (err) => {
      if (!connected) reject(err);
      else conn.destroy(err);
    });
    conn.on("close", () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    });
  });
}

function connectLocal(port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => resolve(socket));
    socket.once("error", (err) => reject(new FailedPreconditionError(`cannot connect to port ${port} on the node: ${err.message}`, { cause: err })));
  });
}
