import { create, ScalarType, toBinary, toJson, type DescField, type DescMessage, type DescMethod } from "@bufbuild/protobuf";
import { connect as h2Connect, constants as h2, type ClientHttp2Session, type OutgoingHttpHeaders } from "node:http2";
import fc from "fast-check";

/**
 * The fuzzing kit: fast-check arbitraries of any protobuf message built from its descriptor
 * (fields, enums, oneofs, maps, repeated, nested), byte-level mutations of valid encodings,
 * Connect JSON mutations, gRPC framing mutations, and a raw HTTP/2 client that sends whatever
 * bytes it is given and reads back the status however the server gives it.
 */

/**
 * Rollout names the fuzzer prefers for `name`/`rollout` fields, so inputs reach past NOT_FOUND:
 * four of each kind the fuzz test seeds (`fz-a*` plain, `fz-b*` paused, `fz-c*` with gates), so
 * that a batch of concurrent mutating calls can name a dozen distinct existing rollouts.
 */
export const KNOWN_NAMES = ["fz-a", "fz-b", "fz-c", "fz-a1", "fz-b1", "fz-c1", "fz-a2", "fz-b2", "fz-c2", "fz-a3", "fz-b3", "fz-c3"] as const;

const NAME_FIELDS = new Set(["name", "rollout", "feature", "key", "gate"]);

const u32Edge = fc.constantFrom(0, 1, 2, 100, 5000, 10_000, 10_001, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1);
const i32Edge = fc.constantFrom(0, 1, -1, 2 ** 31 - 1, -(2 ** 31));
const i64Edge = fc.constantFrom(0n, 1n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 1_000_000_000n, 315_576_000_001n);
const u64Edge = fc.constantFrom(0n, 1n, 2n, 3n, 2n ** 53n, 2n ** 64n - 1n, 1000n);
const doubleEdge = fc.constantFrom(0, -0, 1, -1, 0.5, 0.99, 1.5, 1e308, -1e308, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.MIN_VALUE);
const text = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 12 }) },
  { weight: 1, arbitrary: fc.constantFrom("", " ", "v1", "v2", "a".repeat(300), "x\u0000y", "\u{1F600}", "../etc", "%00", "\ud800") },
);

/** Returns an arbitrary of one scalar value of a field's type. */
function scalarArb(t: ScalarType, fieldName: string): fc.Arbitrary<unknown> {
  switch (t) {
    case ScalarType.STRING:
      return NAME_FIELDS.has(fieldName) ? fc.oneof(fc.constantFrom(...KNOWN_NAMES), text) : text;
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 16 });
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return fc.oneof(doubleEdge, fc.double());
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return fc.oneof(i32Edge, fc.integer());
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.oneof(u32Edge, fc.nat({ max: 20_000 }));
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return fc.oneof(i64Edge, fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }));
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.oneof(u64Edge, fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
  }
}

function enumArb(values: readonly { number: number }[]): fc.Arbitrary<number> {
  return fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...values.map((v) => v.number)) }, { weight: 1, arbitrary: fc.constantFrom(99, -1, 2 ** 31 - 1) });
}

function singularArb(kind: "scalar" | "enum" | "message", f: DescField, depth: number): fc.Arbitrary<unknown> {
  if (kind === "scalar") return scalarArb(f.scalar!, f.name);
  if (kind === "enum") return enumArb(f.enum!.values);
  return messageArb(f.message!, depth + 1);
}

/** Returns the arbitrary of one field's value (list, map, or singular). */
function fieldArb(f: DescField, depth: number): fc.Arbitrary<unknown> {
  switch (f.fieldKind) {
    case "list":
      return fc.array(singularArb(f.listKind, f, depth), { maxLength: depth > 2 ? 1 : 4 });
    case "map": {
      const key = scalarArb(f.mapKey, f.name).map((k) => (typeof k === "boolean" ? String(k) : String(k)));
      return fc.dictionary(key as fc.Arbitrary<string>, singularArb(f.mapKind, f, depth), { maxKeys: 3, noNullPrototype: true });
    }
    case "scalar":
      return scalarArb(f.scalar, f.name);
    case "enum":
      return enumArb(f.enum.values);
    case "message":
      return messageArb(f.message, depth + 1);
  }
}

const cache = new Map<string, fc.Arbitrary<Record<string, unknown>>>();

/**
 * Returns an arbitrary of init objects of a message, built from its descriptor: every field
 * (or oneof) present or not, nested messages to a bounded depth, enum values known or not.
 */
export function messageArb(desc: DescMessage, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  const key = `${desc.typeName}@${depth}`;
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  if (depth > 4) return fc.constant({});
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  for (const m of desc.members) {
    if (m.kind === "oneof") {
      parts[m.localName] = fc.oneof(...m.fields.map((f) => fieldArb(f, depth).map((value) => ({ case: f.localName, value }))));
    } else {
      parts[m.localName] = fieldArb(m, depth);
    }
  }
  const arb = fc.record(parts, { requiredKeys: [] });
  cache.set(key, arb);
  return arb;
}

/** Returns the binary encoding of an init object (protobuf-es clamps nothing: out-of-range ints are refused, so callers catch). */
export function encode(desc: DescMessage, init: Record<string, unknown>): Uint8Array {
  return toBinary(desc, create(desc, init as never));
}

/** Returns the proto3 JSON of an init object, or undefined when it has none (e.g. a Timestamp out of range). */
export function encodeJson(desc: DescMessage, init: Record<string, unknown>): unknown {
  try {
    return toJson(desc, create(desc, init as never));
  } catch {
    return undefined;
  }
}

/** The byte-level mutations of a valid encoding. */
export const BYTE_MUTATIONS = ["flip", "truncate", "garbage", "huge-varint", "wire-type", "duplicate", "length-lie", "splice"] as const;

/** Returns `bytes` mutated by one named mutation, positioned by `a` and `b` (any non-negative ints). */
export function mutateBytes(bytes: Uint8Array, op: (typeof BYTE_MUTATIONS)[number], a: number, b: number): Uint8Array {
  const buf = Buffer.from(bytes);
  const at = buf.length === 0 ? 0 : a % buf.length;
  switch (op) {
    case "flip":
      if (buf.length === 0) return Buffer.from([1 << (b % 8)]);
      buf[at] = buf[at]! ^ (1 << (b % 8));
      return buf;
    case "truncate":
      return buf.subarray(0, at);
    case "garbage":
      return Buffer.concat([buf, Buffer.from(Array.from({ length: 1 + (b % 8) }, (_, i) => (a * 31 + i * 17 + b) & 0xff))]);
    case "huge-varint": {
      // A tag of field (b % 20 + 1) as a varint, then an 11-byte varint (over the 10-byte limit) or a 10-byte max.
      const tag = Buffer.from([((b % 20) + 1) << 3]);
      const v = b % 2 === 0 ? Buffer.alloc(11, 0xff) : Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
      return Buffer.concat([buf.subarray(0, at), tag, v, buf.subarray(at)]);
    }
    case "wire-type":
      if (buf.length === 0) return Buffer.from([0x0b]);
      // Replaces the first tag's wire type: 3/4 are the deprecated groups, 6/7 do not exist.
      buf[0] = (buf[0]! & ~7) | [1, 2, 3, 4, 5, 6, 7][b % 7]!;
      return buf;
    case "duplicate":
      return Buffer.concat([buf, buf]);
    case "length-lie": {
      // The first length-delimited field (wire type 2) claims more (or far more) bytes than follow.
      for (let i = 0; i < buf.length; i++) {
        if ((buf[i]! & 7) === 2 && i + 1 < buf.length) {
          const lie = b % 2 === 0 ? Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]) : Buffer.from([Math.min(127, buf[i + 1]! + 1 + (b % 50))]);
          return Buffer.concat([buf.subarray(0, i + 1), lie, buf.subarray(i + 2)]);
        }
      }
      return Buffer.concat([buf, Buffer.from([0x0a, 0x7f, 0x61])]);
    }
    case "splice":
      return Buffer.concat([buf.subarray(at), buf.subarray(0, at)]);
  }
}

/** The Connect JSON mutations. */
export const JSON_MUTATIONS = ["wrong-type", "unknown-field", "huge-number", "deep-nesting", "invalid-utf8", "nan-strings", "not-object", "truncated", "null-field", "duplicate-key"] as const;

/** Returns the text (or bytes) of a JSON body mutated by one named mutation. */
export function mutateJson(json: unknown, desc: DescMessage, op: (typeof JSON_MUTATIONS)[number], a: number): Buffer {
  const obj: Record<string, unknown> = json !== null && typeof json === "object" && !Array.isArray(json) ? { ...(json as Record<string, unknown>) } : {};
  const names = desc.fields.map((f) => f.jsonName);
  const field = names.length === 0 ? "x" : names[a % names.length]!;
  const wrong = [42, "42", true, [], {}, [1, "a"], { a: 1 }, -1.5, "", "\u0000"];
  switch (op) {
    case "wrong-type":
      obj[field] = wrong[a % wrong.length];
      return Buffer.from(JSON.stringify(obj));
    case "unknown-field":
      obj[`zz${a % 7}`] = a;
      return Buffer.from(JSON.stringify(obj));
    case "huge-number": {
      const huge = ["1e400", "-1e400", "99999999999999999999999999", "18446744073709551616", "1.5", "-0", "4294967296", "9007199254740993"][a % 8]!;
      return Buffer.from(JSON.stringify({ ...obj, [field]: 0 }).replace(`"${field}":0`, `"${field}":${huge}`));
    }
    case "deep-nesting": {
      const depth = [100, 1000, 20_000][a % 3]!;
      return Buffer.from(JSON.stringify({ ...obj, [field]: 0 }).replace(`"${field}":0`, `"${field}":${"[".repeat(depth)}${"]".repeat(depth)}`));
    }
    case "invalid-utf8": {
      const s = Buffer.from(JSON.stringify({ ...obj, [field]: "@@" }));
      const i = s.indexOf("@@");
      s[i] = [0xff, 0xc3, 0xed, 0x80][a % 4]!;
      s[i + 1] = [0xfe, 0x28, 0xa0, 0x80][a % 4]!;
      return s;
    }
    case "nan-strings":
      obj[field] = ["NaN", "Infinity", "-Infinity", "nan", "1e999", "0x10"][a % 6];
      return Buffer.from(JSON.stringify(obj));
    case "not-object":
      return Buffer.from(["[]", '"x"', "1", "null", "true", "", " ", "{}{}", "[{}]"][a % 9]!);
    case "truncated": {
      const t = JSON.stringify(obj);
      return Buffer.from(t.slice(0, a % Math.max(1, t.length)));
    }
    case "null-field":
      obj[field] = null;
      return Buffer.from(JSON.stringify(obj));
    case "duplicate-key":
      return Buffer.from(JSON.stringify({ ...obj, [field]: 0 }).replace(`"${field}":0`, `"${field}":1,"${field}":"two"`));
  }
}

/** gRPC framing mutations: each names what is wrong with the envelope(s) or headers. */
export const FRAMING_MUTATIONS = [
  "compressed-no-encoding",
  "length-over",
  "length-under",
  "length-huge",
  "two-messages",
  "no-message",
  "gzip-garbage",
  "unknown-encoding",
  "short-prefix",
  "bad-flags",
] as const;

/** Returns one gRPC/Connect envelope (flags, big-endian length, payload). */
export function envelope(payload: Uint8Array, flags = 0, length = payload.length): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(length >>> 0, 1);
  return Buffer.concat([head, payload]);
}

/** Returns the body and extra headers of a gRPC request whose framing is mutated. */
export function mutateFraming(payload: Uint8Array, op: (typeof FRAMING_MUTATIONS)[number], a: number): { body: Buffer; headers: OutgoingHttpHeaders } {
  switch (op) {
    case "compressed-no-encoding":
      return { body: envelope(payload, 1), headers: {} };
    case "length-over":
      return { body: envelope(payload, 0, payload.length + 1 + (a % 100)), headers: {} };
    case "length-under":
      return { body: envelope(payload, 0, Math.max(0, payload.length - 1 - (a % 4))), headers: {} };
    case "length-huge":
      return { body: envelope(payload, 0, [0xffffffff, 4 * 1024 * 1024 + 1, 0x7fffffff][a % 3]!), headers: {} };
    case "two-messages":
      return { body: Buffer.concat([envelope(payload), envelope(payload)]), headers: {} };
    case "no-message":
      return { body: Buffer.alloc(0), headers: {} };
    case "gzip-garbage":
      return { body: envelope(Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5]), 1), headers: { "grpc-encoding": "gzip" } };
    case "unknown-encoding":
      return { body: envelope(payload, 1), headers: { "grpc-encoding": ["br", "snappy", "x-none", ""][a % 4]! } };
    case "short-prefix":
      return { body: envelope(payload).subarray(0, a % 5), headers: {} };
    case "bad-flags":
      return { body: envelope(payload, [2, 0x80, 0xff, 4][a % 4]!), headers: {} };
  }
}

/** What a call ended with, whatever the protocol. */
export interface CallResult {
  /** gRPC code number (Connect codes mapped to their numbers); -1 when no status came. */
  readonly code: number;
  readonly message: string;
  /** HTTP status of the response; 0 when the stream was reset before any. */
  readonly httpStatus: number;
  /** Response payload bytes (gRPC/Connect envelopes not removed). */
  readonly data: Buffer;
  /** The stream was reset (RST_STREAM) by the server, or the session failed. */
  readonly reset?: string;
  /** The client gave up waiting (a streaming call still open counts as OK). */
  readonly open?: boolean;
}

const CONNECT_CODES: Record<string, number> = {
  canceled: 1,
  unknown: 2,
  invalid_argument: 3,
  deadline_exceeded: 4,
  not_found: 5,
  already_exists: 6,
  permission_denied: 7,
  resource_exhausted: 8,
  failed_precondition: 9,
  aborted: 10,
  out_of_range: 11,
  unimplemented: 12,
  internal: 13,
  unavailable: 14,
  data_loss: 15,
  unauthenticated: 16,
};

/** The gRPC codes a rejection must never carry. */
export const FORBIDDEN_CODES = new Set([2, 13, 15]);

/** One HTTP/2 session per server, reopened when the server closed it. */
export class H2Pool {
  private session: ClientHttp2Session | undefined;
  constructor(private readonly url: string) {}
  get(): ClientHttp2Session {
    if (this.session === undefined || this.session.destroyed || this.session.closed) {
      this.session = h2Connect(this.url);
      this.session.on("error", () => {});
    }
    return this.session;
  }
  close(): void {
    this.session?.destroy();
  }
}

/**
 * Sends one request on the pool's session and reads the answer: gRPC status from trailers (or
 * trailers-only headers), Connect unary from the HTTP status and JSON body, Connect streaming
 * from the end-of-stream envelope. With `streaming`, a response still open `openMs` after its
 * headers (or silent for `silentOpenMs`) is canceled and counts as open (OK).
 */
export function h2Request(
  pool: H2Pool,
  headers: OutgoingHttpHeaders,
  body: Buffer,
  protocol: "grpc" | "connect-unary" | "connect-stream",
  opts: { streaming?: boolean; timeoutMs?: number; openMs?: number; silentOpenMs?: number } = {},
): Promise<CallResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let status = 0;
    let respHeaders: Record<string, unknown> = {};
    let trailers: Record<string, unknown> = {};
    let done = false;
    const finish = (extra: Partial<CallResult> = {}) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(openTimer);
      const data = Buffer.concat(chunks);
      // Whatever the answer holds, the call settles: a parse that threw here once left the
      // promise pending with no timer left, and the whole run waited forever (seen in CI).
      let parsed: { code: number; message: string };
      try {
        parsed = parseStatus(protocol, status, respHeaders, trailers, data);
      } catch (e) {
        parsed = { code: -1, message: `unreadable answer: ${(e as Error).message}` };
      }
      resolve({ ...parsed, httpStatus: status, data, ...extra });
    };
    let req: ReturnType<ClientHttp2Session["request"]>;
    try {
      req = pool.get().request({ ":method": "POST", ...headers });
    } catch (e) {
      resolve({ code: -1, message: "", httpStatus: 0, data: Buffer.alloc(0), reset: `request failed: ${(e as Error).message}` });
      return;
    }
    const timer = setTimeout(() => {
      req.close(h2.NGHTTP2_CANCEL);
      finish({ reset: "client timeout: no answer" });
    }, opts.timeoutMs ?? 10_000);
    // connect-node sends a stream's headers with its first message: a watch with nothing to say
    // yet answers nothing at all. Still silent after a while counts as open.
    let openTimer: NodeJS.Timeout | undefined =
      opts.streaming !== true
        ? undefined
        : setTimeout(() => {
            req.close(h2.NGHTTP2_CANCEL);
            finish({ open: true, code: 0, message: "" });
          }, opts.silentOpenMs ?? 150);
    req.on("response", (h) => {
      status = Number(h[":status"]);
      respHeaders = h;
      // A stream that answered and stays open (a watch with nothing to say yet) is OK once a while passes.
      if (opts.streaming === true && status === 200 && h["grpc-status"] === undefined) {
        clearTimeout(openTimer);
        openTimer = setTimeout(() => {
          req.close(h2.NGHTTP2_CANCEL);
          finish({ open: true, code: 0, message: "" });
        }, opts.openMs ?? 50);
      }
    });
    req.on("data", (c: Buffer) => {
      chunks.push(c);
    });
    req.on("trailers", (t) => (trailers = t));
    req.on("error", () => {});
    req.on("close", () => {
      if (req.rstCode !== undefined && req.rstCode !== h2.NGHTTP2_NO_ERROR && status === 0) finish({ reset: `RST_STREAM ${req.rstCode}` });
      else finish();
    });
    req.end(body);
  });
}

function parseStatus(
  protocol: "grpc" | "connect-unary" | "connect-stream",
  status: number,
  headers: Record<string, unknown>,
  trailers: Record<string, unknown>,
  data: Buffer,
): { code: number; message: string } {
  if (protocol === "grpc") {
    const raw = trailers["grpc-status"] ?? headers["grpc-status"];
    const msg = String(trailers["grpc-message"] ?? headers["grpc-message"] ?? "");
    let message = msg;
    try {
      message = decodeURIComponent(msg);
    } catch {
      // keep it as sent
    }
    return { code: raw === undefined ? -1 : Number(raw), message };
  }
  if (protocol === "connect-unary") {
    if (status === 200) return { code: 0, message: "" };
    try {
      const j = JSON.parse(data.toString("utf8")) as { code?: string; message?: string };
      return { code: CONNECT_CODES[j.code ?? ""] ?? -1, message: j.message ?? "" };
    } catch {
      return { code: -1, message: `HTTP ${status}: ${data.toString("utf8").slice(0, 100)}` };
    }
  }
  // Connect streaming: envelopes; the one with flag 0x02 ends the stream with {error?}.
  if (status !== 200) {
    try {
      const j = JSON.parse(data.toString("utf8")) as { code?: string; message?: string };
      return { code: CONNECT_CODES[j.code ?? ""] ?? -1, message: j.message ?? "" };
    } catch {
      return { code: -1, message: `HTTP ${status}` };
    }
  }
  for (let at = 0; at + 5 <= data.length; ) {
    const flags = data[at]!;
    const len = data.readUInt32BE(at + 1);
    // A stream canceled mid-envelope (a watch the suite stopped reading) holds a partial one.
    if (at + 5 + len > data.length) return { code: -1, message: "connect stream cut inside an envelope" };
    if ((flags & 2) === 2) {
      const j = JSON.parse(data.subarray(at + 5, at + 5 + len).toString("utf8")) as { error?: { code?: string; message?: string } };
      if (j.error === undefined) return { code: 0, message: "" };
      return { code: CONNECT_CODES[j.error.code ?? ""] ?? -1, message: j.error.message ?? "" };
    }
    at += 5 + len;
  }
  return { code: -1, message: "connect stream ended without an end-of-stream envelope" };
}

/** True for methods whose request or response is a stream. */
export function isStreaming(m: DescMethod): boolean {
  return m.methodKind !== "unary";
}
