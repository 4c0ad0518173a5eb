import { constants, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import { fromBinary, toBinary, type DescMessage, type DescMethodUnary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type { DecisionHandlers } from "../service/decision-service.js";
import { toConnectError } from "../service/errors.js";
import { DecisionService, RecordOutcomeResponseSchema, type RecordOutcomeRequest } from "../../gen/rollgate/v1/decision_service_pb.js";
import type { Authenticator } from "./auth.js";
import { encodeGrpcMessage } from "./grpc-message.js";
import { requestIdOf, rolloutOf, type CallReporter } from "./observe.js";
import type { OnStreamHook } from "./one-port.js";

/**
 * The gRPC fast path: the hot unary RPCs (Route, RouteBatch, RecordOutcome) served straight
 * from Node's HTTP/2 stream API, beside connect-node on the same port.
 *
 * connect-node's universal-handler pipeline costs ~470 µs of CPU per call here; this path
 * does what a gRPC server must and nothing else: read one length-prefixed message, decode it
 * with the same generated protobuf-es schema, call the same handler function the Connect
 * service calls, encode, write headers + message + trailers. It applies the same
 * authentication, readiness check, request id, metrics, logging and error mapping
 * (toConnectError, with connect's own grpc-status-details-bin encoding), honours
 * `grpc-timeout`, enforces the request size limit, and answers errors trailers-only.
 *
 * It takes only what it serves exactly like connect would: POST, `application/grpc` or
 * `application/grpc+proto`, no `grpc-encoding` other than identity. Everything else — gRPC-Web,
 * Connect, JSON, compressed messages, streams, the control plane — goes to connect-node.
 */

/** Options of the fast path. */
export interface FastPathOptions {
  readonly handlers: DecisionHandlers;
  readonly auth: Authenticator;
  readonly report: CallReporter;
  /** Called once per call this path serves. */
  readonly served?: (procedure: string) => void;
  /** False while starting or draining: calls get UNAVAILABLE, as on the Connect path. */
  readonly ready: () => boolean;
  /** Largest request message in bytes; larger ones get RESOURCE_EXHAUSTED. */
  readonly maxBytes: number;
}

interface FastMethod {
  readonly procedure: string;
  readonly name: string;
  readonly input: DescMessage;
  /** Answers a decoded request with the encoded response message. */
  readonly answer: (req: never) => Uint8Array;
}

const FRAME_HEADER = 5;
const RESPONSE_HEADERS: OutgoingHttpHeaders = { ":status": 200, "content-type": "application/grpc+proto" };

/** Returns the http2 `stream` hook that serves the hot RPCs (see the module comment). */
export function createGrpcFastPath(opts: FastPathOptions): OnStreamHook {
  const { handlers } = opts;
  const methods = new Map<string, FastMethod>();
  const add = (m: DescMethodUnary, answer: (req: never) => Uint8Array) =>
    methods.set(`/${DecisionService.typeName}/${m.name}`, {
      procedure: `${DecisionService.typeName}/${m.name}`,
      name: m.name,
      input: m.input,
      answer,
    });
  add(DecisionService.method.route, handlers.routeBinary as (req: never) => Uint8Array);
  add(DecisionService.method.routeBatch, handlers.routeBatchBinary as (req: never) => Uint8Array);
  add(DecisionService.method.recordOutcome, ((req: RecordOutcomeRequest) =>
    toBinary(RecordOutcomeResponseSchema, handlers.recordOutcome(req))) as (req: never) => Uint8Array);

  return (stream, headers) => {
    if (headers[":method"] !== "POST") return false;
    const method = methods.get(headers[":path"] ?? "");
    if (method === undefined) return false;
    const type = headers["content-type"];
    if (type !== "application/grpc" && type !== "application/grpc+proto") return false;
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;
    opts.served?.(method.procedure);
    serve(opts, method, stream, headers);
    return true;
  };
}

function serve(opts: FastPathOptions, method: FastMethod, stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
  const started = process.hrtime.bigint();
  const requestId = requestIdOf(headers["x-request-id"] as string | undefined);
  let caller = "anonymous";
  let rollout = "";
  let done = false;
  let timer: NodeJS.Timeout | undefined;
  stream.on("error", () => undefined);

  const fail = (e: unknown) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    const ce = toConnectError(e, requestId);
    opts.report({ procedure: method.procedure, method: method.name, requestId, caller, rollout, started }, ce);
    if (stream.destroyed || stream.headersSent) return;
    const trailers = setTrailerStatus(new Headers(), ce);
    const out: OutgoingHttpHeaders = { ...RESPONSE_HEADERS, "x-request-id": requestId };
    trailers.forEach((value, key) => (out[key] = key === "grpc-message" ? encodeGrpcMessage(ce.rawMessage) : value));
    // Trailers-only: one HEADERS frame carrying the status, ending the stream.
    stream.respond(out, { endStream: true });
    // The client may still be sending (an oversized request): stop it politely.
    if (!stream.destroyed && !stream.readableEnded) stream.close(constants.NGHTTP2_NO_ERROR);
  };

  if (!opts.ready()) return fail(new ConnectError("starting or shutting down", Code.Unavailable));
  try {
    caller = opts.auth.authorize(headers.authorization, method.procedure).name;
  } catch (e) {
    return fail(e);
  }
  const timeout = parseTimeout((headers["grpc-timeout"] as string | undefined) ?? null, Number.MAX_SAFE_INTEGER);
  if (timeout.error !== undefined) return fail(timeout.error);
  if (timeout.timeoutMs !== undefined) {
    timer = setTimeout(() => fail(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeout.timeoutMs);
  }

  const chunks: Buffer[] = [];
  let size = 0;
  stream.on("data", (chunk: Buffer) => {
    if (done) return;
    size += chunk.length;
    if (size > opts.maxBytes + FRAME_HEADER) {
      return fail(new ConnectError(`message size is larger than configured readMaxBytes ${opts.maxBytes}`, Code.ResourceExhausted));
    }
    chunks.push(chunk);
  });
  stream.on("end", () => {
    if (done) return;
    let request: unknown;
    try {
      request = decodeUnary(method.input, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    } catch (e) {
      return fail(e);
    }
    rollout = rolloutOf(request);
    let body: Uint8Array;
    try {
      body = method.answer(request as never);
    } catch (e) {
      return fail(e);
    }
    done = true;
    clearTimeout(timer);
    opts.report({ procedure: method.procedure, method: method.name, requestId, caller, rollout, started }, undefined);
    if (stream.destroyed) return;
    const frame = Buffer.allocUnsafe(FRAME_HEADER + body.length);
    frame[0] = 0;
    frame.writeUInt32BE(body.length, 1);
    frame.set(body, FRAME_HEADER);
    stream.respond({ ...RESPONSE_HEADERS, "x-request-id": requestId }, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(frame);
  });
}

/** Returns the one message of a unary gRPC request body, decoded; errors as connect reports them. */
function decodeUnary(schema: DescMessage, body: Buffer): unknown {
  if (body.length === 0) throw new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented);
  if (body.length < FRAME_HEADER) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  if ((body[0]! & 1) === 1) throw new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal);
  const length = body.readUInt32BE(1);
  if (FRAME_HEADER + length > body.length) {
    throw new ConnectError(`protocol error: promised ${length} bytes in enveloped message, got ${body.length - FRAME_HEADER} bytes`, Code.InvalidArgument);
  }
  if (FRAME_HEADER + length < body.length) throw new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented);
  try {
    return fromBinary(schema, body.subarray(FRAME_HEADER));
  } catch (e) {
    throw new ConnectError(`parse binary: ${e instanceof Error ? e.message : String(e)}`, Code.Internal);
  }
}
