import { InvalidArgumentError } from "../errors/errors.js";

/**
 * The peer broke the SPDY/3 framing or header rules. The session answers with GOAWAY
 * PROTOCOL_ERROR and closes; it is never thrown past the session, because a bad client must
 * not be able to hurt anything but its own connection.
 */
export class SpdyProtocolError extends InvalidArgumentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SpdyProtocolError";
  }
}
