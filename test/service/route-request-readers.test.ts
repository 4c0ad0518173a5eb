import { create, fromBinary, fromJsonString, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RouteRequestSchema } from "../../gen/rollgate/v1/decision_service_pb.js";
import { readRouteRequestBinary, readRouteRequestJson } from "../../src/service/route-request-readers.js";

/** What protobuf-es makes of a text under the server's strict rule: the message, or its error. */
function protobufEs(text: string, ignoreUnknownFields = false): { message: unknown } | { error: string } {
  try {
    return { message: fromJsonString(RouteRequestSchema, text, { ignoreUnknownFields }) };
  } catch (e) {
    return { error: String(e) };
  }
}

/**
 * The reader either gives exactly protobuf-es's message (same keys, same order, same values) or
 * defers; it never takes a text protobuf-es refuses, under either unknown-field rule.
 */
function agrees(text: string): boolean {
  sameAs(readRouteRequestJson(text), text);
  // The fast path hands the reader a body's bytes as latin1 (one character per byte): whatever
  // it takes from that view must be what protobuf-es reads from the bytes as UTF-8.
  const bytes = Buffer.from(text, "utf8");
  sameAs(readRouteRequestJson(bytes.toString("latin1")), new TextDecoder().decode(bytes));
  return true;
}

function sameAs(mine: object | undefined, text: string): void {
  if (mine === undefined) return;
  for (const ignoreUnknownFields of [false, true]) {
    const theirs = protobufEs(text, ignoreUnknownFields);
    expect(theirs).toHaveProperty("message");
    const message = (theirs as { message: unknown }).message;
    expect(mine).toStrictEqual(message);
    expect(Object.keys(mine)).toEqual(Object.keys(message as object));
  }
}

const ws = fc.stringMatching(/^[ \t\r\n]{0,3}$/);
/** Anything a string may hold, escapes and non-ASCII included. */
const anyString = fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: "grapheme", maxLength: 6 }), fc.string({ unit: "binary", maxLength: 6 }));
/** Printable ASCII without the two characters JSON escapes: what the reader takes itself. */
const plainString = fc.stringMatching(/^[ !#-[\]-~]{0,40}$/);

/** A member as written on the wire: name, separators and a value token, both sometimes odd. */
const member = fc
  .record({
    name: fc.oneof(
      { arbitrary: fc.constantFrom("rollout", "key"), weight: 4 },
      fc.constantFrom("Rollout", "KEY", "keys", "rollout_", "gate", "", "ro\\u006clout", "k\\u0065y", "rollout\u0000"),
      anyString,
    ),
    value: fc.oneof(
      { arbitrary: plainString.map((s) => JSON.stringify(s)), weight: 4 },
      anyString.map((s) => JSON.stringify(s)),
      fc.constantFrom("null", "1", "-0", "true", "[]", "{}", '["a"]', '{"a":1}', '"\\ud800"', '"a\\"b"', "'x'", '"unterminated'),
    ),
    before: ws,
    after: ws,
  })
  .map(({ name, value, before, after }) => `${JSON.stringify(name).replace(/\\\\u/g, "\\u")}${before}:${after}${value}`);

/** Usually `usual`, now and then one of `odd`. */
const mostly = (usual: fc.Arbitrary<string>, ...odd: string[]) => fc.oneof({ arbitrary: usual, weight: 6 }, { arbitrary: fc.constantFrom(...odd), weight: 1 });

/** Texts shaped like a JSON object of members, with odd framing now and then. */
const objectText = fc
  .record({
    members: fc.array(member, { maxLength: 4 }),
    lead: mostly(ws, "\ufeff", "\u00a0", "\f", "\v", "x", "["),
    trail: mostly(ws, ",", "}", " x", "\u0000", "\u2028", "{}"),
    comma: mostly(fc.constantFrom(",", " , ", ",\n"), ",,", ";", ""),
    open: mostly(fc.constantFrom("{", "{ ", "{\n\t"), "", "[", "{{"),
    close: mostly(fc.constantFrom("}", " }", "\r\n}"), ",}", "", "]"),
  })
  .map(({ members, lead, trail, comma, open, close }) => `${lead}${open}${members.join(comma)}${close}${trail}`);

describe("the hand-written RouteRequest JSON reader", () => {
  it("reads every plain request exactly as protobuf-es does (any field order, either field absent, JSON whitespace)", () => {
    fc.assert(
      fc.property(
        fc.record({ rollout: plainString, key: plainString }, { requiredKeys: [] }),
        fc.boolean(),
        fc.array(ws, { minLength: 8, maxLength: 8 }),
        (fields, reversed, spaces) => {
          const entries = Object.entries(fields);
          if (reversed) entries.reverse();
          const body = entries.map(([k, v], i) => `${spaces[i * 2]}${JSON.stringify(k)}${spaces[i * 2 + 1]}:${spaces[4 + i]}${JSON.stringify(v)}`).join(",");
          const text = `${spaces[6]}{${body}${spaces[7]}}${spaces[6]}`;
          const mine = readRouteRequestJson(text);
          // Taken by the reader itself, not deferred: the fast path's common case.
          expect(mine).toBeDefined();
          return agrees(text);
        },
      ),
      { numRuns: 800 },
    );
  });

  it("defers on everything else, so protobuf-es answers (and refuses) it as before", () => {
    let taken = 0;
    fc.assert(
      fc.property(objectText, (text) => {
        if (readRouteRequestJson(text) !== undefined) taken++;
        return agrees(text);
      }),
      { numRuns: 3000 },
    );
    // The odd texts are near misses: some still are plain requests the reader takes.
    expect(taken).toBeGreaterThan(300);
    fc.assert(fc.property(fc.string({ maxLength: 60 }), agrees), { numRuns: 1000 });
    fc.assert(fc.property(fc.string({ unit: fc.constantFrom("{", "}", '"', ":", ",", " ", "k", "e", "y", "\\", "r", "o", "l", "u", "t", "1", "n"), maxLength: 40 }), agrees), {
      numRuns: 2000,
    });
  });

  it("defers on the cases protobuf-es refuses or reads differently, by name", () => {
    const deferred = [
      "",
      " ",
      "{",
      "[]",
      "null",
      '{"rollout":"a","rollout":"b"}', // duplicate key: protobuf-es refuses it
      '{"key":null}', // null: protobuf-es reads the default
      '{"key":"a\\u0062"}', // an escape
      '{"key":"é"}', // non-ASCII
      '{"key":"\t"}', // a control character
      '{"gate":"x"}', // unknown field: refused (or ignored) by protobuf-es
      '{"key":"a",}',
      '{"key":"a"} x',
      '\ufeff{"key":"a"}',
      '{"key":1}',
      '{"keys":["a"]}',
    ];
    for (const text of deferred) {
      expect(readRouteRequestJson(text), text).toBeUndefined();
      agrees(text);
    }
    expect(protobufEs('{"rollout":"a","rollout":"b"}')).toHaveProperty("error");
    expect(protobufEs('{"gate":"x"}')).toHaveProperty("error");
    expect(readRouteRequestJson('{"rollout":"checkout","key":"user-12345"}')).toStrictEqual(
      fromJsonString(RouteRequestSchema, '{"rollout":"checkout","key":"user-12345"}'),
    );
    expect(readRouteRequestJson(" {}\n")).toStrictEqual(fromJsonString(RouteRequestSchema, "{}"));
  });
});

/** Binary: the reader gives fromBinary's message exactly, or defers; never takes what fromBinary refuses. */
function agreesBinary(bytes: Uint8Array): boolean {
  const mine = readRouteRequestBinary(bytes);
  if (mine === undefined) return true;
  let theirs: unknown;
  try {
    theirs = fromBinary(RouteRequestSchema, bytes);
  } catch (e) {
    throw new Error(`the reader took what fromBinary refuses (${String(e)}): ${Buffer.from(bytes).toString("hex")}`);
  }
  expect(mine).toStrictEqual(theirs);
  expect(Object.keys(mine)).toEqual(Object.keys(theirs as object));
  return true;
}

/** A field as written on the wire: a tag (sometimes odd), a length (sometimes wrong or long-form), a value. */
const wireField = fc
  .record({
    tag: fc.oneof({ arbitrary: fc.constantFrom(0x0a, 0x12), weight: 6 }, fc.constantFrom(0x08, 0x10, 0x1a, 0x0b, 0x8a, 0x00, 0xff)),
    value: fc.oneof({ arbitrary: plainString.map((s) => Buffer.from(s, "latin1")), weight: 4 }, anyString.map((s) => Buffer.from(s, "utf8")), fc.uint8Array({ maxLength: 8 })),
    lengthDelta: fc.oneof({ arbitrary: fc.constant(0), weight: 8 }, fc.integer({ min: -2, max: 2 })),
    longLength: fc.boolean(),
  })
  .map(({ tag, value, lengthDelta, longLength }) => {
    const len = Math.max(0, value.length + lengthDelta);
    // A length as a minimal varint, or padded to two bytes (still valid protobuf).
    const prefix = longLength && len < 0x80 ? [0x80 | len, 0x00] : len < 0x80 ? [len] : [0x80 | (len & 0x7f), len >> 7];
    return Buffer.concat([Buffer.from([tag, ...prefix]), value]);
  });

describe("the hand-written RouteRequest binary reader", () => {
  it("reads every plain request exactly as protobuf-es fromBinary does, in either field order", () => {
    fc.assert(
      fc.property(fc.record({ rollout: plainString, key: plainString }, { requiredKeys: [] }), fc.boolean(), (fields, reversed) => {
        const bytes = toBinary(RouteRequestSchema, create(RouteRequestSchema, fields));
        expect(readRouteRequestBinary(bytes)).toStrictEqual(fromBinary(RouteRequestSchema, bytes));
        // The other order (protobuf allows it): taken too.
        const parts = [fields.rollout, fields.key].map((v, i) => (v === undefined || v === "" ? Buffer.alloc(0) : Buffer.concat([Buffer.from([i === 0 ? 0x0a : 0x12, v.length]), Buffer.from(v, "latin1")])));
        const swapped = Buffer.concat(reversed ? parts.reverse() : parts);
        expect(readRouteRequestBinary(swapped)).toBeDefined();
        return agreesBinary(swapped);
      }),
      { numRuns: 800 },
    );
  });

  it("defers on everything else: unknown, repeated or mistyped fields, bad lengths, non-ASCII, garbage", () => {
    let taken = 0;
    fc.assert(
      fc.property(fc.array(wireField, { maxLength: 4 }), fc.uint8Array({ maxLength: 3 }), fc.boolean(), (fields, trail, withTrail) => {
        const bytes = Buffer.concat([...fields, withTrail ? Buffer.from(trail) : Buffer.alloc(0)]);
        if (readRouteRequestBinary(bytes) !== undefined) taken++;
        return agreesBinary(bytes);
      }),
      { numRuns: 3000 },
    );
    expect(taken).toBeGreaterThan(300);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }), agreesBinary), { numRuns: 2000 });
    const deferred = [
      [0x0a, 0x01, 0x61, 0x0a, 0x01, 0x62], // repeated: fromBinary keeps the last
      [0x1a, 0x01, 0x61], // an unknown field: fromBinary keeps it
      [0x12, 0x02, 0xc3, 0xa9], // non-ASCII (valid UTF-8)
      [0x12, 0x02, 0xc3], // truncated
      [0x08, 0x01], // field 1 as a varint
    ];
    for (const b of deferred) expect(readRouteRequestBinary(new Uint8Array(b)), b.join(",")).toBeUndefined();
    expect(readRouteRequestBinary(new Uint8Array(0))).toStrictEqual(fromBinary(RouteRequestSchema, new Uint8Array(0)));
  });
});
