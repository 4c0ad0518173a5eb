import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { constants } from "node:http2";
import { fromBinary, fromJsonString, toJsonString, type DescMessage } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { procedureOf, type HotUnary } from "../service/hot-method.js";
import { toConnectError } from "../service/errors.js";
import { asDecodeFailure } from "./connect/request-decode-codes.js";
import { connectTimeoutOf, errorBody, httpStatusOf, unaryEncodingOf, type UnaryEncoding } from "./connect/wire.js";
import type { RequestHandler } from "./http-endpoints.js";
import { rolloutOf, type CallSpan } from "./observe.js";
import type { OnStreamHook } from "./one-port.js";
import type { FastPathOptions } from "./grpc-fast-path.js";

/**
 * The Connect fast path: the hot unary RPCs (Route, RouteBatch, RecordOutcome) over the Connect
 * protocol, served straight from node:http's request and node:http2's stream instead of
 * connect-node's universal handler, built from the same hot-method table (hot-method.ts) so the
 * paths cannot answer differently.
 *
 * It does what connect-node's Connect unary handler does, in its order: content type (or the
 * GET `encoding`) → compression negotiation (`content-encoding`/`compression`, `accept-encoding`;
 * an unknown encoding is UNIMPLEMENTED naming the supported ones) → `connect-timeout-ms` → the
 * body within readMaxBytes (a declared content-length first) → decompression → decoding with the
 * method's input schema (JSON with the server's strict unknown-field rule) → admission (admit.ts:
 * request id, readiness, auth) → the table's handler → the answer (`message` for JSON, `bytes`
 * for binary), compressed when negotiated and at least compressMinBytes. Errors are Connect's
 * error JSON with its HTTP status; the call reporter (metrics, logging) sees every call that
 * reaches admission — as connect-node's interceptor does, which runs after decoding.
 *
 * One difference on purpose: a `connect-timeout-ms` deadline that passes while the body is still
 * arriving answers DEADLINE_EXCEEDED (connect-node's handler ignores its own deadline for a
 * synchronous method and waits for the body).
 *
 * It takes only what connect-node would route to its Connect unary handler and serve the same
 * way: POST with a unary Connect content type, or GET (NO_SIDE_EFFECTS methods) without a
 * content type or with a unary one, and a valid `encoding`. Everything else — other methods,
 * HEAD/OPTIONS, streaming or unknown content types, gRPC — goes on to connect-node unchanged.
 */

/** A compression algorithm as connect-node's `compressionGzip`/`compressionBrotli` give it. */
export interface ConnectCompression {
  readonly name: string;
  compress(bytes: Uint8Array): Promise<Uint8Array>;
  decompress(bytes: Uint8Array, readMaxBytes: number): Promise<Uint8Array>;
}

/** Options of the Connect fast path: the same settings connect-node's adapter is given. */
export interface ConnectFastPathOptions extends FastPathOptions {
  // maxBytes is connect's readMaxBytes, after decompression too; of `methods` the unary entries are taken.
  /** The compressions accepted and offered, in the server's order of preference. */
  readonly acceptCompression: readonly ConnectCompression[];
  /** Answers are compressed only from this size on (connect's compressMinBytes; default 1024). */
  readonly compressMinBytes?: number;
  /** connect's requireConnectProtocolHeader: refuse calls without `connect-protocol-version: 1`. */
  readonly requireConnectProtocolHeader: boolean;
  /** connect's jsonOptions: whether JSON requests may carry unknown fields. */
  readonly ignoreUnknownFields: boolean;
}

/** The Connect fast path, for each transport. */
export interface ConnectFastPath {
  /** The http2 `stream` hook: h2c and TLS HTTP/2. */
  readonly onStream: OnStreamHook;
  /** Wraps the request handler: HTTP/1.1 requests it takes are served, the rest go to `next`. */
  handler(next: RequestHandler): RequestHandler;
}

/** A method as this path serves it. */
interface Route {
  readonly procedure: string;
  readonly entry: HotUnary;
  readonly input: DescMessage;
  readonly get: boolean;
}

/** One call, whatever its transport. */
interface Call {
  readonly route: Route;
  readonly encoding: UnaryEncoding;
  readonly headers: IncomingHttpHeaders;
  /** The query of a GET, undefined for a POST. */
  readonly query: URLSearchParams | undefined;
  /** The request body (a POST's). */
  readonly body: NodeJS.ReadableStream;
  /**
   * Writes the answer: status, headers (lowercase), body; an answer written before the body has
   * all come (a refusal) also stops the client sending the rest.
   */
  reply(status: number, headers: OutgoingHttpHeaders, body: Uint8Array): void;
}

const decoder = new TextDecoder();
const CONTENT_TYPE: Record<UnaryEncoding, string> = { json: "application/json", proto: "application/proto" };

/** Returns the Connect fast path for a hot-method table (see the module comment). */
export function createConnectFastPath(opts: ConnectFastPathOptions): ConnectFastPath {
  const byPath = new Map<string, Route>();
  for (const entry of opts.methods) {
    if (entry.kind !== "unary") continue;
    byPath.set(`/${procedureOf(entry)}`, {
      procedure: procedureOf(entry),
      entry,
      input: entry.method.input,
      get: entry.method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS,
    });
  }
  const jsonRead = { ignoreUnknownFields: opts.ignoreUnknownFields };
  const compressMinBytes = opts.compressMinBytes ?? 1024;
  const acceptable = opts.acceptCompression.map((c) => c.name).join(",");

  /** Returns what connect-node would serve with its Connect unary handler, or undefined to pass the request on. */
  function take(method: string | undefined, url: string | undefined, headers: IncomingHttpHeaders): Omit<Call, "body" | "reply"> | undefined {
    if (url === undefined || (method !== "POST" && method !== "GET")) return undefined;
    const q = url.indexOf("?");
    const route = byPath.get(q < 0 ? url : url.slice(0, q));
    if (route === undefined) return undefined;
    const type = headers["content-type"];
    if (method === "POST") {
      const encoding = unaryEncodingOf(type);
      return encoding === undefined ? undefined : { route, encoding, headers, query: undefined };
    }
    // GET: only the Connect handler allows it; a content type, if sent, must still be a Connect one.
    if (!route.get || (type !== undefined && type !== "" && unaryEncodingOf(type) === undefined)) return undefined;
    const query = new URLSearchParams(q < 0 ? "" : url.slice(q + 1, hashAt(url, q)));
    const enc = query.get("encoding");
    const encoding = enc === "json" ? "json" : enc === "proto" ? "proto" : undefined;
    return encoding === undefined ? undefined : { route, encoding, headers, query };
  }

  function serve(call: Call): void {
    const started = process.hrtime.bigint();
    const { route, encoding, headers, query } = call;
    const { procedure, entry } = route;
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    let requestId: string | undefined;

    const answer = (status: number, out: OutgoingHttpHeaders, body: Uint8Array, accepted: ConnectCompression | undefined) => {
      if (accepted === undefined || body.length < compressMinBytes) {
        out["content-length"] = body.length;
        return call.reply(status, out, body);
      }
      accepted.compress(body).then(
        (packed) => {
          out["content-encoding"] = accepted.name;
          out["content-length"] = packed.length;
          call.reply(status, out, packed);
        },
        () => {
          out["content-length"] = body.length;
          call.reply(status, out, body);
        },
      );
    };
    // The call's span once admitted (tracing on); the reporter ends it with the call's status.
    let span: CallSpan | undefined;
    const fail = (e: unknown, accepted: ConnectCompression | undefined, admitted?: { caller: string; rollout: string }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      let ce: ConnectError;
      if (admitted !== undefined && requestId !== undefined) {
        ce = toConnectError(e, requestId);
        opts.report({ procedure, method: entry.method.name, requestId, caller: admitted.caller, rollout: admitted.rollout, started, span }, ce);
        ce.metadata.set("x-request-id", requestId);
      } else {
        ce = e instanceof ConnectError ? e : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
      }
      const out: OutgoingHttpHeaders = { "content-type": "application/json" };
      ce.metadata.forEach((value, key) => (out[key] = value));
      answer(httpStatusOf(ce.code), out, errorBody(ce), accepted);
    };

    // Compression: what the request is in, and what the answer may be in.
    const requested = query === undefined ? headers["content-encoding"] : (query.get("compression") ?? undefined);
    let inflate: ConnectCompression | undefined;
    let compressionError: ConnectError | undefined;
    if (requested !== undefined && requested !== "identity") {
      inflate = opts.acceptCompression.find((c) => c.name === requested);
      if (inflate === undefined) {
        compressionError = new ConnectError(`unknown compression "${requested}": supported encodings are ${acceptable}`, Code.Unimplemented, {
          "accept-encoding": acceptable,
        });
      }
    }
    const acceptEncoding = headers["accept-encoding"];
    let deflate: ConnectCompression | undefined;
    if (acceptEncoding === undefined || acceptEncoding === "") {
      deflate = inflate;
    } else {
      for (const name of acceptEncoding.split(",")) {
        deflate = opts.acceptCompression.find((c) => c.name === name.trim());
        if (deflate !== undefined) break;
      }
    }

    if (opts.requireConnectProtocolHeader) {
      const version = query === undefined ? headers["connect-protocol-version"] : query.get("connect");
      const want = query === undefined ? "1" : "v1";
      const name = query === undefined ? "Connect-Protocol-Version" : "connect";
      if (version === undefined || version === null) {
        return fail(new ConnectError(`missing required ${query === undefined ? "header" : "parameter"}: set ${name} to "${want}"`, Code.InvalidArgument), deflate);
      }
      if (version !== want) return fail(new ConnectError(`${name} must be "${want}": got "${String(version)}"`, Code.InvalidArgument), deflate);
    }
    if (compressionError !== undefined) return fail(compressionError, deflate);
    const timeout = connectTimeoutOf(headers["connect-timeout-ms"] as string | undefined);
    if (timeout.error !== undefined) return fail(timeout.error, deflate);
    if (timeout.ms !== undefined) timer = setTimeout(() => fail(new ConnectError("the operation timed out", Code.DeadlineExceeded), deflate), timeout.ms);

    const decoded = (bytes: Uint8Array) => {
      if (done) return;
      if (inflate === undefined) return handle(bytes);
      inflate.decompress(bytes, opts.maxBytes).then(
        (b) => (done ? undefined : handle(b)),
        (e: unknown) => fail(asDecodeFailure(e), deflate),
      );
    };

    const handle = (bytes: Uint8Array) => {
      let request: never;
      try {
        if (bytes.length > opts.maxBytes) {
          throw new ConnectError(`message size ${bytes.length} is larger than configured readMaxBytes ${opts.maxBytes}`, Code.ResourceExhausted);
        }
        request = decode(route.input, encoding, bytes, jsonRead) as never;
      } catch (e) {
        return fail(e, deflate);
      }
      const rid = headers["x-request-id"];
      const admission = opts.admit(procedure, headers.authorization, Array.isArray(rid) ? rid.join(", ") : rid);
      requestId = admission.requestId;
      const caller = admission.caller.name;
      const rollout = rolloutOf(request);
      span = opts.trace?.(procedure, "connect_rpc", headers.traceparent as string | undefined, headers.tracestate as string | undefined);
      if (admission.refusal !== undefined) return fail(admission.refusal, deflate, { caller, rollout });
      let body: Uint8Array;
      try {
        const run = () =>
          encoding === "proto"
            ? entry.bytes(request)
            : Buffer.from(entry.json !== undefined ? entry.json(request) : toJsonString(entry.method.output, entry.message(request)), "utf8");
        body = span === undefined ? run() : span.run(run);
      } catch (e) {
        return fail(e, deflate, { caller, rollout });
      }
      done = true;
      clearTimeout(timer);
      opts.report({ procedure, method: entry.method.name, requestId, caller, rollout, started, span }, undefined);
      answer(200, { "content-type": CONTENT_TYPE[encoding], "x-request-id": requestId }, body, deflate);
    };

    if (query !== undefined) {
      // GET: the message is in the query, base64 (either alphabet) when `base64=1`.
      const message = query.get("message") ?? "";
      let bytes: Uint8Array;
      try {
        bytes = query.get("base64") === "1" ? base64Decode(message) : encoder.encode(message);
      } catch (e) {
        return fail(e, deflate);
      }
      return decoded(bytes);
    }
    readBody(call.body, headers["content-length"], opts.maxBytes, decoded, (e) => fail(e, deflate));
  }

  const onStream: OnStreamHook = (stream, headers) => {
    const t = take(headers[":method"], headers[":path"], headers);
    if (t === undefined) return false;
    opts.served?.(t.route.procedure);
    stream.on("error", ignore);
    serve({
      ...t,
      body: stream,
      reply(status, out, body) {
        if (stream.destroyed) return;
        out[":status"] = status;
        stream.respond(out);
        // A refusal answered while the client is still sending: RST_STREAM NO_ERROR once it is out.
        stream.end(body, () => {
          if (!stream.destroyed && !stream.readableEnded) stream.close(constants.NGHTTP2_NO_ERROR);
        });
      },
    });
    return true;
  };

  return {
    onStream,
    handler: (next) => (req, res) => {
      if (req.httpVersionMajor !== 1) return next(req, res);
      const t = take(req.method, req.url, req.headers);
      if (t === undefined) return next(req, res);
      opts.served?.(t.route.procedure);
      const r = res as ServerResponse;
      const request = req as IncomingMessage;
      request.on("error", ignore);
      serve({
        ...t,
        body: request,
        reply(status, out, body) {
          if (r.destroyed) return;
          r.writeHead(status, out);
          // node:http reads and discards what is left of the body once the answer is written.
          r.end(body);
        },
      });
    },
  };
}

const encoder = new TextEncoder();
const ignore = () => undefined;

/** Returns where a URL's fragment starts (its length when it has none), from the query's '?'. */
function hashAt(url: string, from: number): number {
  const h = url.indexOf("#", from);
  return h < 0 ? url.length : h;
}

/** Returns a request message decoded as connect-node decodes it, errors included. */
function decode(schema: DescMessage, encoding: UnaryEncoding, bytes: Uint8Array, json: { readonly ignoreUnknownFields: boolean }): unknown {
  if (encoding === "proto") {
    try {
      return fromBinary(schema, bytes);
    } catch (e) {
      // connect-es says INTERNAL; it is the caller's mistake (request-decode-codes.ts).
      throw new ConnectError(`parse binary: ${e instanceof Error ? e.message : String(e)}`, Code.InvalidArgument);
    }
  }
  try {
    return fromJsonString(schema, decoder.decode(bytes), json);
  } catch (e) {
    throw ConnectError.from(e, Code.InvalidArgument);
  }
}

/**
 * Reads a unary request body as connect-node does: a declared content-length over `max` is
 * refused before anything is read, a body that breaks its declared length is INVALID_ARGUMENT,
 * and an undeclared one is refused as soon as it passes `max`.
 */
function readBody(body: NodeJS.ReadableStream, lengthHeader: string | undefined, max: number, done: (bytes: Uint8Array) => void, fail: (e: ConnectError) => void): void {
  const hint = lengthHeader === undefined ? NaN : parseInt(lengthHeader, 10);
  const declared = Number.isSafeInteger(hint) && hint >= 0;
  if (declared && hint > max) return fail(new ConnectError(`message size ${hint} is larger than configured readMaxBytes ${max}`, Code.ResourceExhausted));
  let first: Buffer | undefined;
  let chunks: Buffer[] | undefined;
  let size = 0;
  let stopped = false;
  const onData = (chunk: Buffer) => {
    if (stopped) return;
    size += chunk.length;
    if (declared && size > hint) {
      stopped = true;
      return fail(new ConnectError(`protocol error: promised ${hint} bytes, received ${size}`, Code.InvalidArgument));
    }
    if (!declared && size > max) {
      stopped = true;
      return fail(new ConnectError(`message size is larger than configured readMaxBytes ${max}`, Code.ResourceExhausted));
    }
    if (first === undefined) first = chunk;
    else (chunks ??= [first]).push(chunk);
  };
  body.on("data", onData);
  body.once("end", () => {
    if (stopped) return;
    if (declared && size < hint) return fail(new ConnectError(`protocol error: promised ${hint} bytes, received ${size}`, Code.InvalidArgument));
    done(chunks !== undefined ? Buffer.concat(chunks, size) : (first ?? new Uint8Array(0)));
  });
}
