import type { RouteRequest } from "../../gen/rollgate/v1/decision_service_pb.js";

/**
 * A hand-written reader of the commonest Connect JSON RouteRequest, for the Connect fast path:
 * `{"rollout":"…","key":"…"}` in any order, either field absent, JSON whitespace anywhere
 * between tokens, string values of printable ASCII without escapes. It builds the very object
 * protobuf-es's fromJsonString would (`$typeName`, then the fields in declaration order) and
 * costs a scan and two substrings instead of JSON.parse plus a reflective walk.
 *
 * Anything else — an escape, a non-ASCII or control character, another or a repeated field
 * name, `null`, a number, a nested value, trailing bytes, a leading BOM — returns undefined, and
 * the caller decodes the text with protobuf-es as before: its answers and its errors (unknown
 * fields, duplicate keys, the strict-input rules) stay exactly what they were. A property test
 * (test/service/route-request-readers.test.ts) holds both readers to the same result on every text.
 */
export function readRouteRequestJson(text: string): RouteRequest | undefined {
  const n = text.length;
  let i = skipWs(text, 0, n);
  if (i >= n || text.charCodeAt(i) !== LBRACE) return undefined;
  i = skipWs(text, i + 1, n);
  let rollout: string | undefined;
  let key: string | undefined;
  if (i < n && text.charCodeAt(i) === RBRACE) {
    i++;
  } else {
    for (;;) {
      // A member: "rollout" or "key", a colon, a plain string.
      if (i >= n || text.charCodeAt(i) !== QUOTE) return undefined;
      const nameEnd = plainStringEnd(text, i + 1, n);
      if (nameEnd < 0) return undefined;
      const which = fieldOf(text, i + 1, nameEnd);
      i = skipWs(text, nameEnd + 1, n);
      if (i >= n || text.charCodeAt(i) !== COLON) return undefined;
      i = skipWs(text, i + 1, n);
      if (i >= n || text.charCodeAt(i) !== QUOTE) return undefined;
      const valueEnd = plainStringEnd(text, i + 1, n);
      if (valueEnd < 0) return undefined;
      const value = text.slice(i + 1, valueEnd);
      if (which === ROLLOUT && rollout === undefined) rollout = value;
      else if (which === KEY && key === undefined) key = value;
      else return undefined; // unknown or repeated: protobuf-es says what is wrong
      i = skipWs(text, valueEnd + 1, n);
      if (i >= n) return undefined;
      const c = text.charCodeAt(i);
      if (c === RBRACE) {
        i++;
        break;
      }
      if (c !== COMMA) return undefined;
      i = skipWs(text, i + 1, n);
    }
  }
  if (skipWs(text, i, n) !== n) return undefined;
  return { $typeName: "rollgate.v1.RouteRequest", rollout: rollout ?? "", key: key ?? "" };
}

const LBRACE = 0x7b;
const RBRACE = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const ROLLOUT = 1;
const KEY = 2;

/** Returns the index of the first non-whitespace character (JSON's four) at or after `i`. */
function skipWs(text: string, i: number, n: number): number {
  for (; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i;
  }
  return n;
}

/**
 * Returns the index of the closing quote of a string starting at `i` (after its opening quote)
 * when it holds only printable ASCII without escapes, else -1.
 */
function plainStringEnd(text: string, i: number, n: number): number {
  for (; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) return i;
    if (c < 0x20 || c > 0x7e || c === BACKSLASH) return -1;
  }
  return -1;
}

/** Returns which field a member name names (its JSON name and its proto name are the same). */
function fieldOf(text: string, from: number, to: number): number {
  const len = to - from;
  if (len === 7 && text.startsWith("rollout", from)) return ROLLOUT;
  if (len === 3 && text.startsWith("key", from)) return KEY;
  return 0;
}

/**
 * The same for protobuf binary: a RouteRequest of field 1 (rollout) and field 2 (key), each at
 * most once, in either order, one-byte tags, printable-ASCII values; exactly what
 * fromBinary(RouteRequestSchema, bytes) returns for those. Anything else — another field (kept
 * by protobuf-es as unknown), a repeated one, another wire type, a non-ASCII value (protobuf-es
 * checks its UTF-8), a truncated length — returns undefined for protobuf-es to decode.
 */
export function readRouteRequestBinary(bytes: Uint8Array): RouteRequest | undefined {
  const n = bytes.length;
  let i = 0;
  let rollout: string | undefined;
  let key: string | undefined;
  while (i < n) {
    const tag = bytes[i]!;
    if (tag !== TAG_ROLLOUT && tag !== TAG_KEY) return undefined;
    // The length: a varint of at most 4 bytes (values below 2^28).
    let len = 0;
    let shift = 0;
    let b: number;
    i++;
    do {
      if (i >= n || shift > 21) return undefined;
      b = bytes[i++]!;
      len |= (b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80);
    const end = i + len;
    if (end > n) return undefined;
    let value = "";
    for (let j = i; j < end; j++) {
      const c = bytes[j]!;
      if (c < 0x20 || c > 0x7e) return undefined;
    }
    if (len > 0) value = latin1(bytes, i, end);
    i = end;
    if (tag === TAG_ROLLOUT && rollout === undefined) rollout = value;
    else if (tag === TAG_KEY && key === undefined) key = value;
    else return undefined; // repeated: protobuf-es keeps the last
  }
  return { $typeName: "rollgate.v1.RouteRequest", rollout: rollout ?? "", key: key ?? "" };
}

const TAG_ROLLOUT = (1 << 3) | 2;
const TAG_KEY = (2 << 3) | 2;

/** Returns bytes [from, to) as a string of one character per byte (they are ASCII here). */
function latin1(bytes: Uint8Array, from: number, to: number): string {
  const b = bytes instanceof Buffer ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return b.toString("latin1", from, to);
}
