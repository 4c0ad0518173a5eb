import { createServer as createHttp1Server, type IncomingMessage, type ServerResponse } from "node:http";
import {
  constants as h2constants,
  createSecureServer,
  createServer as createH2cServer,
  type Http2SecureServer,
  type Http2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from "node:net";
import { drainRefusedBody } from "./http1-drain.js";
import { sniffProtocol } from "./protocol-sniffer.js";
import type { TLSSocket } from "node:tls";
import type { Duplex } from "node:stream";

/**
 * A request handler for node:http and node:http2 compat requests alike, such as the one
 * `connectNodeAdapter` returns.
 */
export type OnePortHandler = (
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
) => void;

/**
 * Takes an HTTP/2 stream before the request handler sees it; returns true when it handled
 * the stream, false to pass it on to the handler.
 *
 * It must not throw: a stream whose hook throws is reset with INTERNAL_ERROR.
 */
export type OnStreamHook = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => boolean;

/** TLS material: PEM certificate chain and key, and optionally a CA bundle that makes client certificates mandatory (mTLS). */
export interface OnePortTls {
  readonly cert: Buffer | string;
  readonly key: Buffer | string;
  /** When set, clients must present a certificate signed by one of these CAs. */
  readonly clientCa?: Buffer | string;
}

/** Where and what {@link listenOnePort} serves. */
export interface OnePortOptions {
  readonly host: string;
  /** 0 picks a free port; read the real one back from the result. */
  readonly port: number;
  readonly handler: OnePortHandler;
  readonly tls?: OnePortTls;
  readonly onStream?: OnStreamHook;
  /**
   * How long an idle HTTP/1.1 keep-alive connection stays open (default 65 s: longer than the
   * 60 s idle timeout of common load balancers, so they never reuse a socket we just closed).
   */
  readonly keepAliveTimeoutMs?: number;
  /**
   * How long an HTTP/1.1 client may take to send a request's headers (default 60 s, as in
   * node:http) before it gets 408 and the connection is closed: slow-header (slowloris) guard.
   */
  readonly headersTimeoutMs?: number;
  /**
   * How long a cleartext connection may stay silent before its first bytes tell HTTP/1.1
   * from HTTP/2 (default 30 s); a silent one is closed so idle sockets cannot pile up.
   */
  readonly firstByteTimeoutMs?: number;
  /**
   * HTTP/2 keep-alive: every this many ms each HTTP/2 connection gets a PING, and one that has
   * not answered it within as long again is closed, its streams with it (0: off). A peer that
   * vanished without closing (its host froze, its network went away, its process stopped) keeps
   * its socket open and its streams subscribed forever otherwise: the kernel has nothing to say
   * until the send buffer is full, and then it just waits.
   */
  readonly keepaliveMs?: number;
  /**
   * The most streams one HTTP/2 connection may have open at once, sent in SETTINGS
   * (default {@link MAX_CONCURRENT_STREAMS}); clients queue the streams beyond it.
   */
  readonly maxConcurrentStreams?: number;
  /**
   * Rapid-reset guard (CVE-2023-44487): how many streams may end reset within a second of
   * opening, as a bucket of `burst` refilled at `perSecond` (default {@link RESET_GUARD}). A
   * connection that empties it gets GOAWAY(ENHANCE_YOUR_CALM) and is closed.
   */
  readonly resetGuard?: ResetGuard;
  /** Called when the reset guard closes a connection (to log it). */
  readonly onCalm?: (remoteAddress: string | undefined) => void;
}

/** A bucket of client resets: `burst` at most, refilled at `perSecond`. */
export interface ResetGuard {
  readonly burst: number;
  readonly perSecond: number;
}

/**
 * Default per-connection stream limit: far above what a client multiplexes (the streams soak
 * holds 2,000 WatchHealth streams per connection), far below node's default of 2^32 − 1.
 */
export const MAX_CONCURRENT_STREAMS = 4096;

/**
 * Default reset guard: 200 young streams reset at once, 100 a second after that. A client that
 * gives up on calls (deadlines, cancelled watches) stays below; nghttp2's own limit (1,000
 * RST_STREAM frames, then 33 a second) lets a burst cost the server a second or more of work
 * first, and answers it with a GOAWAY(INTERNAL_ERROR) that leaves the connection open.
 */
export const RESET_GUARD: ResetGuard = { burst: 200, perSecond: 100 };

/** A listening one-port server. */
export interface OnePortListener {
  /** `host:port` as bound, brackets around IPv6 hosts. */
  readonly address: string;
  readonly port: number;
  /**
   * Stops accepting, lets in-flight requests finish for up to `graceMs`, then destroys every
   * connection still open (open streams included) and resolves.
   */
  close(graceMs: number): Promise<void>;
  /** Returns the number of open HTTP/2 sessions. */
  sessions(): number;
  /** Returns the number of open TCP connections, whatever their protocol. */
  connections(): number;
}

/**
 * Serves `handler` on one port for gRPC, Connect, gRPC-Web and plain HTTP (docs/design.md §1).
 *
 * Cleartext: Node's `http2.createServer` speaks only h2c and `allowHTTP1` works only with TLS,
 * so a raw TCP server peeks at each connection's first bytes and hands the socket to an h2c
 * server if they are the HTTP/2 preface (prior knowledge, as gRPC clients and
 * `curl --http2-prior-knowledge` do) and to an HTTP/1.1 server otherwise.
 * TLS: one `http2.createSecureServer` with `allowHTTP1`, where ALPN chooses.
 *
 * Request size is not limited here: connect enforces its `readMaxBytes` option per message for
 * every protocol (Connect unary bodies and GET query messages, Connect/gRPC/gRPC-Web envelopes,
 * after decompression too), so pass `readMaxBytes` to `connectNodeAdapter`.
 */
export async function listenOnePort(opts: OnePortOptions): Promise<OnePortListener> {
  const conns = new Set<Duplex>();
  const sessions = new Set<Http2Session>();
  /** Sockets speaking HTTP/1.1, and how many requests each has in flight. */
  const h1Sockets = new Set<Duplex>();
  const h1Busy = new Map<Duplex, number>();
  /** Cleartext sockets whose protocol is not known yet. */
  const sniffing = new Set<Socket>();
  let draining = false;
  let onAllClosed: (() => void) | undefined;

  const forget = (socket: Duplex) => {
    conns.delete(socket);
    if (conns.size === 0) onAllClosed?.();
  };
  const track = (socket: Socket) => {
    conns.add(socket);
    // Errors on a socket with no listener would crash the process; the protocol servers
    // report and clean up their own, this only keeps the early ones harmless.
    socket.on("error", () => {});
    socket.once("close", () => forget(socket));
  };

  const handler = trackHttp1Requests(opts.handler, h1Busy, () => draining);
  const http1 = http1Timeouts(opts);
  const settings = { maxConcurrentStreams: opts.maxConcurrentStreams ?? MAX_CONCURRENT_STREAMS };
  const h2 = opts.tls === undefined ? createH2cServer({ settings }) : secureServer(opts.tls, http1, settings);
  h2.on("request", handler);
  if (opts.onStream !== undefined) routeStreamsThroughHook(h2, opts.onStream);
  const keepaliveMs = opts.keepaliveMs ?? 0;
  const guard = opts.resetGuard ?? RESET_GUARD;
  h2.on("session", (session: Http2Session) => {
    sessions.add(session);
    guardResets(session, guard, opts.onCalm);
    const stopPinging = keepaliveMs > 0 ? pingUntilClosed(session, keepaliveMs) : () => {};
    session.once("close", () => {
      sessions.delete(session);
      stopPinging();
    });
    if (draining) session.close();
  });

  let listener: NetServer | Http2SecureServer;
  let closeHttp1 = () => {};
  if (opts.tls === undefined) {
    const h1 = createHttp1Server(http1, handler);
    // node:http arms its header and request timers on 'listening', which this server never
    // sees (the raw TCP server listens); without it slow clients could hold sockets forever.
    h1.emit("listening");
    closeHttp1 = () => h1.close(); // clears that timer; the server holds no port of its own
    const h2c = h2 as Http2Server;
    const firstByteTimeoutMs = opts.firstByteTimeoutMs ?? 30_000;
    listener = createNetServer((socket) => {
      track(socket);
      sniffing.add(socket);
      sniffProtocol(socket, firstByteTimeoutMs, (isH2) => {
        sniffing.delete(socket);
        if (isH2) {
          h2c.emit("connection", socket);
        } else {
          h1Sockets.add(socket);
          socket.once("close", () => h1Sockets.delete(socket));
          // TCP_NODELAY, as node:http sets on the sockets it accepts itself (its `noDelay`
          // default); this socket was accepted by the raw TCP server, which does not.
          socket.setNoDelay(true);
          h1.emit("connection", socket);
        }
      });
    });
  } else {
    const secure = h2 as Http2SecureServer;
    secure.on("connection", track);
    secure.on("secureConnection", (socket: TLSSocket) => {
      if (socket.alpnProtocol !== "h2") {
        h1Sockets.add(socket);
        socket.once("close", () => h1Sockets.delete(socket));
      }
    });
    listener = secure;
  }

  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen({ host: opts.host, port: opts.port }, () => {
      listener.off("error", reject);
      resolve();
    });
  });
  const bound = listener.address() as AddressInfo;
  const address = bound.family === "IPv6" ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;

  let closing: Promise<void> | undefined;
  const close = async (graceMs: number): Promise<void> => {
    draining = true;
    const allClosed = new Promise<void>((resolve) => {
      onAllClosed = resolve;
      if (conns.size === 0) resolve();
    });
    const stopped = new Promise<void>((resolve) => listener.close(() => resolve()));
    // GOAWAY: no new streams, open ones run on; the session ends itself when they are done.
    for (const session of sessions) session.close();
    for (const socket of sniffing) socket.destroy();
    for (const socket of h1Sockets) if (!h1Busy.has(socket)) socket.destroy();

    let timer: NodeJS.Timeout | undefined;
    await Promise.race([allClosed, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    // What is still open after the grace period (a server stream, a slow client) is cut:
    // http2 server close() alone would wait for every session forever.
    for (const session of sessions) session.destroy();
    for (const socket of conns) socket.destroy();
    await Promise.all([allClosed, stopped]);
    closeHttp1();
  };

  return {
    address,
    port: bound.port,
    close(graceMs) {
      closing ??= close(graceMs);
      return closing;
    },
    sessions: () => sessions.size,
    connections: () => conns.size,
  };
}

/**
 * PINGs a session every `periodMs` and destroys it when a PING is not answered within `periodMs`
 * (see OnePortOptions.keepaliveMs); returns the function that stops the timers.
 */
function pingUntilClosed(session: Http2Session, periodMs: number): () => void {
  let deadline: NodeJS.Timeout | undefined;
  const timer = setInterval(() => {
    if (deadline !== undefined || session.destroyed || session.closed) return;
    const sent = session.ping((err) => {
      clearTimeout(deadline);
      deadline = undefined;
      // An error means the session is going away or the ping was cancelled: nothing to do.
      void err;
    });
    if (!sent) return; // too many unanswered pings of the peer's own in flight: try next period
    deadline = setTimeout(() => {
      deadline = undefined;
      session.destroy();
    }, periodMs);
    deadline.unref();
  }, periodMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    clearTimeout(deadline);
  };
}

/** A session's reset bucket, kept on the session under this symbol. */
const RESETS = Symbol("rollgate.resets");
/** When a stream was opened (performance.now()), kept on the stream under this symbol. */
const OPENED = Symbol("rollgate.opened");

const CALM_DEBUG_DATA = Buffer.from("too many streams reset");

/** Streams reset later than this after they opened are not counted: the client used them. */
const YOUNG_MS = 1000;

interface ResetState {
  readonly session: Http2Session;
  readonly guard: ResetGuard;
  readonly onCalm: ((remoteAddress: string | undefined) => void) | undefined;
  tokens: number;
  /** When the bucket was last refilled (performance.now()). */
  at: number;
  /** The highest stream id the session has seen: the GOAWAY's last processed stream. */
  lastId: number;
  calmed: boolean;
}

type GuardedSession = Http2Session & { [RESETS]?: ResetState };
type GuardedStream = ServerHttp2Stream & { [OPENED]?: number; [RESETS]?: ResetState };

/**
 * Counts the streams that end reset (RST_STREAM) within a second of opening — the client's
 * RST right after HEADERS, or a call cancelled before the server finished it: the rapid-reset
 * pattern of CVE-2023-44487, where each stream costs the server its set-up (often its whole
 * answer) while a reset frees the client's concurrency slot at once, so nothing bounds the
 * rate — and closes a session that resets more than its guard allows: GOAWAY with
 * ENHANCE_YOUR_CALM, then the connection, so the frames still in its buffers are never read.
 * A stream the server completed ends without a reset and is not counted; nor is one reset
 * after a second (a watch the client is done with): at most `maxConcurrentStreams` of those a
 * second, no amplification. The server resets streams of its own only with NO_ERROR (after
 * answering), which does not count. Per stream: two properties and one listener, a shared
 * function (no closure).
 */
function guardResets(session: Http2Session, guard: ResetGuard, onCalm: ((remoteAddress: string | undefined) => void) | undefined): void {
  (session as GuardedSession)[RESETS] = { session, guard, onCalm, tokens: guard.burst, at: performance.now(), lastId: 0, calmed: false };
  session.on("stream", onGuardedStream);
}

function onGuardedStream(this: GuardedSession, stream: GuardedStream): void {
  const state = this[RESETS]!;
  const id = stream.id ?? 0;
  if (id > state.lastId) state.lastId = id;
  stream[OPENED] = performance.now();
  // The stream forgets its session once closed: it keeps the bucket itself.
  stream[RESETS] = state;
  // 'aborted' comes at once, while node is still reading the frames that came with the reset
  // (so a burst is cut short); 'close' later, for the streams reset after their answer started.
  stream.on("aborted", onGuardedStreamAborted);
  stream.on("close", onGuardedStreamClose);
}

function onGuardedStreamAborted(this: GuardedStream): void {
  countReset(this);
}

function onGuardedStreamClose(this: GuardedStream): void {
  if (this.aborted || this.rstCode === undefined || this.rstCode === h2constants.NGHTTP2_NO_ERROR) return;
  countReset(this);
}

function countReset(stream: GuardedStream): void {
  const now = performance.now();
  if (now - (stream[OPENED] ?? now) > YOUNG_MS) return;
  const state = stream[RESETS];
  if (state === undefined || state.calmed || state.session.destroyed) return;
  state.tokens = Math.min(state.guard.burst, state.tokens + ((now - state.at) * state.guard.perSecond) / 1000);
  state.at = now;
  if (--state.tokens >= 0) return;
  state.calmed = true;
  state.onCalm?.(state.session.socket?.remoteAddress);
  // GOAWAY(ENHANCE_YOUR_CALM), then the connection goes at once, the frames not read yet with it.
  const session = state.session;
  if (!session.closed) session.goaway(h2constants.NGHTTP2_ENHANCE_YOUR_CALM, state.lastId, CALM_DEBUG_DATA);
  session.destroy(undefined, h2constants.NGHTTP2_ENHANCE_YOUR_CALM);
}

/** node:http server options both HTTP/1.1 paths share. */
interface Http1Timeouts {
  readonly keepAliveTimeout: number;
  readonly headersTimeout: number;
  readonly requestTimeout: number;
  readonly connectionsCheckingInterval: number;
}

function http1Timeouts(opts: OnePortOptions): Http1Timeouts {
  const headersTimeout = opts.headersTimeoutMs ?? 60_000;
  return {
    keepAliveTimeout: opts.keepAliveTimeoutMs ?? 65_000,
    headersTimeout,
    // node:http's default for the whole request; it must not be below the headers timeout.
    requestTimeout: Math.max(300_000, headersTimeout),
    // How often node:http looks for expired requests: the timeouts are only as exact as this.
    connectionsCheckingInterval: Math.min(30_000, Math.max(10, Math.floor(headersTimeout / 2))),
  };
}

/** Creates the TLS server: HTTP/2 or HTTP/1.1 by ALPN, client certificates required with a CA. */
function secureServer(tls: OnePortTls, http1: Http1Timeouts, settings: { maxConcurrentStreams: number }): Http2SecureServer {
  const server = createSecureServer({
    allowHTTP1: true,
    settings,
    cert: tls.cert,
    key: tls.key,
    ...(tls.clientCa === undefined ? {} : { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true }),
  });
  // HTTP/1.1 connections on this server run node:http's code, which reads its timeouts from
  // the server object; http2 sets all but keepAliveTimeout (so idle HTTP/1.1 sockets would
  // never time out) and takes none of them as options. @types/node does not declare them.
  Object.assign(server, http1);
  return server;
}

/**
 * Wraps the handler to count HTTP/1.1 requests in flight per socket, so that shutdown closes
 * idle keep-alive sockets at once and busy ones as soon as their last response is done.
 */
function trackHttp1Requests(handler: OnePortHandler, busy: Map<Duplex, number>, draining: () => boolean): OnePortHandler {
  return (req, res) => {
    if (req.httpVersionMajor !== 1) return handler(req, res);
    const socket = req.socket;
    const r = res as ServerResponse;
    busy.set(socket, (busy.get(socket) ?? 0) + 1);
    if (draining() && !r.headersSent) r.setHeader("connection", "close");
    r.once("close", () => {
      const left = (busy.get(socket) ?? 1) - 1;
      if (left > 0) {
        busy.set(socket, left);
        return;
      }
      busy.delete(socket);
      // The response is written; end() flushes it before the FIN.
      if (draining()) socket.end();
    });
    handler(req, res);
    // After the handler: one that reads its own body marks the request (readsOwnBody).
    drainRefusedBody(req as IncomingMessage, r);
  };
}

/**
 * Puts `onStream` in front of the request handler on every HTTP/2 stream.
 *
 * Adding a `request` listener makes Node add its own `stream` listener that wraps each stream
 * in compat request/response objects and emits `request`; a second `stream` listener could not
 * stop it. So that listener is taken out and called only for the streams the hook declines.
 */
function routeStreamsThroughHook(h2: Http2Server | Http2SecureServer, onStream: OnStreamHook): void {
  const compat = h2.listeners("stream");
  const toRequest = compat[0];
  if (compat.length !== 1 || toRequest === undefined) {
    throw new Error(`one-port: expected node:http2 to install exactly one compat 'stream' listener, found ${compat.length}`);
  }
  h2.removeListener("stream", toRequest as (...args: unknown[]) => void);
  h2.on("stream", (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, ...rest: unknown[]) => {
    let handled: boolean;
    try {
      handled = onStream(stream, headers);
    } catch {
      // Resetting makes the stream emit 'error'; unheard, that would crash the process.
      stream.on("error", () => {});
      if (!stream.destroyed) stream.close(h2constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    if (!handled) (toRequest as (...args: unknown[]) => void).call(h2, stream, headers, ...rest);
  });
}
