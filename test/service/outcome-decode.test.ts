import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RecordOutcomeRequestSchema } from "../../gen/rollgate/v1/decision_service_pb.js";
import { readPlainRecordOutcomeRequest, readRecordOutcomeRequest } from "../../src/service/outcome-decode.js";

/** What a serving path decodes (decodeUnary, the Connect fast path): the hand reader, else fromBinary. */
const decodeRecordOutcomeRequest = (bytes: Uint8Array) => readPlainRecordOutcomeRequest(bytes) ?? fromBinary(RecordOutcomeRequestSchema, bytes);

/** What fromBinary gives for `bytes`: the message, or the error's message. */
function reference(bytes: Uint8Array): unknown {
  try {
    return fromBinary(RecordOutcomeRequestSchema, bytes);
  } catch (e) {
    return { error: (e as Error).message };
  }
}
function ours(bytes: Uint8Array): unknown {
  try {
    return decodeRecordOutcomeRequest(bytes);
  } catch (e) {
    return { error: (e as Error).message };
  }
}

const outcome = fc.record(
  {
    variant: fc.oneof(fc.constantFrom(0, 1, 2), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
    success: fc.boolean(),
    latencyMs: fc.oneof(fc.double(), fc.double({ min: 0, max: 1e6, noNaN: true })),
    metrics: fc.dictionary(fc.string({ maxLength: 8 }), fc.double(), { maxKeys: 4 }),
    invariantViolations: fc.nat({ max: 2 ** 32 - 1 }),
    key: fc.string({ unit: "grapheme", maxLength: 12 }),
    time: fc.record({ seconds: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), nanos: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }) }),
  },
  { requiredKeys: [] },
);
const request = fc.record({ rollout: fc.string({ unit: "grapheme", maxLength: 20 }), outcomes: fc.array(outcome, { maxLength: 12 }) }, { requiredKeys: [] });
const encode = (r: unknown) => toBinary(RecordOutcomeRequestSchema, create(RecordOutcomeRequestSchema, r as never));

describe("RecordOutcomeRequest decoding by hand", () => {
  it("gives exactly what fromBinary gives for any request a client encodes", () => {
    fc.assert(
      fc.property(request, (r) => {
        const bytes = encode(r);
        // Read by hand (no fallback), and equal.
        expect(readRecordOutcomeRequest(bytes)).toStrictEqual(fromBinary(RecordOutcomeRequestSchema, bytes));
      }),
      { numRuns: 500 },
    );
  });

  it("gives fromBinary's answer or error for any bytes: cut, changed or random", () => {
    fc.assert(
      fc.property(request, fc.nat(), fc.nat({ max: 255 }), fc.uint8Array({ maxLength: 40 }), (r, at, byte, junk) => {
        const bytes = encode(r);
        const cut = bytes.subarray(0, bytes.length === 0 ? 0 : at % bytes.length);
        const changed = Uint8Array.from(bytes);
        if (changed.length > 0) changed[at % changed.length] = byte;
        for (const b of [cut, changed, junk, Uint8Array.from([...bytes, ...junk])]) expect(ours(b)).toStrictEqual(reference(b));
      }),
      { numRuns: 500 },
    );
  });

  it("leaves what it does not read the common way to fromBinary: unknown fields, a time given twice, odd map entries, bad UTF-8", () => {
    const base = encode({ rollout: "checkout", outcomes: [{ variant: 2, success: true, latencyMs: 12.5, metrics: { cost: 3 }, time: { seconds: 5n, nanos: 7 } }] });
    const outcomeField = (inner: number[]) => [0x12, inner.length, ...inner];
    // Left to fromBinary.
    const left = [
      // An unknown field (number 9, varint) at the top and inside an outcome: kept in $unknown.
      Uint8Array.from([...base, 0x48, 0x01]),
      Uint8Array.from([...base, ...outcomeField([0x48, 0x01])]),
      // time twice: the second is merged into the first.
      Uint8Array.from([...base, ...outcomeField([0x3a, 0x02, 0x08, 0x05, 0x3a, 0x02, 0x10, 0x09])]),
      // A string that is not UTF-8.
      Uint8Array.from([0x0a, 0x02, 0xc3, 0x28]),
      // A varint of 11 bytes.
      Uint8Array.from([...outcomeField([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])]),
      // A known field with another wire type.
      Uint8Array.from([0x08, 0x01]),
    ];
    // Read by hand, as fromBinary reads them.
    const read = [
      // A map entry without a key, one without a value, one with its key twice (the last counts).
      Uint8Array.from([...base, ...outcomeField([0x22, 0x09, 0x11, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f])]),
      Uint8Array.from([...base, ...outcomeField([0x22, 0x03, 0x0a, 0x01, 0x61])]),
      Uint8Array.from([...base, ...outcomeField([0x22, 0x06, 0x0a, 0x01, 0x61, 0x0a, 0x01, 0x62])]),
      // A negative enum value: a varint of 10 bytes.
      Uint8Array.from([...outcomeField([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])]),
      // The rollout twice: the last counts.
      Uint8Array.from([0x0a, 0x01, 0x61, 0x0a, 0x01, 0x62]),
    ];
    for (const c of left) {
      expect(ours(c)).toStrictEqual(reference(c));
      expect(() => readRecordOutcomeRequest(c)).toThrow();
    }
    for (const c of read) expect(readRecordOutcomeRequest(c)).toStrictEqual(reference(c));
    // And the common form is what fromBinary reads.
    expect(decodeRecordOutcomeRequest(base)).toStrictEqual(fromBinary(RecordOutcomeRequestSchema, base));
  });
});
