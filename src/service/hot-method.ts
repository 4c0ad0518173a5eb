import type { DescMessage, DescMethodServerStreaming, DescMethodUnary, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { callerKey, type CallerIdentity } from "./context.js";
import { abortedStreamError } from "./errors.js";
import type { Pushable } from "./fan-out.js";

/**
 * One description of a hot RPC, from which every serving path is built: connect-node's
 * registration (connectMethodsOf) and the server's gRPC fast path; a Connect-protocol fast
 * path would read the same entries (the method descriptor gives its input schema for JSON or
 * binary decoding and its idempotency for GET; `message` gives what toJson writes and `bytes`
 * what a binary answer carries). A path never calls a handler any other way, so the paths
 * cannot drift apart on what a method answers or refuses.
 *
 * Handlers are synchronous where they can be (request in, answer out, domain errors thrown):
 * the fast path then answers in the same turn it decoded the request. Control-plane changes
 * (HotChange) cannot be: they answer once committed.
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
   * Reads a Connect JSON request when it is in the simple form a hand-written reader takes,
   * returning exactly what fromJsonString(method.input, text) would; undefined for anything
   * else, which a path then decodes with protobuf-es (so its errors stay protobuf-es's). Absent:
   * always protobuf-es.
   */
  fromJson?(text: string): MessageShape<I> | undefined;
  /** The same for protobuf binary: exactly what fromBinary(method.input, bytes) returns, or undefined. */
  fromBinary?(bytes: Uint8Array): MessageShape<I> | undefined;
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
  /**
   * Returns the encoded message of one item: the bytes toBinary writes for `message(item)`, after
   * `headroom` bytes left for the caller (the gRPC frame header; see HotUnary.bytes). An entry
   * with `watch` must honour `headroom` (the gRPC fast path frames its items in place).
   */
  bytes(item: T, headroom?: number): Uint8Array;
  /**
   * The same items as `open`, in push mode (fan-out.ts): handed to a sink in the publisher's
   * turn while it can take them, the rest held (as `open`'s would be while its reader is
   * slow), with no promise or iterator step per item. `open` is then built from it, so the two
   * cannot differ. Throws at once what `open` throws at once.
   */
  watch?(req: MessageShape<I>, signal: AbortSignal): Pushable<T>;
}

/**
 * A control-plane change served as a hot unary method: its answer comes once the change has
 * committed, so the handler is asynchronous, and it acts for the admitted caller (the change's
 * actor). The Connect fast path serves these; connect-node serves them from the same entry.
 */
export interface HotChange<I extends DescMessage = DescMessage, O extends DescMessage = DescMessage> {
  readonly kind: "change";
  readonly method: DescMethodUnary<I, O>;
  /** Resolves with the answer once the change is durable, or rejects with a domain error. */
  message(req: MessageShape<I>, caller: CallerIdentity): Promise<MessageShape<O>>;
}

/**
 * Any hot method. Its item type is erased: each entry is written typed, and a path only hands
 * an entry's own items back to it.
 */
export type HotMethod = HotUnary | HotServerStream;

/** Returns "package.Service/Method", the procedure name auth, metrics and logs use. */
export function procedureOf(m: HotMethod | HotChange): string {
  return `${m.method.parent.typeName}/${m.method.name}`;
}

/** Returns the connect-node implementation of one hot method, as ServiceImpl wants it. */
type ConnectImpl<M> =
  M extends HotUnary<infer I, infer O>
    ? (req: MessageShape<I>) => Promise<MessageShape<O>>
    : M extends HotChange<infer I, infer O>
      ? (req: MessageShape<I>, ctx: HandlerContext) => Promise<MessageShape<O>>
      : M extends HotServerStream<infer I, infer O, infer _T>
      ? (req: MessageShape<I>, ctx: HandlerContext) => AsyncIterable<MessageInitShape<O>>
      : never;

/**
 * Returns the connect-node implementations of a table of hot methods, keyed as the table is
 * (each key must be its method's localName, as in ServiceImpl); spread them into the service's
 * ServiceImpl beside its other methods.
 */
export function connectMethodsOf<T extends { readonly [K in keyof T]: HotMethod | HotChange }>(table: T): { [K in keyof T]: ConnectImpl<T[K]> } {
  const out: Record<string, unknown> = {};
  for (const [key, m] of Object.entries(table) as [string, HotMethod | HotChange][]) {
    if (key !== m.method.localName) throw new Error(`hot method table: key ${key} must be the localName ${m.method.localName}`);
    out[key] =
      m.kind === "unary"
        ? async (req: never) => m.message(req)
        : m.kind === "change"
          ? (req: never, ctx: HandlerContext) => m.message(req, ctx.values.get(callerKey))
          : async function* (req: never, ctx: HandlerContext) {
              for await (const item of m.open(req, ctx.signal)) yield m.message(item);
              // Ended by the client or the deadline: the status the fast path reports, not OK.
              const end = abortedStreamError(ctx.signal);
              if (end !== undefined) throw end;
            };
  }
  return out as { [K in keyof T]: ConnectImpl<T[K]> };
}
