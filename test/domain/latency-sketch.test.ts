import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  SKETCH_MAX_BINS,
  SKETCH_MAX_MS,
  SKETCH_MIN_MS,
  addLatency,
  createSketch,
  decodeSketch,
  encodeSketch,
  mergeSketch,
  sketchCount,
  sketchMean,
  sketchQuantile,
  type LatencySketch,
} from "../../src/domain/latency-sketch.js";

const QUANTILES = [0, 0.5, 0.9, 0.95, 0.99, 1];

/** The exact quantile the sketch approximates: the order statistic at rank floor(q·(n−1)). */
function exact(sorted: readonly number[], q: number): number {
  return sorted[Math.floor(q * (sorted.length - 1))] as number;
}

function sketchOf(values: readonly number[]): LatencySketch {
  const s = createSketch();
  for (const v of values) addLatency(s, v);
  return s;
}

function relativeError(estimate: number, truth: number): number {
  return truth === 0 ? Math.abs(estimate) : Math.abs(estimate - truth) / truth;
}

/** What the sketch promises for a value: below 1 µs it is 0, above 28 h it is 28 h. */
const domain = (v: number) => (v < SKETCH_MIN_MS ? 0 : Math.min(v, SKETCH_MAX_MS));

/** Latency distributions in ms, drawn from uniforms in (0, 1]. */
const distributions: Record<string, fc.Arbitrary<number>> = {
  // Includes values below 1 µs (and subnormals): they count as 0.
  uniform: fc.double({ min: 0, max: 5000, noNaN: true }),
  logNormal: fc.tuple(fc.double({ min: 1e-9, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true })).map(([u, v]) => {
    const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    return 20 * Math.exp(1.2 * z);
  }),
  // Pareto with shape 1.1: a heavy tail, the p99 hundreds of times the median.
  pareto: fc.double({ min: 1e-12, max: 1, noNaN: true }).map((u) => 5 * Math.pow(u, -1 / 1.1)),
  exponential: fc.double({ min: 1e-12, max: 1, noNaN: true }).map((u) => -50 * Math.log(u)),
  // Mostly fast, a few very slow, some exact zeros (cache hits timed at 0 ms).
  bimodalWithZeros: fc.oneof(
    { arbitrary: fc.constant(0), weight: 1 },
    { arbitrary: fc.double({ min: 0.2, max: 3, noNaN: true }), weight: 15 },
    { arbitrary: fc.double({ min: 2000, max: 30_000, noNaN: true }), weight: 1 },
  ),
};

describe("latency sketch", () => {
  for (const [name, dist] of Object.entries(distributions)) {
    it(`quantiles are within 2% (in fact 1%) of the exact ones: ${name}`, () => {
      fc.assert(
        fc.property(fc.array(dist, { minLength: 1, maxLength: 3000 }), (values) => {
          const s = sketchOf(values);
          const sorted = [...values].sort((a, b) => a - b);
          expect(sketchCount(s)).toBe(values.length);
          for (const q of QUANTILES) {
            const err = relativeError(sketchQuantile(s, q), domain(exact(sorted, q)));
            expect(err).toBeLessThanOrEqual(0.02);
            // The mapping's guarantee is 1%, up to floating-point rounding.
            expect(err).toBeLessThanOrEqual(0.01 * (1 + 1e-6));
          }
        }),
        { numRuns: 60 },
      );
    });
  }

  it("merging two sketches gives the sketch of the union", () => {
    fc.assert(
      fc.property(fc.array(distributions.logNormal as fc.Arbitrary<number>, { maxLength: 800 }), fc.array(distributions.pareto as fc.Arbitrary<number>, { maxLength: 800 }), (a, b) => {
        const merged = sketchOf(a);
        const right = sketchOf(b);
        mergeSketch(merged, right);
        const union = sketchOf([...a, ...b]);
        expect(sketchCount(merged)).toBe(a.length + b.length);
        expect(sketchCount(right)).toBe(b.length);
        for (const q of QUANTILES) expect(sketchQuantile(merged, q)).toBe(sketchQuantile(union, q));
        // Same bins and count; the sum differs only by the order of floating-point additions.
        if (a.length + b.length > 0) expect(Math.abs(sketchMean(merged) - sketchMean(union))).toBeLessThanOrEqual(1e-9 * sketchMean(union));
      }),
      { numRuns: 100 },
    );
  });

  it("merges values around 1 ms without losing any (the library's own merge drops them)", () => {
    const a = sketchOf(Array.from({ length: 100 }, (_, i) => 0.5 + i * 0.001));
    mergeSketch(a, sketchOf([0.9, 0.99, 1.0]));
    expect(sketchCount(a)).toBe(103);
    expect(sketchQuantile(a, 1)).toBeCloseTo(1.0, 1);
    expect(Number.isNaN(sketchQuantile(a, 0.99))).toBe(false);
    const tiny = sketchOf([0.01]);
    mergeSketch(tiny, sketchOf([0.02, 1.0]));
    expect(relativeError(sketchQuantile(tiny, 1), 1)).toBeLessThanOrEqual(0.01);
  });

  it("encodes and decodes exactly", () => {
    fc.assert(
      fc.property(fc.array(distributions.bimodalWithZeros as fc.Arbitrary<number>, { maxLength: 2000 }), (values) => {
        const s = sketchOf(values);
        const back = decodeSketch(encodeSketch(s));
        expect(sketchCount(back)).toBe(values.length);
        for (const q of QUANTILES) expect(sketchQuantile(back, q)).toEqual(sketchQuantile(s, q));
        if (values.length > 0) expect(sketchMean(back)).toBe(sketchMean(s));
        expect(encodeSketch(back)).toEqual(encodeSketch(s));
        // A decoded sketch keeps working: add to it and merge it.
        addLatency(back, 7);
        mergeSketch(back, s);
        expect(sketchCount(back)).toBe(2 * values.length + 1);
      }),
      { numRuns: 100 },
    );
  });

  it("encodes compactly: about a byte per bin", () => {
    const s = sketchOf(Array.from({ length: 10_000 }, (_, i) => 1 + (i % 1000)));
    // 1..1000 ms spans ~350 bins; counts up to ~30 fit in one byte each.
    expect(encodeSketch(s).length).toBeLessThan(500);
  });

  it("rejects bytes that are not an encoded sketch", () => {
    const good = encodeSketch(sketchOf([1, 2, 3]));
    expect(() => decodeSketch(new Uint8Array())).toThrow(RangeError);
    expect(() => decodeSketch(good.subarray(0, good.length - 1))).toThrow(RangeError);
    expect(() => decodeSketch(Uint8Array.from([...good, 0]))).toThrow(RangeError);
    expect(() => decodeSketch(Uint8Array.from([9, ...good.subarray(1)]))).toThrow(RangeError);
  });

  it("keeps memory bounded whatever the values: at most SKETCH_MAX_BINS bins", () => {
    const s = createSketch();
    const values: number[] = [];
    for (let e = -12; e <= 14; e += 0.001) values.push(10 ** e);
    for (const v of values) addLatency(s, v);
    // The encoding holds one count per bin from the lowest to the highest key.
    const bytes = encodeSketch(s);
    expect(bytes.length).toBeLessThan(SKETCH_MAX_BINS * 2 + 64);
    expect(SKETCH_MAX_BINS).toBeLessThan(1300);
    expect(decodeSketch(bytes)).toBeDefined();
    // Inside the range every quantile keeps its 1%.
    const sorted = values.map(domain).sort((a, b) => a - b);
    for (const q of QUANTILES) expect(relativeError(sketchQuantile(s, q), exact(sorted, q))).toBeLessThanOrEqual(0.0101);
    expect(relativeError(sketchQuantile(s, 1), SKETCH_MAX_MS)).toBeLessThanOrEqual(0.0101);
  });

  it("clamps values a caller failed to validate instead of breaking the sketch", () => {
    const s = sketchOf([NaN, -5, Infinity, 3]);
    expect(sketchCount(s)).toBe(4);
    expect(sketchQuantile(s, 0)).toBe(0);
    expect(relativeError(sketchQuantile(s, 1), SKETCH_MAX_MS)).toBeLessThanOrEqual(0.01);
    expect(Number.isFinite(sketchMean(s))).toBe(true);
  });

  it("answers NaN for an empty sketch", () => {
    expect(sketchQuantile(createSketch(), 0.5)).toBeNaN();
    expect(sketchMean(createSketch())).toBeNaN();
    expect(sketchCount(decodeSketch(encodeSketch(createSketch())))).toBe(0);
  });
});
