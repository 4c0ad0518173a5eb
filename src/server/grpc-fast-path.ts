import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Pushable } from "../service/fan-out.js";
import { procedureOf, type HotMethod, type HotServerStream, type HotUnary } from "../service/hot-method.js";
import { abortedStreamError, toConnectError } from "../service/errors.js";
import type { Admit } from "./admit.js";
import { decodeUnary, FRAME_HEADER, frameInPlace, frameOf, requestBody, type RequestBody } from "./grpc/envelope.js";
import { grpcTimeoutOf, RESPONSE_HEADERS, STATUS_OK, statusHeaders } from "./grpc/status.js";
import { rolloutOf, type CallRecord, type CallReporter, type CallSpan, type CallTracer } from "./observe.js";
import type { OnStreamHook } from "./one-port.js";

/**
 * The gRPC fast path: the hot RPCs served straight from Node's HTTP/2 stream API, beside
 * connect-node on the same port, built from the same hot-method table as connect-node's
 * registration (src/service/hot-method.ts) so the two cannot answer differently.
 *
 * connect-node's universal-handler pipeline costs ~470 µs of CPU per call here; this path
 * does what a gRPC server must and nothing else: read one length-prefixed message, decode it
 * with the same generated protobuf-es schema, call the table's handler, write headers +
 * message + trailers. It admits calls with the same admission step (request id, readiness,
 * auth: admit.ts), reports them with the same reporter (metrics, logging), maps errors with
 * the same toConnectError and connect's own grpc-status-details-bin encoding, honours
 * `grpc-timeout`, enforces the request size limit, and answers errors trailers-only. The wire
 * pieces (framing, status headers, grpc-message and grpc-timeout) are in ./grpc/.
 *
 * Server streams write the bytes the table's entry gives for each item (WatchHealth: each
 * health's encoded bytes, shared by every stream, plus the stream's own seq), so 1,000
 * subscribers cost a few bytes each per update instead of a trip each through connect's
 * streaming pipeline.
 *
 * It takes only what it serves exactly like connect would: POST, `application/grpc` or
 * `application/grpc+proto`, no `grpc-encoding` other than identity. Everything else — gRPC-Web,
 * Connect, JSON, compressed messages, other methods — goes to connect-node.
 */

/** Options of the gRPC fast path, and what the Connect fast path shares (connect-fast-path.ts). */
export interface FastPathOptions {
  /** The hot methods to serve (a service's hot-method table). */
  readonly methods: readonly HotMethod[];
  /** The admission step every call goes through first (the Connect path's too). */
  readonly admit: Admit;
  readonly report: CallReporter;
  /** Starts each call's server span; undefined when tracing is off. */
  readonly trace?: CallTracer | undefined;
  /** Called once per call this path serves. */
  readonly served?: (procedure: string) => void;
  /** Largest request message in bytes; larger ones get RESOURCE_EXHAUSTED. */
  readonly maxBytes: number;
}

/** A method as this path serves it: the table entry and its procedure name. */
interface Route {
  readonly procedure: string;
  readonly entry: HotMethod;
}

/** Returns the http2 `stream` hook that serves the hot RPCs (see the module comment). */
export function createGrpcFastPath(opts: FastPathOptions): OnStreamHook {
  const byPath = new Map<string, Route>();
  for (const entry of opts.methods) byPath.set(`/${procedureOf(entry)}`, { procedure: procedureOf(entry), entry });

  return (stream, headers) => {
    if (headers[":method"] !== "POST") return false;
    const route = byPath.get(headers[":path"] ?? "");
    if (route === undefined) return false;
    const type = headers["content-type"];
    if (type !== "application/grpc" && type !== "application/grpc+proto") return false;
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;
    opts.served?.(route.procedure);
    new GrpcCall(opts, route, stream).start(headers);
    return true;
  };
}

/**
 * One call: one object holding its state, with its steps as methods instead of a closure per
 * step (as the Connect fast path's ConnectCall); a unary call's only closures are its `data` and
 * `end` listeners. It is also the record the reporter is given (CallRecord), so a call allocates
 * no other object for it.
 */
class GrpcCall implements CallRecord {
  readonly started = process.hrtime.bigint();
  readonly procedure: string;
  readonly method: string;
  requestId = "";
  caller = "";
  rollout = "";
  span: CallSpan | undefined = undefined;
  private done = false;
  private timer: NodeJS.Timeout | undefined = undefined;
  /** Set once a server stream has started: ends it when the client goes away or the deadline passes. */
  private aborted: AbortController | undefined = undefined;
  private readonly body: RequestBody;

  constructor(
    private readonly opts: FastPathOptions,
    private readonly route: Route,
    private readonly stream: ServerHttp2Stream,
  ) {
    this.procedure = route.procedure;
    this.method = route.entry.method.name;
    this.body = requestBody(opts.maxBytes);
  }

  /** Admits the call, arms its deadline and reads its request. */
  start(headers: IncomingHttpHeaders): void {
    const { opts, stream, procedure } = this;
    const admission = opts.admit(procedure, headers.authorization, headers["x-request-id"] as string | undefined);
    this.requestId = admission.requestId;
    this.caller = admission.caller.name;
    this.span = opts.trace?.(procedure, "grpc", headers.traceparent as string | undefined, headers.tracestate as string | undefined);
    stream.on("error", ignore);
    if (admission.refusal !== undefined) return this.fail(admission.refusal);
    const timeoutHeader = headers["grpc-timeout"] as string | undefined;
    if (timeoutHeader !== undefined) {
      const timeout = grpcTimeoutOf(timeoutHeader);
      if (timeout.error !== undefined) return this.fail(timeout.error);
      if (timeout.ms !== undefined) this.timer = setTimeout(deadlinePassed, timeout.ms, this);
    }
    stream.on("data", (chunk: Buffer) => this.data(chunk));
    stream.on("end", () => this.end());
  }

  /** The deadline passed: a call not answered yet fails, a server stream is ended with DEADLINE_EXCEEDED. */
  timedOut(): void {
    const timedOut = new ConnectError("the operation timed out", Code.DeadlineExceeded);
    if (this.aborted === undefined) return this.fail(timedOut);
    this.aborted.abort(timedOut);
  }

  data(chunk: Buffer): void {
    if (this.done) return;
    const tooLarge = this.body.push(chunk);
    if (tooLarge !== undefined) this.fail(tooLarge);
  }

  /** The request has all come: decodes it and answers (unary) or starts the server stream. */
  end(): void {
    if (this.done) return;
    const { entry } = this.route;
    let request: never;
    try {
      request = decodeUnary(entry.method.input, this.body.bytes(), entry.kind === "unary" ? entry.fromBinary : undefined) as never;
    } catch (e) {
      return this.fail(e);
    }
    this.rollout = rolloutOf(request);
    if (entry.kind === "unary") return this.answer(entry, request);
    this.serveStream(entry, request);
  }

  private answer(entry: HotUnary, request: never): void {
    const { span, stream } = this;
    let answer: Uint8Array;
    try {
      answer = span === undefined ? entry.bytes(request, FRAME_HEADER) : span.run(() => entry.bytes(request, FRAME_HEADER));
    } catch (e) {
      return this.fail(e);
    }
    this.done = true;
    clearTimeout(this.timer);
    this.opts.report(this, undefined);
    if (stream.destroyed) return;
    stream.respond({ ":status": 200, "content-type": RESPONSE_HEADERS["content-type"], "x-request-id": this.requestId }, WAIT_FOR_TRAILERS);
    stream.once("wantTrailers", sendOkTrailers);
    stream.end(frameInPlace(answer));
  }

  /** Answers an error trailers-only (one HEADERS frame carrying the status, ending the stream), once. */
  fail(e: unknown): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    const { stream, requestId } = this;
    const ce = toConnectError(e, requestId);
    this.opts.report(this, ce);
    if (stream.destroyed || stream.headersSent) return;
    stream.respond({ ...RESPONSE_HEADERS, "x-request-id": requestId, ...statusHeaders(ce) }, { endStream: true });
    // The client may still be sending (an oversized request): stop it politely.
    if (!stream.destroyed && !stream.readableEnded) stream.close(constants.NGHTTP2_NO_ERROR);
  }

  /**
   * Server streaming: errors found before the first message (validation, NOT_FOUND) are
   * answered trailers-only; later ones end the stream with their status in the trailers.
   */
  private serveStream(entry: HotServerStream, request: never): void {
    const { span, stream, requestId } = this;
    const controller = new AbortController();
    const reportEnd = (error: ConnectError | undefined) => {
      this.done = true;
      clearTimeout(this.timer);
      this.opts.report(this, error);
      if (stream.destroyed) return;
      stream.once("wantTrailers", () => stream.sendTrailers(error === undefined ? STATUS_OK : statusHeaders(error)));
      stream.end();
    };
    if (entry.watch !== undefined) {
      let source: Pushable<unknown>;
      try {
        source = span === undefined ? entry.watch(request, controller.signal) : span.run(() => entry.watch!(request, controller.signal));
      } catch (e) {
        return this.fail(e);
      }
      this.aborted = controller;
      stream.respond({ ...RESPONSE_HEADERS, "x-request-id": requestId }, { waitForTrailers: true });
      pushTo(stream, entry, source, controller, requestId, reportEnd);
      return;
    }
    let items: AsyncIterable<unknown>;
    try {
      items = span === undefined ? entry.open(request, controller.signal) : span.run(() => entry.open(request, controller.signal));
    } catch (e) {
      return this.fail(e);
    }
    this.aborted = controller;
    stream.once("close", () => controller.abort());
    stream.respond({ ...RESPONSE_HEADERS, "x-request-id": requestId }, { waitForTrailers: true });
    void (async () => {
      let error: ConnectError | undefined;
      try {
        for await (const item of items) {
          if (stream.destroyed) break;
          // Backpressure: one message in flight per stream (see pushTo).
          await written(stream, frameOf(entry.bytes(item)));
        }
        // Ended by the deadline (the timer's reason) or by the client going away (CANCELED).
        error = abortedStreamError(controller.signal);
      } catch (e) {
        error = toConnectError(e, requestId);
      }
      reportEnd(error);
    })();
  }
}

function deadlinePassed(call: GrpcCall): void {
  call.timedOut();
}

/** Most bytes a stream writes at once when it catches up with what was held for it. */
const BATCH_BYTES = 16 * 1024;

/**
 * Streams the items of a push source (HotServerStream.watch) to `stream`: each item is framed
 * and written in the publisher's turn — no promise, no iterator step per item (with 10,000
 * streams those, and the garbage they made, cost more than the writes: bench/SOAK-STREAMS.md).
 *
 * Backpressure: one write in flight per stream. While it is (its callback, called once the bytes
 * have left for the connection, has not run), the source holds what comes (the health feed: the
 * latest per rollout), and when it has, everything held goes out in one write (up to
 * BATCH_BYTES; the rest after that one). So a reader that does not keep up is sent the newest
 * state when it can take one rather than a queue of stale ones: waiting only for 'drain' let
 * 16 KiB (the highWaterMark) pile up per stream, a minute of health updates, 160 MiB for 10,000
 * streams, delivered tens of seconds late.
 *
 * It ends when the source ends (closed at shutdown, a watched rollout deleted, the deadline:
 * `end` then comes once the last write is out), or at once when the stream closes (the client
 * went away): `reportEnd` is then called with CANCELED.
 */
function pushTo(
  stream: ServerHttp2Stream,
  entry: HotServerStream,
  source: Pushable<unknown>,
  controller: AbortController,
  requestId: string,
  reportEnd: (error: ConnectError | undefined) => void,
): void {
  let ended = false;
  // Set while a completed write resumes the source: the frames it gives (the first, then any
  // more) are written together after.
  let collecting = false;
  let first: Uint8Array | undefined;
  let more: Uint8Array[] | undefined;
  let collected = 0;
  // The source's end, when it came while frames were being collected.
  let endAfterBatch: { error: Error | undefined } | undefined;
  const finish = (error: ConnectError | undefined) => {
    if (ended) return;
    ended = true;
    source.close();
    reportEnd(error);
  };
  const sourceEnded = (e: Error | undefined) => {
    finish(e === undefined ? abortedStreamError(controller.signal) : toConnectError(e, requestId));
  };
  const onWritten = () => {
    if (ended || stream.destroyed) return;
    collecting = true;
    source.resume();
    collecting = false;
    if (first !== undefined) {
      stream.write(more === undefined ? first : Buffer.concat([first, ...more], collected), onWritten);
      first = more = undefined;
      collected = 0;
    }
    const end = endAfterBatch;
    endAfterBatch = undefined;
    if (end !== undefined) sourceEnded(end.error);
  };
  stream.once("close", () => {
    controller.abort();
    finish(abortedStreamError(controller.signal));
  });
  source.push({
    write(item) {
      if (ended || stream.destroyed) return false;
      let frame: Uint8Array;
      try {
        frame = frameInPlace(entry.bytes(item, FRAME_HEADER));
      } catch (e) {
        finish(toConnectError(e, requestId));
        return false;
      }
      if (!collecting) {
        stream.write(frame, onWritten);
        return false;
      }
      if (first === undefined) first = frame;
      else (more ??= []).push(frame);
      collected += frame.length;
      return collected < BATCH_BYTES;
    },
    end(e) {
      // Ended while frames are collected: they go out first. The stream's end waits for any
      // write in flight anyway.
      if (collecting) endAfterBatch = { error: e };
      else sourceEnded(e);
    },
  });
}

const WAIT_FOR_TRAILERS = { waitForTrailers: true } as const;
const ignore = () => undefined;

/** A unary call's `wantTrailers` listener (the emitter is `this`): one function for every call, no closure each. */
function sendOkTrailers(this: ServerHttp2Stream): void {
  this.sendTrailers(STATUS_OK);
}

/** Writes `data` and resolves once it has left the stream's buffer, or the stream closed. */
function written(stream: ServerHttp2Stream, data: Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("close", done);
      resolve();
    };
    stream.once("close", done);
    stream.write(data, done);
  });
}
