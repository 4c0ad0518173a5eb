import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { binomialUpperTail, incompleteBeta, logGamma, rateExceedsPValue, ratioExceedsPValue } from "../../src/domain/statistics.js";
import { mulberry32 } from "./fixtures.js";

/** P(X >= k) for X ~ Binomial(n, p), summed term by term in log space. */
function directTail(k: number, n: number, p: number): number {
  let sum = 0;
  for (let i = Math.max(0, k); i <= n; i++) {
    sum += Math.exp(logChoose(n, i) + i * Math.log(p) + (n - i) * Math.log1p(-p));
  }
  return sum;
}

function logChoose(n: number, k: number): number {
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log(n - k + i) - Math.log(i);
  return s;
}

function binomial(rnd: () => number, n: number, p: number): number {
  let k = 0;
  for (let i = 0; i < n; i++) if (rnd() < p) k++;
  return k;
}

describe("logGamma", () => {
  it("matches known values", () => {
    expect(logGamma(1)).toBeCloseTo(0, 12);
    expect(logGamma(2)).toBeCloseTo(0, 12);
    expect(logGamma(0.5)).toBeCloseTo(Math.log(Math.sqrt(Math.PI)), 12);
    expect(logGamma(10)).toBeCloseTo(Math.log(362_880), 10);
    expect(logGamma(1001)).toBeCloseTo(5912.128178488163, 9);
  });
});

describe("incompleteBeta", () => {
  it("is 0 and 1 at the ends and symmetric: I_x(a, b) = 1 − I_{1−x}(b, a)", () => {
    fc.assert(
      fc.property(fc.double({ min: 0.001, max: 0.999, noNaN: true }), fc.double({ min: 0.1, max: 500, noNaN: true }), fc.double({ min: 0.1, max: 500, noNaN: true }), (x, a, b) => {
        expect(incompleteBeta(x, a, b) + incompleteBeta(1 - x, b, a)).toBeCloseTo(1, 9);
      }),
    );
    expect(incompleteBeta(0, 2, 3)).toBe(0);
    expect(incompleteBeta(1, 2, 3)).toBe(1);
    expect(incompleteBeta(0.3, 1, 1)).toBeCloseTo(0.3, 12);
  });
});

describe("binomialUpperTail", () => {
  it("equals the tail summed term by term", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 400 }), fc.double({ min: 0.0005, max: 0.9995, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), (n, p, f) => {
        const k = Math.round(f * (n + 1));
        const tail = binomialUpperTail(k, n, p);
        expect(Math.abs(tail - directTail(k, n, p))).toBeLessThan(1e-9);
      }),
      { numRuns: 300 },
    );
  });

  it("handles the edges", () => {
    expect(binomialUpperTail(0, 10, 0.3)).toBe(1);
    expect(binomialUpperTail(11, 10, 0.3)).toBe(0);
    expect(binomialUpperTail(1, 10, 0)).toBe(0);
    expect(binomialUpperTail(10, 10, 1)).toBe(1);
    expect(binomialUpperTail(3, 10, 0.2)).toBeCloseTo(0.3222004736, 9);
  });
});

describe("rateExceedsPValue (exact binomial test of rate <= max)", () => {
  it("is the probability of at least this many errors at the bound", () => {
    expect(rateExceedsPValue(10, 100, 0.05)).toBeCloseTo(directTail(10, 100, 0.05), 12);
    expect(rateExceedsPValue(0, 100, 0.05)).toBe(1);
    expect(rateExceedsPValue(1, 0, 0.05)).toBe(1);
    // Any error at all is significant against a bound of 0.
    expect(rateExceedsPValue(1, 100, 0)).toBe(0);
  });

  it("keeps its false-alarm rate at or below 1 − confidence at small samples", () => {
    const rnd = mulberry32(7);
    for (const [n, p] of [[30, 0.05], [100, 0.01], [100, 0.05], [500, 0.02]] as const) {
      let alarms = 0;
      const runs = 4000;
      for (let i = 0; i < runs; i++) if (rateExceedsPValue(binomial(rnd, n, p), n, p) < 0.05) alarms++;
      // Binomial noise on 4,000 runs is ~0.35 percentage points.
      expect(alarms / runs).toBeLessThanOrEqual(0.05 + 0.01);
    }
  });
});

describe("ratioExceedsPValue (exact conditional test of canary rate <= ratio × stable rate)", () => {
  it("is not fooled by a single error against a stable with none", () => {
    // A z-test would call 1 error in 100 against 0 in 1,900 significant (z ≈ 3.6).
    expect(ratioExceedsPValue(1, 100, 0, 1900, 1.5)).toBeGreaterThan(0.05);
    // Five errors in 100 against 0 in 1,900 is.
    expect(ratioExceedsPValue(5, 100, 0, 1900, 1.5)).toBeLessThan(0.001);
  });

  it("grows with the stable's errors and the ratio, shrinks with the canary's", () => {
    const p = (c: number, s: number, r: number) => ratioExceedsPValue(c, 300, s, 5700, r);
    expect(p(10, 57, 1)).toBeLessThan(p(10, 80, 1));
    expect(p(10, 57, 1)).toBeLessThan(p(10, 57, 2));
    expect(p(12, 57, 1)).toBeLessThan(p(10, 57, 1));
    expect(p(0, 57, 1)).toBe(1);
  });

  it("keeps its false-alarm rate at or below 1 − confidence, for rare and common errors", () => {
    const rnd = mulberry32(11);
    for (const [p, ratio, nc, ns] of [
      [0.01, 1, 300, 5700],
      [0.2, 1, 300, 5700],
      [0.4, 1, 300, 300],
      [0.02, 1.5, 100, 1900],
      [0.05, 1, 50, 50],
    ] as const) {
      let alarms = 0;
      const runs = 3000;
      for (let i = 0; i < runs; i++) {
        // The canary exactly at the bound: ratio × the stable's rate.
        if (ratioExceedsPValue(binomial(rnd, nc, p * ratio), nc, binomial(rnd, ns, p), ns, ratio) < 0.05) alarms++;
      }
      expect(alarms / runs).toBeLessThanOrEqual(0.05 + 0.012);
    }
  });

  it("has the power to see a 3× canary with enough samples", () => {
    const rnd = mulberry32(13);
    let caught = 0;
    for (let i = 0; i < 1000; i++) if (ratioExceedsPValue(binomial(rnd, 1500, 0.03), 1500, binomial(rnd, 28_500, 0.01), 28_500, 1.2) < 0.01) caught++;
    expect(caught / 1000).toBeGreaterThan(0.95);
  });
});
