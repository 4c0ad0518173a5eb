import type { ConnectError } from "@connectrpc/connect";
// connect marks protocol-connect internal (not semver-stable): this folder is its only importer
// and package.json pins @connectrpc/connect exactly (test/contract.test.ts checks both).
import { codeToHttpStatus, errorToJsonBytes, parseTimeout } from "@connectrpc/connect/protocol-connect";

/**
 * The Connect protocol's unary wire pieces, as connect-node writes and reads them, so that the
 * Connect fast path (../connect-fast-path.ts) cannot answer differently: the error body and
 * its HTTP status, the `connect-timeout-ms` rule, the unary content types.
 */

/** Returns the HTTP status of a Connect error code (the Connect protocol's mapping). */
export const httpStatusOf: (code: ConnectError["code"]) => number = codeToHttpStatus;

/**
 * Returns the Connect error JSON `{code, message, details}` of an error, encoded (the JSON
 * write options only shape the `debug` form of details: the defaults, as the server uses).
 */
export function errorBody(error: ConnectError): Uint8Array {
  return errorToJsonBytes(error, undefined);
}

/** A parsed `connect-timeout-ms`: its milliseconds, or why it was refused, or neither (no header). */
export interface ConnectTimeout {
  readonly ms?: number;
  readonly error?: ConnectError;
}

const NO_TIMEOUT: ConnectTimeout = {};

/** Returns the deadline a `connect-timeout-ms` header asks for, or connect's refusal of a malformed one. */
export function connectTimeoutOf(header: string | undefined): ConnectTimeout {
  if (header === undefined) return NO_TIMEOUT;
  const t = parseTimeout(header, Number.MAX_SAFE_INTEGER);
  if (t.error !== undefined) return { error: t.error };
  return t.timeoutMs === undefined ? NO_TIMEOUT : { ms: t.timeoutMs };
}

/** Which encoding a unary Connect content type names, or undefined for any other type. */
export type UnaryEncoding = "json" | "proto";

/** connect's own rule for unary Connect content types: json (optionally with a UTF-8 charset) or proto, any case. */
const UNARY_TYPE = /^application\/(?:(json)(?:; ?charset=utf-?8)?|(proto))$/i;

/** Returns the encoding of a unary Connect POST's content type, or undefined when connect would not take it as one. */
export function unaryEncodingOf(type: string | undefined): UnaryEncoding | undefined {
  if (type === "application/json") return "json";
  if (type === "application/proto") return "proto";
  if (type === undefined) return undefined;
  const m = UNARY_TYPE.exec(type);
  return m === null ? undefined : m[2] !== undefined ? "proto" : "json";
}
