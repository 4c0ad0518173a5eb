import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { Outcome, RecordOutcomeRequest } from "../../gen/rollgate/v1/decision_service_pb.js";

/**
 * RecordOutcomeRequest's binary decoding by hand: what fromBinary(RecordOutcomeRequestSchema)
 * returns, at a fraction of its cost (protobuf-es walks its reflection for every field of every
 * outcome: ~15% of the server's CPU under spread RecordOutcome traffic).
 *
 * It reads the messages our clients send — the known fields with their own wire types, each
 * message field at most once — and builds the same plain objects fromBinary builds. Anything else
 * (an unknown field, which fromBinary keeps in `$unknown`; a field twice that fromBinary would
 * merge; a wire type it would read differently; bad UTF-8; truncated bytes) makes it hand the
 * bytes to fromBinary instead, so the result, or the error, is always fromBinary's.
 *
 * It is the RecordOutcome entry's `fromBinary` reader (hot-method.ts): the message in the common
 * form, or undefined to leave the bytes to fromBinary, which the serving path then calls.
 */
export function readPlainRecordOutcomeRequest(bytes: Uint8Array): RecordOutcomeRequest | undefined {
  try {
    return readRequest(bytes);
  } catch {
    return undefined;
  }
}

/** The hand decoding alone: throws where readPlainRecordOutcomeRequest leaves the bytes to fromBinary (for the tests). */
export function readRecordOutcomeRequest(bytes: Uint8Array): RecordOutcomeRequest {
  return readRequest(bytes);
}

/** Thrown to leave for fromBinary; never escapes readPlainRecordOutcomeRequest. */
const GIVE_UP = new Error("outcome-decode: not the common form");

const utf8 = new TextDecoder("utf-8", { fatal: true });

// Wire types.
const VARINT = 0;
const I64 = 1;
const LEN = 2;

let buf: Uint8Array = new Uint8Array(0);
let view: DataView = new DataView(buf.buffer);
let pos = 0;

function readRequest(bytes: Uint8Array): RecordOutcomeRequest {
  buf = bytes;
  view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  pos = 0;
  let rollout = "";
  const outcomes: Outcome[] = [];
  const end = bytes.length;
  while (pos < end) {
    const tag = varint32();
    const wire = tag & 7;
    const field = tag >>> 3;
    if (field === 1 && wire === LEN) rollout = string(end);
    else if (field === 2 && wire === LEN) outcomes.push(outcome(lengthEnd(end)));
    else throw GIVE_UP;
  }
  if (pos !== end) throw GIVE_UP;
  return { $typeName: "rollgate.v1.RecordOutcomeRequest", rollout, outcomes };
}

function outcome(end: number): Outcome {
  const o: Outcome = { $typeName: "rollgate.v1.Outcome", variant: 0, success: false, latencyMs: 0, metrics: {}, invariantViolations: 0, key: "" };
  let time: Timestamp | undefined;
  while (pos < end) {
    const tag = varint32();
    const wire = tag & 7;
    switch (tag >>> 3) {
      case 1:
        if (wire !== VARINT) throw GIVE_UP;
        o.variant = varint32() | 0;
        break;
      case 2:
        if (wire !== VARINT) throw GIVE_UP;
        o.success = varintNonZero();
        break;
      case 3:
        if (wire !== I64) throw GIVE_UP;
        o.latencyMs = double(end);
        break;
      case 4: {
        if (wire !== LEN) throw GIVE_UP;
        mapEntry(o.metrics, lengthEnd(end));
        break;
      }
      case 5:
        if (wire !== VARINT) throw GIVE_UP;
        o.invariantViolations = varint32() >>> 0;
        break;
      case 6:
        if (wire !== LEN) throw GIVE_UP;
        o.key = string(end);
        break;
      case 7:
        // A second time field would be merged into the first: fromBinary's business.
        if (wire !== LEN || time !== undefined) throw GIVE_UP;
        time = timestamp(lengthEnd(end));
        break;
      default:
        throw GIVE_UP;
    }
  }
  if (pos !== end) throw GIVE_UP;
  if (time !== undefined) o.time = time;
  return o;
}

/** One map<string, double> entry: a missing key is "", a missing value 0; a later key replaces an earlier one. */
function mapEntry(into: { [key: string]: number }, end: number): void {
  let key = "";
  let value = 0;
  while (pos < end) {
    const tag = varint32();
    if (tag === ((1 << 3) | LEN)) key = string(end);
    else if (tag === ((2 << 3) | I64)) value = double(end);
    else throw GIVE_UP;
  }
  if (pos !== end) throw GIVE_UP;
  into[key] = value;
}

function timestamp(end: number): Timestamp {
  let seconds = 0n;
  let nanos = 0;
  while (pos < end) {
    const tag = varint32();
    if (tag === ((1 << 3) | VARINT)) seconds = varintInt64();
    else if (tag === ((2 << 3) | VARINT)) nanos = varint32() | 0;
    else throw GIVE_UP;
  }
  if (pos !== end) throw GIVE_UP;
  return { $typeName: "google.protobuf.Timestamp", seconds, nanos };
}

/** Reads a length prefix and returns where that field ends (within `end`). */
function lengthEnd(end: number): number {
  const len = varint32();
  // A length is a uint32; one above 2³¹ would be read differently (and is truncated anyway).
  if (len < 0 || pos + len > end) throw GIVE_UP;
  return pos + len;
}

function string(end: number): string {
  const to = lengthEnd(end);
  const s = utf8.decode(buf.subarray(pos, to));
  pos = to;
  return s;
}

function double(end: number): number {
  if (pos + 8 > end) throw GIVE_UP;
  const v = view.getFloat64(pos, true);
  pos += 8;
  return v;
}

/** Reads a varint of up to 10 bytes and returns its low 32 bits (as an int32: callers take `| 0` or `>>> 0`). */
function varint32(): number {
  let x = 0;
  for (let shift = 0; shift < 70; shift += 7) {
    if (pos >= buf.length) throw GIVE_UP;
    const b = buf[pos++] as number;
    if (shift < 32) x |= (b & 0x7f) << shift;
    if (b < 0x80) return x;
  }
  throw GIVE_UP;
}

/** Reads a varint and returns whether it is not 0 (a bool). */
function varintNonZero(): boolean {
  let any = 0;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw GIVE_UP;
    const b = buf[pos++] as number;
    any |= b & 0x7f;
    if (b < 0x80) return any !== 0;
  }
  throw GIVE_UP;
}

/** Reads a varint as a signed 64-bit integer. */
function varintInt64(): bigint {
  let x = 0n;
  for (let shift = 0n; shift < 70n; shift += 7n) {
    if (pos >= buf.length) throw GIVE_UP;
    const b = buf[pos++] as number;
    x |= BigInt(b & 0x7f) << shift;
    if (b < 0x80) return BigInt.asIntN(64, x);
  }
  throw GIVE_UP;
}
