import { describe, expect, it } from "vitest";
import { DomainError } from "../../src/domain/errors.js";
import { validateOutcomes, type RawOutcome } from "../../src/domain/outcome.js";

const ok = (o: Partial<RawOutcome> = {}): RawOutcome => ({
  variant: "canary",
  success: true,
  latencyMs: 12.5,
  metrics: {},
  invariantViolations: 0,
  key: "user-1",
  ...o,
});

/** Returns the message of the INVALID_ARGUMENT error `f` throws. */
function rejection(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(DomainError);
    expect((e as DomainError).kind).toBe("invalid_argument");
    return (e as DomainError).message;
  }
  throw new Error("expected INVALID_ARGUMENT");
}

describe("validateOutcomes", () => {
  it("returns validated samples, metrics as a Map, time only when given", () => {
    const [a, b] = validateOutcomes([ok({ metrics: { "cart.value": 3.5 } }), ok({ variant: "stable", success: false, timeMs: 1000, key: "" })]);
    expect(a).toEqual({ variant: "canary", success: true, latencyMs: 12.5, metrics: new Map([["cart.value", 3.5]]), invariantViolations: 0, key: "user-1" });
    expect(a).not.toHaveProperty("timeMs");
    expect(b).toMatchObject({ variant: "stable", success: false, timeMs: 1000, key: "" });
    expect(b?.metrics.size).toBe(0);
  });

  it("accepts metrics given as a Map", () => {
    const [a] = validateOutcomes([ok({ metrics: new Map([["p", 1]]) })]);
    expect(a?.metrics.get("p")).toBe(1);
  });

  it("rejects an empty or oversized batch", () => {
    expect(rejection(() => validateOutcomes([]))).toBe("outcomes: must hold 1..10000 outcomes");
    expect(rejection(() => validateOutcomes(Array.from({ length: 10_001 }, () => ok())))).toBe("outcomes: must hold 1..10000 outcomes");
    expect(validateOutcomes(Array.from({ length: 10_000 }, () => ok()))).toHaveLength(10_000);
  });

  it.each([
    ["an unspecified variant", ok({ variant: undefined }), "outcomes[0].variant: must be VARIANT_STABLE or VARIANT_CANARY"],
    ["a negative latency", ok({ latencyMs: -1 }), "outcomes[0].latency_ms: must be finite and >= 0"],
    ["a NaN latency", ok({ latencyMs: NaN }), "outcomes[0].latency_ms: must be finite and >= 0"],
    ["an infinite latency", ok({ latencyMs: Infinity }), "outcomes[0].latency_ms: must be finite and >= 0"],
    ["a non-finite metric", ok({ metrics: { p: NaN } }), 'outcomes[0].metrics["p"]: must be finite'],
    ["an infinite metric", ok({ metrics: { p: -Infinity } }), 'outcomes[0].metrics["p"]: must be finite'],
    ["a bad metric name", ok({ metrics: { "9lives": 1 } }), 'outcomes[0].metrics["9lives"]: name must match [A-Za-z_][A-Za-z0-9_.:-]{0,62}'],
    ["an empty metric name", ok({ metrics: { "": 1 } }), 'outcomes[0].metrics[""]: name must match [A-Za-z_][A-Za-z0-9_.:-]{0,62}'],
    ["a 64-character metric name", ok({ metrics: { ["m".repeat(64)]: 1 } }), `outcomes[0].metrics["${"m".repeat(64)}"]: name must match`],
    ["a fractional violation count", ok({ invariantViolations: 1.5 }), "outcomes[0].invariant_violations: must be an integer >= 0"],
    ["a key over 1024 bytes", ok({ key: "é".repeat(513) }), "outcomes[0].key: must be at most 1024 bytes of UTF-8"],
    ["a time before the epoch", ok({ timeMs: -5 }), "outcomes[0].time: must be a valid timestamp"],
  ])("rejects %s with the field path and the rule", (_what, bad, message) => {
    expect(rejection(() => validateOutcomes([bad]))).toContain(message);
  });

  it("accepts the limits exactly: 64 metrics, 63-character names, 1024-byte keys", () => {
    const metrics = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`m_${i}.x:y-z`, i]));
    const [a] = validateOutcomes([ok({ metrics: { ...metrics }, key: "é".repeat(512) }), ok({ metrics: { ["_".repeat(63)]: 0 } })]);
    expect(a?.metrics.size).toBe(64);
  });

  it("rejects more than 64 metrics", () => {
    const metrics = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`m${i}`, i]));
    expect(rejection(() => validateOutcomes([ok({ metrics })]))).toBe("outcomes[0].metrics: must hold at most 64 metrics");
  });

  it("names the first bad outcome of a batch", () => {
    const batch = [ok(), ok(), ok({ metrics: { p: NaN } }), ok({ latencyMs: -1 })];
    expect(rejection(() => validateOutcomes(batch))).toBe('outcomes[2].metrics["p"]: must be finite');
    expect(rejection(() => validateOutcomes([ok(), ok(), ok(), ok({ latencyMs: -1 })]))).toBe("outcomes[3].latency_ms: must be finite and >= 0");
  });

  it("uses the caller's field prefix", () => {
    expect(rejection(() => validateOutcomes([ok({ variant: undefined })], "batch.outcomes"))).toBe(
      "batch.outcomes[0].variant: must be VARIANT_STABLE or VARIANT_CANARY",
    );
  });

  it("keeps the error short for a huge metric name", () => {
    const message = rejection(() => validateOutcomes([ok({ metrics: { [" ".repeat(10_000)]: 1 } })]));
    expect(message.length).toBeLessThan(200);
  });
});
