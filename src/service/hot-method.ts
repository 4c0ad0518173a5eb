import type { DescMessage, DescMethodServerStreaming, DescMethodUnary, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { abortedStreamError } from "./errors.js";

/**
 * One description of a hot RPC, from which every serving path is built: connect-node's
 * registration (connectMethodsOf) and the server's gRPC fast path; a Connect-protocol fast
 * path would read the same entries (the method descriptor gives its input schema for JSON or
 * binary decoding and its idempotency for GET; `message` gives what toJson writes and `bytes`
 * what a binary answer carries). A path never calls a handler any other way, so the paths
 * cannot drift apart on what a method answers or refuses.
 *
 * Handlers are synchronous where they can be (request in, answer out, domain errors thrown):
 * the fast path then answers in the same turn it decoded the request.
 */

/** A hot unary method: one request, one answer. */
export interface HotUnary<I extends DescMessage = DescMessage, O extends DescMessage = DescMessage> {
  readonly kind: "unary";
  readonly method: DescMethodUnary<I, O>;
  /** Returns the answer as a protobuf-es message, or throws a domain error. */
  message(req: MessageShape<I>): MessageShape<O>;
  /**
   * Returns the answer encoded, exactly the bytes toBinary(method.output, message(req)) writes,
   * or throws what `message` would; hand-written encoders (wire-encoding.ts) make it cheaper.
   * With `headroom`, that many bytes come first, left for the caller to fill (the gRPC path's
   * frame header), so that no path copies an answer into a frame.
   */
  bytes(req: MessageShape<I>, headroom?: number): Uint8Array;
  /**
   * Returns the answer as Connect JSON, exactly the text toJsonString(method.output, message(req))
   * writes, or throws what `message` would; when absent, a path writes toJsonString itself.
   */
  json?(req: MessageShape<I>): string;
  /**
   * Returns the request decoded from its binary form, exactly what fromBinary(method.input, bytes)
   * returns or throws, only cheaper (outcome-decode.ts); when absent, a path calls fromBinary.
   */
  decode?(bytes: Uint8Array): MessageShape<I>;
}

/**
 * A hot server-streaming method: one request, then one message per item of what `open`
 * returns, in order.
 */
export interface HotServerStream<I extends DescMessage = DescMessage, O extends DescMessage = DescMessage, T = unknown> {
  readonly kind: "server_streaming";
  readonly method: DescMethodServerStreaming<I, O>;
  /**
   * Returns the items the stream sends; throws at once for a request refused before any
   * message (invalid, NOT_FOUND), so that a path can answer it trailers-only. The items end
   * when `signal` aborts (the client went away, the deadline passed) or the source ends.
   */
  open(req: MessageShape<I>, signal: AbortSignal): AsyncIterable<T>;
  /** Returns the message of one item. */
  message(item: T): MessageInitShape<O>;
  /** Returns the encoded message of one item: the bytes toBinary writes for `message(item)`. */
  bytes(item: T): Uint8Array;
}

/**
 * Any hot method. Its item type is erased: each entry is written typed, and a path only hands
 * an entry's own items back to it.
 */
export type HotMethod = HotUnary | HotServerStream;

/** Returns "package.Service/Method", the procedure name auth, metrics and logs use. */
export function procedureOf(m: HotMethod): string {
  return `${m.method.parent.typeName}/${m.method.name}`;
}

/** Returns the connect-node implementation of one hot method, as ServiceImpl wants it. */
type ConnectImpl<M> =
  M extends HotUnary<infer I, infer O>
    ? (req: MessageShape<I>) => Promise<MessageShape<O>>
    : M extends HotServerStream<infer I, infer O, infer _T>
      ? (req: MessageShape<I>, ctx: HandlerContext) => AsyncIterable<MessageInitShape<O>>
      : never;

/**
 * Returns the connect-node implementations of a table of hot methods, keyed as the table is
 * (each key must be its method's localName, as in ServiceImpl); spread them into the service's
 * ServiceImpl beside its other methods.
 */
export function connectMethodsOf<T extends { readonly [K in keyof T]: HotMethod }>(table: T): { [K in keyof T]: ConnectImpl<T[K]> } {
  const out: Record<string, unknown> = {};
  for (const [key, m] of Object.entries(table) as [string, HotMethod][]) {
    if (key !== m.method.localName) throw new Error(`hot method table: key ${key} must be the localName ${m.method.localName}`);
    out[key] =
      m.kind === "unary"
        ? async (req: never) => m.message(req)
        : async function* (req: never, ctx: HandlerContext) {
            for await (const item of m.open(req, ctx.signal)) yield m.message(item);
            // Ended by the client or the deadline: the status the fast path reports, not OK.
            const end = abortedStreamError(ctx.signal);
            if (end !== undefined) throw end;
          };
  }
  return out as { [K in keyof T]: ConnectImpl<T[K]> };
}
