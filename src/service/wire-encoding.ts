import { toJsonString } from "@bufbuild/protobuf";
import type { RouteDecision, RouteTable } from "../domain/routing.js";
import { route } from "../domain/routing.js";
import { RouteResponseSchema } from "../../gen/rollgate/v1/decision_service_pb.js";
import { routeReasonToProto, routeToProto, variantToProto } from "./convert.js";

/**
 * Hand-written protobuf encoding of the fast path's hottest messages: RouteResponse,
 * RouteBatchResponse and HealthUpdate.
 *
 * Within one route table every field of a RouteResponse but the bucket is fixed by the
 * (variant, reason) pair, so those bytes are encoded once per table and pair and reused; a key
 * then costs its hash plus a few byte copies. protobuf-es's reflective create()+toBinary cost
 * ~1.6 µs per key and made RouteBatch only 9× a single Route call. The output is exactly what
 * toBinary writes (fields in number order, proto3 defaults omitted), which a property test
 * locks.
 */

/** The constant parts of one (variant, reason) answer: fields 1–2 before the bucket, 4–7 after. */
interface Fragments {
  readonly head: Uint8Array;
  readonly tail: Uint8Array;
  /** Its Connect JSON, made on first use: around the bucket, and whole for bucket 0 (omitted). */
  json?: { readonly head: string; readonly tail: string; readonly zero: string };
}

const encoder = new TextEncoder();

/** A growable byte buffer and its write position. */
interface Sink {
  buf: Uint8Array;
  pos: number;
}

const sink = (size: number): Sink => ({ buf: new Uint8Array(size), pos: 0 });

function ensure(s: Sink, n: number): void {
  if (s.pos + n <= s.buf.length) return;
  const next = new Uint8Array(Math.max(s.buf.length * 2, s.pos + n));
  next.set(s.buf.subarray(0, s.pos));
  s.buf = next;
}

/** Writes a varint below 2^31 (tags, lengths, buckets, enums, weights). */
function varint(s: Sink, v: number): void {
  ensure(s, 5);
  while (v > 0x7f) {
    s.buf[s.pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  s.buf[s.pos++] = v;
}

/** Writes a uint64 varint. */
function varint64(s: Sink, v: number): void {
  ensure(s, 10);
  let x = BigInt(v);
  while (x > 0x7fn) {
    s.buf[s.pos++] = Number(x & 0x7fn) | 0x80;
    x >>= 7n;
  }
  s.buf[s.pos++] = Number(x);
}

function bytes(s: Sink, b: Uint8Array): void {
  ensure(s, b.length);
  s.buf.set(b, s.pos);
  s.pos += b.length;
}

const done = (s: Sink) => s.buf.subarray(0, s.pos);

function string(s: Sink, field: number, value: string): void {
  if (value === "") return;
  const b = encoder.encode(value);
  varint(s, (field << 3) | 2);
  varint(s, b.length);
  bytes(s, b);
}

function fragmentsOf(d: RouteDecision): Fragments {
  const head = sink(64);
  const variant = variantToProto(d.variant);
  if (variant !== 0) {
    varint(head, 1 << 3);
    varint(head, variant);
  }
  string(head, 2, d.version);
  const tail = sink(64);
  if (d.weightBp !== 0) {
    varint(tail, 4 << 3);
    varint(tail, d.weightBp);
  }
  // Repeated strings are written one field each, empty ones included.
  for (const f of d.features) {
    const b = encoder.encode(f);
    varint(tail, (5 << 3) | 2);
    varint(tail, b.length);
    bytes(tail, b);
  }
  const reason = routeReasonToProto(d.reason);
  if (reason !== 0) {
    varint(tail, 6 << 3);
    varint(tail, reason);
  }
  if (d.rolloutVersion !== 0) {
    varint(tail, 7 << 3);
    varint64(tail, d.rolloutVersion);
  }
  return { head: done(head).slice(), tail: done(tail).slice() };
}

/** Fragments of one table, by variant and then by route reason. */
type TableFragments = Record<RouteDecision["variant"], Map<RouteDecision["reason"], Fragments>>;

const cache = new WeakMap<RouteTable, TableFragments>();

function tableFragments(table: RouteTable): TableFragments {
  let t = cache.get(table);
  if (t === undefined) cache.set(table, (t = { stable: new Map(), canary: new Map() }));
  return t;
}

/** Returns the cached constant bytes of a decision under its table. */
function fragments(t: TableFragments, d: RouteDecision): Fragments {
  const byReason = t[d.variant];
  let f = byReason.get(d.reason);
  if (f === undefined) byReason.set(d.reason, (f = fragmentsOf(d)));
  return f;
}

function bucketLength(bucket: number): number {
  return bucket === 0 ? 0 : 1 + (bucket < 0x80 ? 1 : 2);
}

function writeResponse(s: Sink, f: Fragments, bucket: number): void {
  bytes(s, f.head);
  if (bucket !== 0) {
    varint(s, 3 << 3);
    varint(s, bucket);
  }
  bytes(s, f.tail);
}

/**
 * Returns RouteResponse bytes for one decision, after `headroom` bytes left for the caller (a
 * gRPC frame header: the fast path then sends this buffer as is instead of copying it into one).
 */
export function encodeRouteResponse(table: RouteTable, d: RouteDecision, headroom = 0): Uint8Array {
  const f = fragments(tableFragments(table), d);
  // Sized exactly, so the buffer is the answer: no subarray (a new view) per call. (varint's
  // headroom check may still have grown it near the end: then the view it needs.)
  const s = sink(headroom + f.head.length + bucketLength(d.bucket) + f.tail.length);
  s.pos = headroom;
  writeResponse(s, f, d.bucket);
  return s.pos === s.buf.length ? s.buf : done(s);
}

/**
 * Returns RouteResponse as Connect JSON for one decision: exactly what protobuf-es toJsonString
 * writes (a property test locks it), from text made once per table and (variant, reason) —
 * toJsonString itself cut around the bucket, the only field that changes with the key.
 */
export function encodeRouteResponseJson(table: RouteTable, d: RouteDecision): string {
  const f = fragments(tableFragments(table), d);
  const j = (f.json ??= jsonFragmentsOf(d));
  return d.bucket === 0 ? j.zero : `${j.head}${d.bucket}${j.tail}`;
}

/** The key JSON gives the bucket; no string field can hold it unescaped. */
const BUCKET_KEY = '"bucket":';

function jsonFragmentsOf(d: RouteDecision): NonNullable<Fragments["json"]> {
  const one = toJsonString(RouteResponseSchema, routeToProto({ ...d, bucket: 1 }));
  const at = one.indexOf(`${BUCKET_KEY}1`);
  return {
    head: one.slice(0, at + BUCKET_KEY.length),
    tail: one.slice(at + BUCKET_KEY.length + 1),
    zero: toJsonString(RouteResponseSchema, routeToProto({ ...d, bucket: 0 })),
  };
}

/** Counts of keys routed to each variant by one encodeRouteBatch call. */
export interface BatchCounts {
  stable: number;
  canary: number;
}

/**
 * Returns RouteBatchResponse bytes for keys (already validated) routed under one table, after
 * `headroom` bytes left for the caller (see encodeRouteResponse).
 */
export function encodeRouteBatch(table: RouteTable, keys: readonly string[], counts: BatchCounts, headroom = 0): Uint8Array {
  const s = sink(headroom + keys.length * 24 + 64);
  s.pos = headroom;
  const t = tableFragments(table);
  for (const key of keys) {
    const d = route(table, key);
    counts[d.variant] += 1;
    const f = fragments(t, d);
    varint(s, (1 << 3) | 2);
    varint(s, f.head.length + bucketLength(d.bucket) + f.tail.length);
    writeResponse(s, f, d.bucket);
  }
  return done(s);
}

/** Returns `bytes` after `headroom` bytes left for the caller: a copy, for encoders that cannot leave room themselves. */
export function withHeadroom(bytes: Uint8Array, headroom: number): Uint8Array {
  if (headroom === 0) return bytes;
  const out = new Uint8Array(headroom + bytes.length);
  out.set(bytes, headroom);
  return out;
}

/**
 * Returns HealthUpdate bytes: `seq`, the already encoded RolloutHealth (shared by every stream
 * carrying it) and `deleted`, after `headroom` bytes left for the caller (the gRPC path's frame
 * header, see HotUnary.bytes). A WatchHealth stream thus pays one small buffer per update (from
 * Buffer's pool, sized exactly), not an encoding of the whole health.
 */
export function encodeHealthUpdate(seq: number, health: Uint8Array, deleted: boolean, headroom = 0): Uint8Array {
  // Buffer's pool rather than an ArrayBuffer of its own (a malloc and GC bookkeeping each), seen
  // as a plain Uint8Array.
  const pooled = Buffer.allocUnsafe(headroom + 1 + varintSize(seq) + 1 + varintSize(health.length) + health.length + (deleted ? 2 : 0));
  const out = new Uint8Array(pooled.buffer, pooled.byteOffset, pooled.length);
  let pos = headroom;
  out[pos++] = 1 << 3;
  pos = putVarint(out, pos, seq);
  out[pos++] = (2 << 3) | 2;
  pos = putVarint(out, pos, health.length);
  out.set(health, pos);
  pos += health.length;
  if (deleted) {
    out[pos++] = 3 << 3;
    out[pos++] = 1;
  }
  return out;
}

/** Returns the length of a varint of a non-negative integer below 2^53. */
function varintSize(v: number): number {
  let n = 1;
  for (; v >= 0x80; n++) v = Math.floor(v / 0x80);
  return n;
}

/** Writes a varint of a non-negative integer below 2^53 at `pos`; returns the position after it. */
function putVarint(out: Uint8Array, pos: number, v: number): number {
  for (; v >= 0x80; v = Math.floor(v / 0x80)) out[pos++] = (v % 0x80) | 0x80;
  out[pos++] = v;
  return pos;
}
