import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { frameOf } from "../grpc/envelope.js";

/**
 * A request connect-es cannot decode is the caller's mistake, but connect-es reports it as
 * INTERNAL: a protobuf binary it cannot parse ("parse binary: premature EOF"), an envelope
 * flagged compressed without a `grpc-encoding`, a body that does not decompress. Clients then
 * retry or page someone for what is a bad request. This turns exactly those messages into
 * INVALID_ARGUMENT (same message) on every protocol connect-node serves; the gRPC fast path
 * (grpc/envelope.ts) answers the same.
 */

/** The messages of connect-es's request-decoding failures (all raised as INTERNAL). */
export const REQUEST_DECODE_FAILURE = /^(parse binary: |received compressed envelope, but do not know how to decompress|decompression failed|invalid envelope, already compressed)/;

/** Returns a request-decoding failure raised as INTERNAL as the same error with INVALID_ARGUMENT; anything else as it is. */
export function asDecodeFailure(e: unknown): unknown {
  if (e instanceof ConnectError && e.code === Code.Internal && REQUEST_DECODE_FAILURE.test(e.rawMessage)) {
    return new ConnectError(e.rawMessage, Code.InvalidArgument, e.metadata, undefined, e.cause);
  }
  return e;
}

const GRPC_INTERNAL = "13";
const GRPC_INVALID_ARGUMENT = "3";

/** Wraps every handler registered on `router` so far (call it last in `routes`). */
export function withRequestDecodeCodes(router: ConnectRouter): void {
  const handlers = router.handlers as UniversalHandler[];
  for (let i = 0; i < handlers.length; i++) {
    const h = handlers[i]!;
    const wrapped = async (req: Parameters<UniversalHandler>[0]) => remap(await h(req));
    handlers[i] = Object.assign(wrapped, {
      requestPath: h.requestPath,
      service: h.service,
      method: h.method,
      protocolNames: h.protocolNames,
      allowedMethods: h.allowedMethods,
      supportedContentType: h.supportedContentType,
    }) as UniversalHandler;
  }
}

function decodeFailure(message: string | null | undefined): boolean {
  if (message === null || message === undefined) return false;
  let text = message;
  try {
    text = decodeURIComponent(message);
  } catch {
    // as sent
  }
  return REQUEST_DECODE_FAILURE.test(text);
}

function remap(res: UniversalServerResponse): UniversalServerResponse {
  const type = res.header?.get("content-type") ?? "";
  if (type.startsWith("application/grpc-web")) return { ...res, ...(res.body === undefined ? {} : { body: grpcWebBody(res.body) }) };
  if (type.startsWith("application/grpc")) {
    const trailer = res.trailer;
    const body = res.body;
    if (trailer === undefined) return res;
    // The trailer is filled in while the body is sent: look once it has been.
    const fix = () => {
      if (trailer.get("grpc-status") === GRPC_INTERNAL && decodeFailure(trailer.get("grpc-message"))) trailer.set("grpc-status", GRPC_INVALID_ARGUMENT);
    };
    if (body === undefined) {
      fix();
      return res;
    }
    return { ...res, body: after(body, fix) };
  }
  if (type.startsWith("application/connect+")) return res.body === undefined ? res : { ...res, body: connectStreamBody(res.body) };
  if (res.status === 500 && type.startsWith("application/json") && res.body !== undefined) {
    const out = { ...res };
    out.body = connectUnaryBody(out, res.body);
    return out;
  }
  return res;
}

type Body = NonNullable<UniversalServerResponse["body"]>;

async function* chunks(body: Body): AsyncIterable<Uint8Array> {
  if (body instanceof Uint8Array) yield body;
  else yield* body;
}

async function* after(body: Body, then: () => void): AsyncIterable<Uint8Array> {
  yield* chunks(body);
  then();
}

/** Rewrites `{"code":"internal","message":"parse binary: …"}` in a JSON error text. */
function fixErrorJson(text: string): string | undefined {
  let j: { code?: string; message?: string; error?: { code?: string; message?: string } };
  try {
    j = JSON.parse(text) as typeof j;
  } catch {
    return undefined;
  }
  const e = j.error ?? j;
  if (e.code !== "internal" || !decodeFailure(e.message)) return undefined;
  e.code = "invalid_argument";
  return JSON.stringify(j);
}

/** Connect unary: the status is read after the first body chunk, so it can still change here. */
function connectUnaryBody(res: UniversalServerResponse, body: Body): Body {
  const status = res as { status: number };
  return (async function* () {
    const parts: Uint8Array[] = [];
    for await (const c of chunks(body)) parts.push(c);
    const text = Buffer.concat(parts).toString("utf8");
    const fixed = fixErrorJson(text);
    const out = Buffer.from(fixed ?? text, "utf8");
    if (fixed !== undefined) {
      status.status = 400;
      res.header?.set("content-length", String(out.length));
    }
    yield out;
  })();
}

/** Connect streaming: the end-of-stream envelope (flag 0x02) carries the error as JSON. */
async function* connectStreamBody(body: Body): AsyncIterable<Uint8Array> {
  for await (const c of chunks(body)) {
    if (c.length >= 5 && (c[0]! & 2) === 2 && Buffer.from(c.buffer, c.byteOffset, c.byteLength).readUInt32BE(1) === c.length - 5) {
      const fixed = fixErrorJson(Buffer.from(c.subarray(5)).toString("utf8"));
      if (fixed !== undefined) {
        yield frameOf(Buffer.from(fixed, "utf8"), c[0]!);
        continue;
      }
    }
    yield c;
  }
}

/** gRPC-web: the trailers are the last frame (flag 0x80), as HTTP/1 header text. */
async function* grpcWebBody(body: Body): AsyncIterable<Uint8Array> {
  for await (const c of chunks(body)) {
    if (c.length >= 5 && (c[0]! & 0x80) === 0x80) {
      const text = Buffer.from(c.subarray(5)).toString("utf8");
      const message = /^grpc-message: ?(.*)$/im.exec(text)?.[1]?.trim();
      if (/^grpc-status: ?13\s*$/im.test(text) && decodeFailure(message)) {
        yield frameOf(Buffer.from(text.replace(/^grpc-status: ?13/im, "grpc-status: 3"), "utf8"), c[0]!);
        continue;
      }
    }
    yield c;
  }
}
