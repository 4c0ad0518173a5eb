import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { procedureOf, type HotMethod } from "../service/hot-method.js";
import { abortedStreamError, toConnectError } from "../service/errors.js";
import type { Admit } from "./admit.js";
import { decodeUnary, FRAME_HEADER, frameInPlace, frameOf, requestBody } from "./grpc/envelope.js";
import { grpcTimeoutOf, RESPONSE_HEADERS, STATUS_OK, statusHeaders } from "./grpc/status.js";
import { rolloutOf, type CallReporter, type CallTracer } from "./observe.js";
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
    serve(opts, route, stream, headers);
    return true;
  };
}

function serve(opts: FastPathOptions, { procedure, entry }: Route, stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
  const started = process.hrtime.bigint();
  const method = entry.method.name;
  const admission = opts.admit(procedure, headers.authorization, headers["x-request-id"] as string | undefined);
  const { requestId } = admission;
  const caller = admission.caller.name;
  const span = opts.trace?.(procedure, "grpc", headers.traceparent as string | undefined, headers.tracestate as string | undefined);
  let rollout = "";
  let done = false;
  let timer: NodeJS.Timeout | undefined;
  // Set once a server stream has started: ends it when the client goes away or the deadline passes.
  let aborted: AbortController | undefined;
  stream.on("error", () => undefined);

  const fail = (e: unknown) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    const ce = toConnectError(e, requestId);
    opts.report({ procedure, method, requestId, caller, rollout, started, span }, ce);
    if (stream.destroyed || stream.headersSent) return;
    // Trailers-only: one HEADERS frame carrying the status, ending the stream.
    stream.respond({ ...RESPONSE_HEADERS, "x-request-id": requestId, ...statusHeaders(ce) }, { endStream: true });
    // The client may still be sending (an oversized request): stop it politely.
    if (!stream.destroyed && !stream.readableEnded) stream.close(constants.NGHTTP2_NO_ERROR);
  };

  if (admission.refusal !== undefined) return fail(admission.refusal);
  const timeout = grpcTimeoutOf(headers["grpc-timeout"] as string | undefined);
  if (timeout.error !== undefined) return fail(timeout.error);
  if (timeout.ms !== undefined) {
    timer = setTimeout(() => {
      const timedOut = new ConnectError("the operation timed out", Code.DeadlineExceeded);
      if (aborted === undefined) return fail(timedOut);
      aborted.abort(timedOut);
    }, timeout.ms);
  }

  const body = requestBody(opts.maxBytes);
  stream.on("data", (chunk: Buffer) => {
    if (done) return;
    const tooLarge = body.push(chunk);
    if (tooLarge !== undefined) fail(tooLarge);
  });
  stream.on("end", () => {
    if (done) return;
    let request: never;
    try {
      request = decodeUnary(entry.method.input, body.bytes(), entry.kind === "unary" ? entry.decode : undefined) as never;
    } catch (e) {
      return fail(e);
    }
    rollout = rolloutOf(request);
    if (entry.kind === "unary") {
      let answer: Uint8Array;
      try {
        answer = span === undefined ? entry.bytes(request, FRAME_HEADER) : span.run(() => entry.bytes(request, FRAME_HEADER));
      } catch (e) {
        return fail(e);
      }
      done = true;
      clearTimeout(timer);
      opts.report({ procedure, method, requestId, caller, rollout, started, span }, undefined);
      if (stream.destroyed) return;
      stream.respond({ ":status": 200, "content-type": RESPONSE_HEADERS["content-type"], "x-request-id": requestId }, WAIT_FOR_TRAILERS);
      stream.once("wantTrailers", () => stream.sendTrailers(STATUS_OK));
      stream.end(frameInPlace(answer));
      return;
    }
    // Server streaming: errors found before the first message (validation, NOT_FOUND) are
    // answered trailers-only; later ones end the stream with their status in the trailers.
    const controller = new AbortController();
    let items: AsyncIterable<unknown>;
    try {
      items = span === undefined ? entry.open(request, controller.signal) : span.run(() => entry.open(request, controller.signal));
    } catch (e) {
      return fail(e);
    }
    aborted = controller;
    stream.once("close", () => controller.abort());
    stream.respond({ ...RESPONSE_HEADERS, "x-request-id": requestId }, { waitForTrailers: true });
    void (async () => {
      let error: ConnectError | undefined;
      try {
        for await (const item of items) {
          if (stream.destroyed) break;
          // Backpressure: one message in flight per stream. The next is written once this one
          // has left for the connection (its write callback), so a reader that does not keep
          // up is sent the newest state when it can take one (the fan-outs keep the latest per
          // rollout) rather than a queue of stale ones: waiting only for 'drain' let 16 KiB
          // (highWaterMark) pile up per stream, a minute of health updates, 160 MiB for
          // 10,000 streams, delivered tens of seconds late.
          await written(stream, frameOf(entry.bytes(item)));
        }
        // Ended by the deadline (the timer's reason) or by the client going away (CANCELED).
        error = abortedStreamError(controller.signal);
      } catch (e) {
        error = toConnectError(e, requestId);
      }
      done = true;
      clearTimeout(timer);
      opts.report({ procedure, method, requestId, caller, rollout, started, span }, error);
      if (stream.destroyed) return;
      stream.once("wantTrailers", () => stream.sendTrailers(error === undefined ? STATUS_OK : statusHeaders(error)));
      stream.end();
    })();
  });
}

const WAIT_FOR_TRAILERS = { waitForTrailers: true } as const;

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
