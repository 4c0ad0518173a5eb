import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { ServerHttp2Stream } from "node:http2";
import { constants } from "node:http2";
import { fromBinary, fromJsonString, toBinary, toJsonString, type DescMessage, type Message } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { procedureOf, type HotChange, type HotUnary } from "../service/hot-method.js";
import { toConnectError } from "../service/errors.js";
import { asDecodeFailure } from "./connect/request-decode-codes.js";
import { lingerIfIncomplete, readsOwnBody } from "./http1-drain.js";
import { connectTimeoutOf, errorBody, httpStatusOf, unaryEncodingOf, type UnaryEncoding } from "./connect/wire.js";
import type { RequestHandler } from "./http-endpoints.js";
import { rolloutOf, type CallSpan } from "./observe.js";
import type { OnStreamHook } from "./one-port.js";
import type { FastPathOptions } from "./grpc-fast-path.js";

/**
 * The Connect fast path: the hot unary RPCs (Route, RouteBatch, RecordOutcome) and the
 * control-plane changes of `changes` (SetWeight, Pause, …) over the Connect protocol, served
 * straight from node:http's request and node:http2's stream instead of connect-node's universal
 * handler, built from the same tables (hot-method.ts) so the paths cannot answer differently.
 *
 * It does what connect-node's Connect unary handler does, in its order: content type (or the
 * GET `encoding`) → compression negotiation (`content-encoding`/`compression`, `accept-encoding`;
 * an unknown encoding is UNIMPLEMENTED naming the supported ones) → `connect-timeout-ms` → the
 * body within readMaxBytes (a declared content-length first) → decompression → decoding with the
 * method's input schema (JSON with the server's strict unknown-field rule; the table's
 * hand-written readers first, HotUnary.fromJson/fromBinary, which take only plain requests and
 * leave anything else to protobuf-es) → admission (admit.ts:
 * request id, readiness, auth) → the table's handler → the answer (`message` for JSON, `bytes`
 * for binary), compressed when negotiated and at least compressMinBytes. Errors are Connect's
 * error JSON with its HTTP status; the call reporter (metrics, logging) sees every call that
 * reaches admission — as connect-node's interceptor does, which runs after decoding.
 *
 * A change's handler is asynchronous (its answer comes once the change has committed); as in
 * connect-node, once it runs the deadline no longer cuts the call short. One difference on
 * purpose: a `connect-timeout-ms` deadline that passes while the body is still arriving answers
 * DEADLINE_EXCEEDED (connect-node's handler ignores its own deadline for a
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
  /** Control-plane changes served too (answered once their change has committed). */
  readonly changes?: readonly HotChange[];
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
  readonly entry: HotUnary | HotChange;
  readonly input: DescMessage;
  readonly get: boolean;
}

const decoder = new TextDecoder();
const CONTENT_TYPE: Record<UnaryEncoding, string> = { json: "application/json", proto: "application/proto" };
/** Most distinct `accept-encoding` values whose negotiation is remembered (clients send a handful). */
const ACCEPT_CACHE_MAX = 64;

/** What every call of one fast path shares. */
interface Shared {
  readonly opts: ConnectFastPathOptions;
  readonly jsonRead: { readonly ignoreUnknownFields: boolean };
  readonly compressMinBytes: number;
  /** The accepted compressions' names, comma-separated (UNIMPLEMENTED's message, `accept-encoding`). */
  readonly acceptable: string;
  /** The compression each `accept-encoding` value seen picks (null: none). */
  readonly picked: Map<string, ConnectCompression | null>;
}

/** Returns the Connect fast path for a hot-method table (see the module comment). */
export function createConnectFastPath(opts: ConnectFastPathOptions): ConnectFastPath {
  const byPath = new Map<string, Route>();
  for (const entry of [...opts.methods, ...(opts.changes ?? [])]) {
    if (entry.kind === "server_streaming") continue;
    byPath.set(`/${procedureOf(entry)}`, {
      procedure: procedureOf(entry),
      entry,
      input: entry.method.input,
      get: entry.method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS,
    });
  }
  const shared: Shared = {
    opts,
    jsonRead: { ignoreUnknownFields: opts.ignoreUnknownFields },
    compressMinBytes: opts.compressMinBytes ?? 1024,
    acceptable: opts.acceptCompression.map((c) => c.name).join(","),
    picked: new Map(),
  };

  /**
   * Returns the call when connect-node would serve the request with its Connect unary handler,
   * or undefined to pass it on.
   */
  function take(
    method: string | undefined,
    url: string | undefined,
    headers: IncomingHttpHeaders,
    res: ServerResponse | undefined,
    stream: ServerHttp2Stream | undefined,
  ): ConnectCall | undefined {
    if (url === undefined || (method !== "POST" && method !== "GET")) return undefined;
    const q = url.indexOf("?");
    const route = byPath.get(q < 0 ? url : url.slice(0, q));
    if (route === undefined) return undefined;
    const type = headers["content-type"];
    if (method === "POST") {
      const encoding = unaryEncodingOf(type);
      return encoding === undefined ? undefined : new ConnectCall(shared, route, encoding, headers, undefined, res, stream);
    }
    // GET: only the Connect handler allows it; a content type, if sent, must still be a Connect one.
    if (!route.get || (type !== undefined && type !== "" && unaryEncodingOf(type) === undefined)) return undefined;
    const query = new URLSearchParams(q < 0 ? "" : url.slice(q + 1, hashAt(url, q)));
    const enc = query.get("encoding");
    const encoding = enc === "json" ? "json" : enc === "proto" ? "proto" : undefined;
    return encoding === undefined ? undefined : new ConnectCall(shared, route, encoding, headers, query, res, stream);
  }

  const onStream: OnStreamHook = (stream, headers) => {
    const call = take(headers[":method"], headers[":path"], headers, undefined, stream);
    if (call === undefined) return false;
    opts.served?.(call.route.procedure);
    stream.on("error", ignore);
    call.start(stream);
    return true;
  };

  return {
    onStream,
    handler: (next) => (req, res) => {
      if (req.httpVersionMajor !== 1) return next(req, res);
      const call = take(req.method, req.url, req.headers, res as ServerResponse, undefined);
      if (call === undefined) return next(req, res);
      opts.served?.(call.route.procedure);
      const request = req as IncomingMessage;
      // The call reads the body to its end before answering; an answer sooner arms the lingering close itself.
      readsOwnBody(request);
      request.on("error", ignore);
      call.start(request);
    },
  };
}

/**
 * One call, whatever its transport (an HTTP/1.1 response or an HTTP/2 stream): one object per
 * call holding its state, its steps as methods, instead of a closure per step.
 */
class ConnectCall {
  readonly started = process.hrtime.bigint();
  private done = false;
  private timer: NodeJS.Timeout | undefined = undefined;
  private requestId: string | undefined = undefined;
  /** The call's span once admitted (tracing on); the reporter ends it with the call's status. */
  private span: CallSpan | undefined = undefined;
  /** The compression the request is in, and the one the answer may be in. */
  private inflate: ConnectCompression | undefined = undefined;
  private deflate: ConnectCompression | undefined = undefined;
  // The body as it arrives (a POST's): its declared length, what has come, whether reading stopped.
  private declared = -1;
  private first: Buffer | undefined = undefined;
  private chunks: Buffer[] | undefined = undefined;
  private size = 0;
  private stopped = false;

  constructor(
    private readonly shared: Shared,
    readonly route: Route,
    private readonly encoding: UnaryEncoding,
    private readonly headers: IncomingHttpHeaders,
    /** The query of a GET, undefined for a POST. */
    private readonly query: URLSearchParams | undefined,
    private readonly res: ServerResponse | undefined,
    private readonly stream: ServerHttp2Stream | undefined,
  ) {}

  /** Serves the call; `body` is the request body (a POST's). */
  start(body: NodeJS.ReadableStream): void {
    const { headers, query } = this;
    const { opts, acceptable } = this.shared;
    // Compression: what the request is in, and what the answer may be in.
    const requested = query === undefined ? headers["content-encoding"] : (query.get("compression") ?? undefined);
    let compressionError: ConnectError | undefined;
    if (requested !== undefined && requested !== "identity") {
      this.inflate = opts.acceptCompression.find((c) => c.name === requested);
      if (this.inflate === undefined) {
        compressionError = new ConnectError(`unknown compression "${requested}": supported encodings are ${acceptable}`, Code.Unimplemented, {
          "accept-encoding": acceptable,
        });
      }
    }
    const acceptEncoding = headers["accept-encoding"];
    this.deflate = acceptEncoding === undefined || acceptEncoding === "" ? this.inflate : this.pick(acceptEncoding);

    if (opts.requireConnectProtocolHeader) {
      const version = query === undefined ? headers["connect-protocol-version"] : query.get("connect");
      const want = query === undefined ? "1" : "v1";
      const name = query === undefined ? "Connect-Protocol-Version" : "connect";
      if (version === undefined || version === null) {
        return this.fail(new ConnectError(`missing required ${query === undefined ? "header" : "parameter"}: set ${name} to "${want}"`, Code.InvalidArgument));
      }
      if (version !== want) return this.fail(new ConnectError(`${name} must be "${want}": got "${String(version)}"`, Code.InvalidArgument));
    }
    if (compressionError !== undefined) return this.fail(compressionError);
    const timeoutHeader = headers["connect-timeout-ms"] as string | undefined;
    if (timeoutHeader !== undefined) {
      const timeout = connectTimeoutOf(timeoutHeader);
      if (timeout.error !== undefined) return this.fail(timeout.error);
      if (timeout.ms !== undefined) {
        this.timer = setTimeout(() => this.fail(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeout.ms);
      }
    }

    if (query !== undefined) {
      // GET: the message is in the query, base64 (either alphabet) when `base64=1`.
      const message = query.get("message") ?? "";
      if (query.get("base64") === "1") {
        let bytes: Uint8Array;
        try {
          bytes = base64Decode(message);
        } catch (e) {
          return this.fail(e);
        }
        return this.decoded(bytes);
      }
      // The message as text: the JSON reader takes it without the round trip through UTF-8.
      if (this.inflate === undefined) return this.handle(undefined, message);
      return this.decoded(encoder.encode(message));
    }
    this.readBody(body);
  }

  /** Returns the compression an `accept-encoding` value picks: the first name the server accepts. */
  private pick(acceptEncoding: string): ConnectCompression | undefined {
    const { picked, opts } = this.shared;
    const known = picked.get(acceptEncoding);
    if (known !== undefined) return known ?? undefined;
    let deflate: ConnectCompression | undefined;
    for (const name of acceptEncoding.split(",")) {
      deflate = opts.acceptCompression.find((c) => c.name === name.trim());
      if (deflate !== undefined) break;
    }
    if (picked.size < ACCEPT_CACHE_MAX) picked.set(acceptEncoding, deflate ?? null);
    return deflate;
  }

  /**
   * Reads a unary request body as connect-node does: a declared content-length over the limit
   * is refused before anything is read, a body that breaks its declared length is
   * INVALID_ARGUMENT, and an undeclared one is refused as soon as it passes the limit.
   */
  private readBody(body: NodeJS.ReadableStream): void {
    const max = this.shared.opts.maxBytes;
    const lengthHeader = this.headers["content-length"];
    const hint = lengthHeader === undefined ? NaN : parseInt(lengthHeader, 10);
    if (Number.isSafeInteger(hint) && hint >= 0) {
      if (hint > max) return this.fail(new ConnectError(`message size ${hint} is larger than configured readMaxBytes ${max}`, Code.ResourceExhausted));
      this.declared = hint;
    }
    body.on("data", (chunk: Buffer) => this.onData(chunk));
    body.on("end", () => this.onEnd());
  }

  private onData(chunk: Buffer): void {
    if (this.stopped) return;
    this.size += chunk.length;
    const { declared, size } = this;
    if (declared >= 0 && size > declared) {
      this.stopped = true;
      return this.fail(new ConnectError(`protocol error: promised ${declared} bytes, received ${size}`, Code.InvalidArgument));
    }
    if (declared < 0 && size > this.shared.opts.maxBytes) {
      this.stopped = true;
      return this.fail(new ConnectError(`message size is larger than configured readMaxBytes ${this.shared.opts.maxBytes}`, Code.ResourceExhausted));
    }
    if (this.first === undefined) this.first = chunk;
    else (this.chunks ??= [this.first]).push(chunk);
  }

  private onEnd(): void {
    if (this.stopped) return;
    this.stopped = true;
    const { declared, size } = this;
    if (declared >= 0 && size < declared) {
      return this.fail(new ConnectError(`protocol error: promised ${declared} bytes, received ${size}`, Code.InvalidArgument));
    }
    const bytes = this.chunks !== undefined ? Buffer.concat(this.chunks, size) : (this.first ?? EMPTY);
    this.first = undefined;
    this.chunks = undefined;
    this.decoded(bytes);
  }

  /** The request's bytes as sent: decompressed when they are compressed, then handled. */
  private decoded(bytes: Uint8Array): void {
    if (this.done) return;
    const inflate = this.inflate;
    if (inflate === undefined) return this.handle(bytes, undefined);
    inflate.decompress(bytes, this.shared.opts.maxBytes).then(
      (b) => (this.done ? undefined : this.handle(b, undefined)),
      (e: unknown) => this.fail(asDecodeFailure(e)),
    );
  }

  /** Decodes the request (its bytes, or a GET's message as text), admits it, runs the handler, answers. */
  private handle(bytes: Uint8Array | undefined, text: string | undefined): void {
    const { route, headers, shared } = this;
    const { opts } = shared;
    const { procedure, entry } = route;
    let request: never;
    try {
      request = this.decode(bytes, text) as never;
    } catch (e) {
      return this.fail(e);
    }
    const rid = headers["x-request-id"];
    const admission = opts.admit(procedure, headers.authorization, Array.isArray(rid) ? rid.join(", ") : rid);
    const requestId = (this.requestId = admission.requestId);
    const caller = admission.caller.name;
    const rollout = rolloutOf(request);
    const span = (this.span = opts.trace?.(procedure, "connect_rpc", headers.traceparent as string | undefined, headers.tracestate as string | undefined));
    if (admission.refusal !== undefined) return this.fail(admission.refusal, caller, rollout);
    if (entry.kind === "change") {
      // As connect-node: once the handler runs, its deadline no longer cuts the call short (a
      // change that commits is answered as committed).
      clearTimeout(this.timer);
      const changed = span === undefined ? entry.message(request, admission.caller) : span.run(() => entry.message(request, admission.caller));
      changed
        .then((answer) => this.encode(entry, answer))
        .then(
          (body) => this.answered(body, requestId, caller, rollout),
          (e: unknown) => this.fail(e, caller, rollout),
        )
        // Answering itself failed (the stream torn down meanwhile): nothing is left to tell.
        .catch(() => undefined);
      return;
    }
    let body: Uint8Array;
    try {
      body = span === undefined ? this.run(entry, request) : span.run(() => this.run(entry, request));
    } catch (e) {
      return this.fail(e, caller, rollout);
    }
    this.answered(body, requestId, caller, rollout);
  }

  /** Answers an admitted call that succeeded with `body`, and reports it. */
  private answered(body: Uint8Array, requestId: string, caller: string, rollout: string): void {
    const { route, started, span } = this;
    this.done = true;
    clearTimeout(this.timer);
    this.shared.opts.report({ procedure: route.procedure, method: route.entry.method.name, requestId, caller, rollout, started, span }, undefined);
    this.answer(200, { "content-type": CONTENT_TYPE[this.encoding], "x-request-id": requestId }, body, this.deflate);
  }

  /** Returns the request message decoded as connect-node decodes it, errors included. */
  private decode(bytes: Uint8Array | undefined, text: string | undefined): unknown {
    const { route, encoding, shared } = this;
    const max = shared.opts.maxBytes;
    const readers = route.entry.kind === "unary" ? route.entry : undefined;
    if (encoding === "json" && readers?.fromJson !== undefined) {
      // The hand-written reader takes printable ASCII only, so its text's length is its size.
      const plain = text ?? (bytes instanceof Buffer ? bytes.toString("latin1", 0, bytes.length) : undefined);
      if (plain !== undefined && plain.length <= max) {
        const read = readers.fromJson(plain);
        if (read !== undefined) return read;
      }
    }
    const raw = bytes ?? encoder.encode(text);
    if (raw.length > max) {
      throw new ConnectError(`message size ${raw.length} is larger than configured readMaxBytes ${max}`, Code.ResourceExhausted);
    }
    if (encoding === "proto" && readers?.fromBinary !== undefined) {
      const read = readers.fromBinary(raw);
      if (read !== undefined) return read;
    }
    return decode(route.input, encoding, raw, shared.jsonRead);
  }

  /** Returns the answer's body: the table's bytes or JSON. */
  private run(entry: HotUnary, request: never): Uint8Array {
    if (this.encoding === "proto") return entry.bytes(request);
    return Buffer.from(entry.json !== undefined ? entry.json(request) : toJsonString(entry.method.output, entry.message(request)), "utf8");
  }

  /** Returns a change's answer encoded as connect-node encodes it. */
  private encode(entry: HotChange, answer: Message): Uint8Array {
    if (this.encoding === "proto") return toBinary(entry.method.output, answer);
    return Buffer.from(toJsonString(entry.method.output, answer), "utf8");
  }

  /**
   * Answers an error: Connect's error JSON with its HTTP status; reported (and its request id
   * echoed) once the call was admitted (`caller` given).
   */
  private fail(e: unknown, caller?: string, rollout?: string): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    let ce: ConnectError;
    const { requestId, route } = this;
    if (caller !== undefined && requestId !== undefined) {
      ce = toConnectError(e, requestId);
      this.shared.opts.report(
        { procedure: route.procedure, method: route.entry.method.name, requestId, caller, rollout: rollout ?? "", started: this.started, span: this.span },
        ce,
      );
      ce.metadata.set("x-request-id", requestId);
    } else {
      ce = e instanceof ConnectError ? e : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
    }
    const out: OutgoingHttpHeaders = { "content-type": "application/json" };
    ce.metadata.forEach((value, key) => (out[key] = value));
    this.answer(httpStatusOf(ce.code), out, errorBody(ce), this.deflate);
  }

  /** Writes an answer, compressed when `accepted` and large enough. */
  private answer(status: number, out: OutgoingHttpHeaders, body: Uint8Array, accepted: ConnectCompression | undefined): void {
    if (accepted === undefined || body.length < this.shared.compressMinBytes) {
      out["content-length"] = body.length;
      return this.reply(status, out, body);
    }
    accepted.compress(body).then(
      (packed) => {
        out["content-encoding"] = accepted.name;
        out["content-length"] = packed.length;
        this.reply(status, out, packed);
      },
      () => {
        out["content-length"] = body.length;
        this.reply(status, out, body);
      },
    );
  }

  /**
   * Writes the answer: status, headers (lowercase), body; an answer written before the body has
   * all come (a refusal) also stops the client sending the rest.
   */
  private reply(status: number, out: OutgoingHttpHeaders, body: Uint8Array): void {
    const { res, stream } = this;
    if (res !== undefined) {
      if (res.destroyed) return;
      // A refusal before the body has all come: read and drop the rest after the answer (http1-drain.ts).
      if (!res.req.complete) lingerIfIncomplete(res.req, res);
      res.writeHead(status, out);
      // node:http reads and discards what is left of the body once the answer is written.
      res.end(body);
      return;
    }
    if (stream === undefined || stream.destroyed) return;
    out[":status"] = status;
    stream.respond(out);
    // A refusal answered while the client is still sending: RST_STREAM NO_ERROR once it is out.
    stream.end(body, () => {
      if (!stream.destroyed && !stream.readableEnded) stream.close(constants.NGHTTP2_NO_ERROR);
    });
  }
}

const EMPTY = new Uint8Array(0);

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
