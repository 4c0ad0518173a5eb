import { describe, expect, it } from "vitest";
import { DomainError } from "../../src/domain/errors.js";
import { MAX_GATES, evaluateGate, upperVerdict, validateGates, type GateResult } from "../../src/domain/gates.js";
import type { Gate, GateCheck } from "../../src/domain/rollout.js";
import { aggregate, createWindow, record, type WindowAggregate } from "../../src/domain/sliding-window.js";
import { T0, gate, sample } from "./fixtures.js";

interface Side {
  readonly n: number;
  readonly errors?: number;
  /** Latency of outcome i (0-based); 10 ms by default. */
  readonly latency?: (i: number) => number;
  /** A metric value for outcome i, or undefined when it does not carry the metric. */
  readonly metric?: (i: number) => number | undefined;
  readonly violations?: number;
}

/** Returns the aggregate of a window fed `n` outcomes, the first `errors` of them failed. */
function side(s: Side): WindowAggregate {
  const w = createWindow(60_000, 10_000);
  for (let i = 0; i < s.n; i++) {
    const m = s.metric?.(i);
    record(
      w,
      sample({
        success: i >= (s.errors ?? 0),
        latencyMs: s.latency?.(i) ?? 10,
        invariantViolations: i === 0 ? (s.violations ?? 0) : 0,
        metrics: m === undefined ? new Map() : new Map([["basket", m]]),
      }),
      T0,
    );
  }
  return aggregate(w, T0);
}

const NONE = side({ n: 0 });

function judge(check: GateCheck, canary: Side, stable: Side = { n: 0 }, minSamples = 100): GateResult {
  return evaluateGate(gate("g", check, { minSamples }), side(canary), stable.n === 0 ? NONE : side(stable));
}

describe("upperVerdict", () => {
  it("fails above the bound, warns within 10% below it, passes below; no warning band at 0", () => {
    expect(upperVerdict(0.051, 0.05)).toBe("fail");
    expect(upperVerdict(0.05, 0.05)).toBe("warn");
    expect(upperVerdict(0.045, 0.05)).toBe("warn");
    expect(upperVerdict(0.0449, 0.05)).toBe("pass");
    expect(upperVerdict(0, 0)).toBe("pass");
    expect(upperVerdict(1, 0)).toBe("fail");
    expect(upperVerdict(-9.5, -10)).toBe("fail");
    expect(upperVerdict(-10.5, -10)).toBe("warn");
  });
});

describe("error_rate gate", () => {
  it("fails above max, with the numbers in words", () => {
    const r = judge({ kind: "error_rate", max: 0.05 }, { n: 100, errors: 31 });
    expect(r).toMatchObject({ name: "g", kind: "error_rate", observed: 0.31, threshold: 0.05, samples: 100, minSamples: 100, verdict: "fail", onBreach: "rollback" });
    expect(r.message).toBe("canary error rate 0.31 > max 0.05");
  });

  it("passes, warns within 10% of the bound, and is inconclusive below min_samples", () => {
    expect(judge({ kind: "error_rate", max: 0.05 }, { n: 100, errors: 2 }).verdict).toBe("pass");
    const warn = judge({ kind: "error_rate", max: 0.05 }, { n: 100, errors: 5 });
    expect(warn.verdict).toBe("warn");
    expect(warn.message).toContain("within 10%");
    const few = judge({ kind: "error_rate", max: 0.05 }, { n: 99, errors: 99 });
    expect(few.verdict).toBe("inconclusive");
    expect(few.message).toBe("canary error rate: 99 of 100 samples needed");
  });

  it("holds the canary to the stable's rate × max_ratio, reporting the baseline", () => {
    const r = judge({ kind: "error_rate", maxRatio: 2 }, { n: 1000, errors: 50 }, { n: 2000, errors: 40 });
    expect(r).toMatchObject({ verdict: "fail", observed: 0.05, baseline: 0.02, threshold: 0.04 });
    expect(r.message).toBe("canary error rate 0.05 > stable 0.02 × 2 = 0.04");
    expect(judge({ kind: "error_rate", maxRatio: 2 }, { n: 1000, errors: 30 }, { n: 2000, errors: 40 }).verdict).toBe("pass");
  });

  it("uses the tighter of max and max_ratio", () => {
    const byRatio = judge({ kind: "error_rate", max: 0.1, maxRatio: 1.5 }, { n: 1000, errors: 40 }, { n: 1000, errors: 20 });
    expect(byRatio).toMatchObject({ verdict: "fail", threshold: 0.03 });
    const byMax = judge({ kind: "error_rate", max: 0.01, maxRatio: 1.5 }, { n: 1000, errors: 20 }, { n: 1000, errors: 20 });
    expect(byMax).toMatchObject({ verdict: "fail", threshold: 0.01 });
    expect(byMax.message).toContain("> max 0.01");
  });

  it("needs min_samples on the stable side for max_ratio; judges max alone meanwhile", () => {
    const ratioOnly = judge({ kind: "error_rate", maxRatio: 1.5 }, { n: 200, errors: 100 }, { n: 50, errors: 0 });
    expect(ratioOnly.verdict).toBe("inconclusive");
    expect(ratioOnly.message).toContain("stable has 50 of 100 samples needed for max_ratio");
    const both = judge({ kind: "error_rate", max: 0.2, maxRatio: 1.5 }, { n: 200, errors: 100 }, { n: 50, errors: 0 });
    expect(both).toMatchObject({ verdict: "fail", threshold: 0.2 });
    expect(both.message).toContain("max_ratio not judged");
  });

  it("with confidence, fails only when the canary is significantly worse; noise only warns", () => {
    const check: GateCheck = { kind: "error_rate", max: 0.05, confidence: 0.95 };
    // 8 errors in 100 against max 5%: P(X >= 8 | p = 0.05) ≈ 0.13, not significant.
    const noisy = judge(check, { n: 100, errors: 8 });
    expect(noisy.verdict).toBe("warn");
    expect(noisy.message).toMatch(/not significant at 95% confidence \(p = 0\.1\d\)/);
    const clear = judge(check, { n: 100, errors: 15 });
    expect(clear.verdict).toBe("fail");
    expect(clear.message).toMatch(/worse with 95% confidence, p = /);
    // The same excess with ten times the samples is significant.
    expect(judge(check, { n: 1000, errors: 80 }).verdict).toBe("fail");
  });

  it("with confidence and max_ratio, uses the two-sample test", () => {
    const check: GateCheck = { kind: "error_rate", maxRatio: 1.5, confidence: 0.95 };
    expect(judge(check, { n: 100, errors: 1 }, { n: 1900, errors: 0 }).verdict).toBe("warn");
    expect(judge(check, { n: 100, errors: 6 }, { n: 1900, errors: 0 }).verdict).toBe("fail");
    // 9 in 300 (3%) against 57 in 5,700 (1%) could still be noise at 1.5×; 15 in 300 is not.
    expect(judge(check, { n: 300, errors: 9 }, { n: 5700, errors: 57 }).verdict).toBe("warn");
    expect(judge(check, { n: 300, errors: 15 }, { n: 5700, errors: 57 }).verdict).toBe("fail");
    expect(judge(check, { n: 300, errors: 4 }, { n: 5700, errors: 57 }).verdict).toBe("pass");
  });
});

describe("latency gate", () => {
  const ramp = (i: number) => i + 1; // 1..n ms

  it("bounds the canary's quantile by max_ms", () => {
    const r = judge({ kind: "latency", quantile: 0.99, maxMs: 300 }, { n: 1000, latency: (i) => (i < 980 ? 50 : 400) });
    expect(r.verdict).toBe("fail");
    expect(r.observed).toBeGreaterThan(390);
    expect(r.observed).toBeLessThan(410);
    expect(r.message).toMatch(/^canary p99 latency (39|40)\d ms > max 300 ms$/);
    expect(judge({ kind: "latency", quantile: 0.5, maxMs: 600 }, { n: 1000, latency: ramp }).verdict).toBe("pass");
    expect(judge({ kind: "latency", quantile: 0.5, maxMs: 520 }, { n: 1000, latency: ramp }).verdict).toBe("warn");
  });

  it("bounds it by the stable's quantile × max_ratio: a +60% p99 regression fails at 1.5", () => {
    const stable = { n: 2000, latency: (i: number) => 20 + (i % 100) };
    const slower = { n: 1000, latency: (i: number) => 1.6 * (20 + (i % 100)) };
    const r = judge({ kind: "latency", quantile: 0.99, maxRatio: 1.5 }, slower, stable);
    expect(r.verdict).toBe("fail");
    expect(r.baseline).toBeCloseTo(119, -0.5);
    expect(r.observed / (r.baseline ?? 1)).toBeCloseTo(1.6, 1);
    expect(r.message).toMatch(/> stable 1\d\d ms × 1\.5 = 1\d\d ms/);
    const same = judge({ kind: "latency", quantile: 0.99, maxRatio: 1.5 }, { n: 1000, latency: stable.latency }, stable);
    expect(same.verdict).toBe("pass");
  });

  it("is inconclusive without enough canary samples, or with only a ratio and a thin stable", () => {
    expect(judge({ kind: "latency", quantile: 0.9, maxMs: 1 }, { n: 10, latency: ramp }).verdict).toBe("inconclusive");
    expect(judge({ kind: "latency", quantile: 0.9, maxRatio: 1.2 }, { n: 500 }, { n: 20 }).verdict).toBe("inconclusive");
  });
});

describe("success_rate gate", () => {
  it("fails below min, warns once 90% of the error budget is spent", () => {
    const check: GateCheck = { kind: "success_rate", min: 0.99 };
    const fail = judge(check, { n: 1000, errors: 11 });
    expect(fail).toMatchObject({ verdict: "fail", observed: 0.989, threshold: 0.99 });
    expect(fail.message).toBe("canary success rate 0.989 < min 0.99");
    expect(judge(check, { n: 1000, errors: 9 }).verdict).toBe("warn");
    expect(judge(check, { n: 1000, errors: 8 }).verdict).toBe("pass");
  });
});

describe("metric gate", () => {
  it("bounds the canary's mean or max", () => {
    const mean = judge({ kind: "metric", metric: "basket", aggregation: "mean", max: 40 }, { n: 200, metric: (i) => i % 100 });
    expect(mean).toMatchObject({ verdict: "fail", observed: 49.5, threshold: 40, samples: 200 });
    expect(mean.message).toBe("canary basket mean 49.5 > max 40");
    const max = judge({ kind: "metric", metric: "basket", aggregation: "max", max: 100 }, { n: 200, metric: (i) => i % 100 });
    expect(max).toMatchObject({ verdict: "warn", observed: 99 });
  });

  it("bounds |canary − stable| by max_delta and reports the deciding bound", () => {
    const r = judge({ kind: "metric", metric: "basket", aggregation: "mean", max: 1000, maxDelta: 5 }, { n: 200, metric: () => 58 }, { n: 400, metric: () => 50 });
    expect(r).toMatchObject({ verdict: "fail", observed: 8, threshold: 5, baseline: 50 });
    expect(r.message).toBe("|canary basket mean 58 − stable 50| = 8 > max_delta 5");
  });

  it("counts only outcomes that carry the metric", () => {
    const r = judge({ kind: "metric", metric: "basket", aggregation: "mean", max: 10 }, { n: 500, metric: (i) => (i < 50 ? 1 : undefined) });
    expect(r).toMatchObject({ verdict: "inconclusive", samples: 50 });
  });
});

describe("invariant gate", () => {
  it("fails on a violation whatever the sample count, and passes cleanly at 0 of max 0", () => {
    const r = judge({ kind: "invariant", max: 0 }, { n: 3, violations: 1 });
    expect(r).toMatchObject({ verdict: "fail", observed: 1, threshold: 0, samples: 3 });
    expect(r.message).toBe("canary invariant violations 1 > max 0");
    expect(judge({ kind: "invariant", max: 0 }, { n: 100 }).verdict).toBe("pass");
    expect(judge({ kind: "invariant", max: 0 }, { n: 3 }).verdict).toBe("inconclusive");
    expect(judge({ kind: "invariant", max: 10 }, { n: 100, violations: 9 }).verdict).toBe("warn");
  });
});

describe("validateGates", () => {
  const valid: Gate[] = [
    gate("errors", { kind: "error_rate", max: 0.05, maxRatio: 1.5, confidence: 0.95 }),
    gate("p99", { kind: "latency", quantile: 0.99, maxMs: 300 }),
    gate("success", { kind: "success_rate", min: 0.995 }),
    gate("basket", { kind: "metric", metric: "cart.value", aggregation: "mean", maxDelta: 2 }),
    gate("ledger", { kind: "invariant", max: 0 }, { onBreach: "halt" }),
  ];

  function rejection(gates: readonly Gate[]): string {
    try {
      validateGates(gates, "rollout.gates");
    } catch (e) {
      expect(e).toBeInstanceOf(DomainError);
      expect((e as DomainError).kind).toBe("invalid_argument");
      return (e as DomainError).message;
    }
    throw new Error("expected INVALID_ARGUMENT");
  }

  it("accepts a valid set", () => {
    expect(() => validateGates(valid, "rollout.gates")).not.toThrow();
    expect(() => validateGates([], "gates")).not.toThrow();
  });

  const bad = (i: number, g: Gate) => valid.map((v, j) => (j === i ? g : v));
  it.each([
    ["too many gates", Array.from({ length: MAX_GATES + 1 }, (_, i) => gate(`g${i}`, { kind: "invariant", max: 0 })), "rollout.gates: must hold at most 32 gates"],
    ["a bad name", bad(0, gate("Errors!", { kind: "error_rate", max: 0.05 })), "rollout.gates[0].name: must match [a-z0-9][a-z0-9._-]{0,62}"],
    ["a duplicate name", bad(1, gate("errors", { kind: "latency", quantile: 0.99, maxMs: 1 })), 'rollout.gates[1].name: duplicate gate name "errors"'],
    ["min_samples 0", bad(0, gate("errors", { kind: "error_rate", max: 0.05 }, { minSamples: 0 })), "rollout.gates[0].min_samples: must be 1..1000000000"],
    ["an error_rate with no bound", bad(0, gate("errors", { kind: "error_rate" })), "rollout.gates[0].error_rate: needs max or max_ratio"],
    ["max above 1", bad(0, gate("errors", { kind: "error_rate", max: 1.5 })), "rollout.gates[0].error_rate.max: must be 0..1"],
    ["max_ratio below 1", bad(0, gate("errors", { kind: "error_rate", maxRatio: 0.9 })), "rollout.gates[0].error_rate.max_ratio: must be finite and >= 1"],
    ["an infinite max_ratio", bad(0, gate("errors", { kind: "error_rate", maxRatio: Infinity })), "rollout.gates[0].error_rate.max_ratio: must be finite and >= 1"],
    ["confidence 0.3", bad(0, gate("errors", { kind: "error_rate", max: 0.1, confidence: 0.3 })), "rollout.gates[0].error_rate.confidence: must be 0.5..0.9999"],
    ["confidence 1", bad(0, gate("errors", { kind: "error_rate", max: 0.1, confidence: 1 })), "rollout.gates[0].error_rate.confidence: must be 0.5..0.9999"],
    ["quantile 0.75", bad(1, gate("p99", { kind: "latency", quantile: 0.75, maxMs: 300 })), "rollout.gates[1].latency.quantile: must be one of 0.5, 0.9, 0.95, 0.99"],
    ["a latency with no bound", bad(1, gate("p99", { kind: "latency", quantile: 0.99 })), "rollout.gates[1].latency: needs max_ms or max_ratio"],
    ["max_ms 0", bad(1, gate("p99", { kind: "latency", quantile: 0.99, maxMs: 0 })), "rollout.gates[1].latency.max_ms: must be finite and > 0"],
    ["min above 1", bad(2, gate("success", { kind: "success_rate", min: 1.01 })), "rollout.gates[2].success_rate.min: must be 0..1"],
    ["a bad metric name", bad(3, gate("basket", { kind: "metric", metric: "cart value", aggregation: "mean", max: 1 })), "rollout.gates[3].metric.metric: must match"],
    ["a metric with no bound", bad(3, gate("basket", { kind: "metric", metric: "cart", aggregation: "mean" })), "rollout.gates[3].metric: needs max or max_delta"],
    ["a negative max_delta", bad(3, gate("basket", { kind: "metric", metric: "cart", aggregation: "mean", maxDelta: -1 })), "rollout.gates[3].metric.max_delta: must be finite and >= 0"],
    ["a fractional invariant max", bad(4, gate("ledger", { kind: "invariant", max: 0.5 })), "rollout.gates[4].invariant.max: must be an integer >= 0"],
  ])("rejects %s", (_what, gates, message) => {
    expect(rejection(gates)).toContain(message);
  });
});
