import type { OutgoingHttpHeaders } from "node:http2";
import type { ConnectError } from "@connectrpc/connect";
// connect marks protocol-grpc internal (not semver-stable): this folder is its only importer
// and package.json pins @connectrpc/connect exactly (test/contract.test.ts checks both).
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { encodeGrpcMessage } from "./grpc-message.js";

/** The response headers of every gRPC answer the fast path writes, before any status. */
export const RESPONSE_HEADERS: Readonly<OutgoingHttpHeaders> = { ":status": 200, "content-type": "application/grpc+proto" };

/** The trailer of a successful call. */
export const STATUS_OK: Readonly<OutgoingHttpHeaders> = { "grpc-status": "0" };

/**
 * Returns the status headers of an error as connect writes them — `grpc-status`,
 * `grpc-message` and `grpc-status-details-bin` (google.rpc.Status with the error's details) —
 * except that grpc-message is in the spec's minimal percent-encoding (see grpc-message.ts).
 */
export function statusHeaders(ce: ConnectError): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  setTrailerStatus(new Headers(), ce).forEach((value, key) => (out[key] = key === "grpc-message" ? encodeGrpcMessage(ce.rawMessage) : value));
  return out;
}

/**
 * Returns the deadline a `grpc-timeout` header asks for, in milliseconds (undefined when the
 * header is absent), or the INVALID_ARGUMENT/… refusal connect gives for a malformed one.
 */
export function grpcTimeoutOf(header: string | undefined): GrpcTimeout {
  if (header === undefined) return NO_TIMEOUT;
  const t = parseTimeout(header, Number.MAX_SAFE_INTEGER);
  if (t.error !== undefined) return { error: t.error };
  return t.timeoutMs === undefined ? NO_TIMEOUT : { ms: t.timeoutMs };
}

/** A parsed `grpc-timeout`: its milliseconds, or why it was refused, or neither (no header). */
export interface GrpcTimeout {
  readonly ms?: number;
  readonly error?: ConnectError;
}

const NO_TIMEOUT: GrpcTimeout = {};
