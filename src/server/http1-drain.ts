import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";

/** Most body bytes read and dropped after an HTTP/1.1 request was answered mid-body (8 MiB). */
export const DRAIN_MAX_BYTES = 8 * 1024 * 1024;

/** Longest a refused HTTP/1.1 request's body is read and dropped before the connection goes. */
export const DRAIN_MAX_MS = 10_000;

/**
 * Makes an HTTP/1.1 request answered before its body was read to the end (connect's
 * `readMaxBytes`: 429 resource_exhausted) read and drop the rest of the body, bounded in bytes
 * and time, before its connection is closed.
 *
 * Without it the socket is closed while the client is still sending: connect stops iterating
 * an over-long body (a Readable returned early destroys its socket), and node:http destroys the
 * socket as soon as a `Connection: close` answer is written (Python's urllib always asks for
 * close). Either way the kernel resets a connection closed with unread bytes, and a client
 * that sends its whole body before reading (urllib, any client without `Expect: 100-continue`)
 * gets EPIPE or ECONNRESET instead of the answer. Here the answer is written, the sending half
 * is closed (FIN), and the rest of the body is read until it ends (then the socket goes) or
 * passes `maxBytes`/`maxMs` (then it is cut as before) — the "lingering close" of RFC 9112 §9.6.
 */
export function drainRefusedBody(req: IncomingMessage, res: ServerResponse, maxBytes = DRAIN_MAX_BYTES, maxMs = DRAIN_MAX_MS): void {
  if (req.complete || (req as Marked)[OWN_BODY] === true || !hasBody(req)) return;
  // A body that came in the packet of its headers (most requests) is parsed as soon as the
  // 'request' listeners return, before the next tick, and nothing can answer it or destroy it
  // sooner (an answer's write completes, and 'finish' fires, in a later tick): such a request is
  // complete by then and needs no lingering close. Arming the hooks only for the others spares
  // every small request two shadowing methods and their deletion, which turned the request and
  // its keep-alive socket into slow dictionary-mode objects (~4% of a Connect call's CPU).
  process.nextTick(armUnlessComplete, req, res, maxBytes, maxMs);
}

const OWN_BODY = Symbol("rollgate.readsOwnBody");
type Marked = IncomingMessage & { [OWN_BODY]?: true };

/**
 * Marks a request whose handler reads its body to the end before it answers (the Connect fast
 * path), so drainRefusedBody (called after the handlers) arms nothing for it; the handler calls
 * lingerIfIncomplete before an answer it writes sooner (a refusal).
 */
export function readsOwnBody(req: IncomingMessage): void {
  (req as Marked)[OWN_BODY] = true;
}

/** Arms the lingering close for an answer about to be written before its request's body has all come. */
export function lingerIfIncomplete(req: IncomingMessage, res: ServerResponse): void {
  if (req.complete || req.socket.destroyed || !hasBody(req)) return;
  arm(req, res, DRAIN_MAX_BYTES, DRAIN_MAX_MS);
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return !((length === undefined || length === "0") && req.headers["transfer-encoding"] === undefined);
}

function armUnlessComplete(req: IncomingMessage, res: ServerResponse, maxBytes: number, maxMs: number): void {
  if (req.complete || req.socket.destroyed) return;
  arm(req, res, maxBytes, maxMs);
}

/** Arms the lingering close of one request whose body is still arriving (see drainRefusedBody). */
function arm(req: IncomingMessage, res: ServerResponse, maxBytes: number, maxMs: number): void {
  const socket = req.socket as Socket & { destroySoon?: () => void };
  let started = false;
  let closeWanted = false;
  let timer: NodeJS.Timeout | undefined;
  const restore = () => {
    // The shadowing methods are replaced by the inherited ones, as own properties: deleting
    // them instead would turn the request and the (long-lived) socket into dictionary-mode
    // objects, slower for node:http on every later request of the connection.
    req.destroy = inherited(req, "destroy") as IncomingMessage["destroy"];
    socket.destroySoon = inherited(socket, "destroySoon") as () => void;
  };
  const cut = () => {
    clearTimeout(timer);
    restore();
    socket.destroy();
  };
  const drain = () => {
    if (started) return;
    started = true;
    timer = setTimeout(cut, maxMs);
    timer.unref();
    let left = maxBytes;
    // An async iterator returned early leaves its 'readable' listener: with one attached, the
    // stream never flows.
    req.removeAllListeners("readable");
    req.on("data", (chunk: Buffer) => {
      left -= chunk.length;
      if (left < 0) cut();
    });
    req.once("end", () => {
      clearTimeout(timer);
      restore();
      if (closeWanted) socket.destroy();
    });
    req.resume();
  };
  req.destroy = function (err?: Error) {
    if (err != null || req.complete || socket.destroyed) {
      restore();
      return req.destroy(err);
    }
    drain();
    return req;
  };
  socket.destroySoon = function () {
    if (req.complete || socket.destroyed) {
      restore();
      return socket.destroySoon?.();
    }
    closeWanted = true;
    socket.end();
    drain();
  };
  res.once("finish", () => {
    if (req.complete) restore();
    else drain();
  });
  res.once("close", () => {
    if (!started) restore();
  });
}

/** Returns what `obj[key]` is without obj's own property: the value its prototype chain gives. */
function inherited(obj: object, key: string): unknown {
  return Reflect.get(Object.getPrototypeOf(obj) as object, key, obj);
}
