import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { evaluateGate, type GateResult } from "../../src/domain/gates.js";
import { INCONCLUSIVE_SCORE, gateScore, healthScore, recommendationOf } from "../../src/domain/health.js";
import type { GateCheck } from "../../src/domain/rollout.js";
import { aggregate, createWindow, record, type WindowAggregate } from "../../src/domain/sliding-window.js";
import { T0, gate, sample } from "./fixtures.js";

function windowOf(n: number, errors: number, latency: number, violations: number): WindowAggregate {
  const w = createWindow(60_000, 10_000);
  for (let i = 0; i < n; i++) {
    record(w, sample({ success: i >= errors, latencyMs: latency, invariantViolations: i === 0 ? violations : 0, metrics: new Map([["m", latency]]) }), T0);
  }
  return aggregate(w, T0);
}

/** Gate results as the real gates produce them, over random traffic and bounds. */
const results: fc.Arbitrary<GateResult> = fc
  .record({
    n: fc.integer({ min: 0, max: 400 }),
    errorShare: fc.double({ min: 0, max: 1, noNaN: true }),
    latency: fc.double({ min: 0, max: 1000, noNaN: true }),
    violations: fc.integer({ min: 0, max: 5 }),
    bound: fc.double({ min: 0, max: 1, noNaN: true }),
    kind: fc.constantFrom("error_rate", "latency", "success_rate", "metric", "invariant", "error_rate_conf", "error_rate_near"),
  })
  .map(({ n, errorShare, latency, violations, bound, kind }) => {
    const errors = Math.round(errorShare * n);
    const checks: Record<string, GateCheck> = {
      // A bound just above the observed rate: the warning band.
      error_rate_near: { kind: "error_rate", max: n === 0 ? 0.5 : Math.min(1, errors / n / (0.92 + 0.08 * bound)) },
      error_rate: { kind: "error_rate", max: bound },
      error_rate_conf: { kind: "error_rate", max: bound, confidence: 0.95 },
      latency: { kind: "latency", quantile: 0.99, maxMs: 1 + bound * 1000 },
      success_rate: { kind: "success_rate", min: bound },
      metric: { kind: "metric", metric: "m", aggregation: "mean", max: bound * 1000 },
      invariant: { kind: "invariant", max: Math.round(bound * 4) },
    };
    const canary = windowOf(n, errors, latency, violations);
    return evaluateGate(gate("g", checks[kind] as GateCheck, { minSamples: 50 }), canary, windowOf(0, 0, 0, 0));
  });

describe("health score", () => {
  it("is 1.0 exactly when every gate passes clearly (and without gates)", () => {
    fc.assert(
      fc.property(fc.array(results, { maxLength: 6 }), (gates) => {
        expect(healthScore(gates) === 1).toBe(gates.every((g) => g.verdict === "pass"));
      }),
      { numRuns: 300 },
    );
    expect(healthScore([])).toBe(1);
  });

  it("is below 0.8 exactly when some gate fails", () => {
    fc.assert(
      fc.property(fc.array(results, { maxLength: 6 }), (gates) => {
        const score = healthScore(gates);
        expect(score < 0.8).toBe(gates.some((g) => g.verdict === "fail"));
        expect(score).toBeGreaterThanOrEqual(0);
        expect(score).toBeLessThanOrEqual(1);
      }),
      { numRuns: 300 },
    );
  });

  it("is in [0.8, 0.9) when none fails and some gate warns or lacks samples", () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(fc.array(results, { minLength: 1, maxLength: 6 }), (gates) => {
        for (const g of gates) seen.add(g.verdict);
        const score = healthScore(gates);
        const band = !gates.some((g) => g.verdict === "fail") && gates.some((g) => g.verdict === "warn" || g.verdict === "inconclusive");
        expect(score >= 0.8 && score < 0.9).toBe(band);
      }),
      { numRuns: 300 },
    );
    // The generator reaches every verdict, so the properties above are not vacuous.
    expect([...seen].sort()).toEqual(["fail", "inconclusive", "pass", "warn"]);
  });

  it("maps scores to recommendations at 0.9 and 0.8", () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1, noNaN: true }), (score) => {
        const r = recommendationOf(score);
        expect(r).toBe(score >= 0.9 ? "healthy" : score >= 0.8 ? "monitor" : "rollback");
      }),
    );
    expect(recommendationOf(0.9)).toBe("healthy");
    expect(recommendationOf(0.8)).toBe("monitor");
    expect(recommendationOf(0.7999)).toBe("rollback");
  });

  it("gives no data the MONITOR band, never HEALTHY and never ROLLBACK", () => {
    const g = evaluateGate(gate("errors", { kind: "error_rate", max: 0.05 }), windowOf(0, 0, 0, 0), windowOf(0, 0, 0, 0));
    expect(g.verdict).toBe("inconclusive");
    expect(gateScore(g)).toBe(INCONCLUSIVE_SCORE);
    expect(recommendationOf(healthScore([g]))).toBe("monitor");
  });

  it("ranks worse failures lower and closer warnings lower", () => {
    const errorGate = (errors: number) => evaluateGate(gate("errors", { kind: "error_rate", max: 0.1 }), windowOf(100, errors, 10, 0), windowOf(0, 0, 0, 0));
    expect(gateScore(errorGate(30))).toBeLessThan(gateScore(errorGate(15)));
    expect(gateScore(errorGate(10))).toBeLessThan(gateScore(errorGate(9)));
    expect(gateScore(errorGate(9))).toBeLessThan(0.9);
    expect(gateScore(errorGate(20))).toBeCloseTo(0.79 / 2, 6);
  });
});
