// The HTTP/1.1 upgrade to SPDY/3.1 as Kubernetes' httpstream negotiates it: the protocol
// offer, the refusals it answers with, and the 101 that hands the socket to a SpdySession.
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";

export const SPDY_UPGRADE = "SPDY/3.1";

const PROTOCOL_HEADER = "X-Stream-Protocol-Version";
const ACCEPTED_PROTOCOLS_HEADER = "X-Accepted-Stream-Protocol-Versions";

/**
 * Negotiates the HTTP/1.1 upgrade the way Kubernetes' httpstream.Handshake and the SPDY
 * response upgrader do, in their order:
 *  1. no X-Stream-Protocol-Version offered → 400;
 *  2. the client's offers (repeated headers and/or comma lists, in the client's order) are
 *     matched against `supported`; the first OFFER that is supported wins (Handshake's loop
 *     runs over the client's list; its doc comment says otherwise, the code is what peers see).
 *     No match → 403 with one X-Accepted-Stream-Protocol-Versions header per supported protocol;
 *  3. `Connection` must contain "upgrade" and `Upgrade` "spdy/3.1" (case-insensitive) → else 400.
 * On success writes the 101 (whose X-Stream-Protocol-Version client-go requires) and returns
 * the chosen protocol; the caller then hands socket and head to a SpdySession. On failure the
 * error response is written, the socket ended, and undefined returned.
 * Meant for the http.Server 'upgrade' event, where the socket is raw and has no error listener.
 */
export function acceptSpdyUpgrade(req: IncomingMessage, socket: Duplex, supported: readonly string[]): string | undefined {
  // Node drops its own error listener from upgraded sockets; an EPIPE must not crash podshim.
  if (!socket.listeners("error").includes(ignoreError)) socket.on("error", ignoreError);
  if (socket.destroyed || socket.writableEnded) return undefined; // the client already left
  const offered = offeredProtocols(req);
  if (offered.length === 0) {
    writeHttpError(socket, 400, "Bad Request", `unable to upgrade: ${PROTOCOL_HEADER} is required`);
    return undefined;
  }
  const chosen = offered.find((p) => supported.includes(p));
  if (chosen === undefined) {
    writeHttpError(
      socket,
      403,
      "Forbidden",
      `unable to upgrade: unable to negotiate protocol: client supports [${offered.join(" ")}], server accepts [${supported.join(" ")}]`,
      supported.map((p) => [ACCEPTED_PROTOCOLS_HEADER, p] as const),
    );
    return undefined;
  }
  if (!isSpdyUpgradeRequest(req)) {
    writeHttpError(socket, 400, "Bad Request", `unable to upgrade: missing upgrade headers in request (need Connection: Upgrade and Upgrade: ${SPDY_UPGRADE})`);
    return undefined;
  }
  socket.write(
    "HTTP/1.1 101 Switching Protocols\r\n" +
      "Connection: Upgrade\r\n" +
      `Upgrade: ${SPDY_UPGRADE}\r\n` +
      `${PROTOCOL_HEADER}: ${chosen}\r\n` +
      "\r\n",
  );
  return chosen;
}

function ignoreError(): void {}

/** Every offered protocol, in the client's order: rawHeaders keeps repeated lines apart. */
function offeredProtocols(req: IncomingMessage): string[] {
  const out: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== "x-stream-protocol-version") continue;
    for (const part of raw[i + 1]!.split(",")) {
      const p = part.trim();
      if (p.length > 0) out.push(p);
    }
  }
  return out;
}

function isSpdyUpgradeRequest(req: IncomingMessage): boolean {
  const connection = String(req.headers.connection ?? "").toLowerCase();
  const upgrade = String(req.headers.upgrade ?? "").toLowerCase();
  return connection.includes("upgrade") && upgrade.includes(SPDY_UPGRADE.toLowerCase());
}

/** How long an error response waits for the client to hang up before the socket is dropped. */
const ERROR_RESPONSE_LINGER_MS = 5_000;

function writeHttpError(
  socket: Duplex,
  status: number,
  reason: string,
  message: string,
  extraHeaders: ReadonlyArray<readonly [string, string]> = [],
): void {
  const body = Buffer.from(`${message}\n`, "utf8");
  const lines = [
    `HTTP/1.1 ${status} ${reason}`,
    "Content-Type: text/plain; charset=utf-8",
    "X-Content-Type-Options: nosniff",
    ...extraHeaders.map(([k, v]) => `${k}: ${v}`),
    `Content-Length: ${body.length}`,
    "Connection: close",
  ];
  if (socket.destroyed || socket.writableEnded) return;
  socket.end(Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), body]));
  const timer = setTimeout(() => socket.destroy(), ERROR_RESPONSE_LINGER_MS);
  timer.unref();
  socket.once("close", () => clearTimeout(timer));
}
