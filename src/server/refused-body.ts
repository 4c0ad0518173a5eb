import type { IncomingMessage, ServerResponse } from "node:http";
import { constants as http2constants, type Http2ServerRequest } from "node:http2";

/**
 * Refusing a request whose body is still arriving (too large, unauthenticated, malformed): what
 * the plain-HTTP endpoints (OFREP, the Alertmanager receiver) do so that a refused upload costs
 * the server a bounded read, never the whole body.
 */

/** A request with a body still (possibly) on the wire: a declared length or a chunked body, not yet all read. */
export function bodyPending(req: IncomingMessage | Http2ServerRequest): boolean {
  if (req.complete) return false;
  if ("stream" in req) return !req.stream.readableEnded;
  const length = req.headers["content-length"];
  return (length !== undefined && length !== "0") || req.headers["transfer-encoding"] !== undefined;
}

/**
 * After a refusal answered while the body is still coming: stop reading it. HTTP/1.1 answers
 * with `connection: close` (set by the caller) and the socket is destroyed once the answer is
 * flushed — never read to the end to keep the connection; HTTP/2 closes the stream with
 * RST_STREAM NO_ERROR once the answer is sent (RFC 9113 §8.1: the client stops sending, the
 * answer stands). Until then at most `budget` more body bytes are read (checked per chunk the
 * socket delivers); past it the connection (or stream) goes at once.
 */
export function stopReading(req: IncomingMessage | Http2ServerRequest, res: ServerResponse, budget: number): void {
  const cut = () => {
    if ("stream" in req) {
      if (!req.stream.closed) req.stream.close(http2constants.NGHTTP2_NO_ERROR);
    } else {
      req.socket.destroy();
    }
  };
  let read = 0;
  req.on("data", (c: Buffer) => {
    read += c.length;
    if (read > budget) cut();
  });
  req.resume();
  // HTTP/2: the stream is reset once the answer is out. HTTP/1.1: the server's lingering close
  // (http1-drain.ts, for every HTTP/1.1 request) ends the socket after the answer and reads the
  // rest of the body within `budget` (the cut above), so that a client that sends its whole body
  // before reading gets the answer, not a reset.
  if ("stream" in req) {
    res.once("finish", () => {
      if (!req.complete) cut();
    });
  }
}

