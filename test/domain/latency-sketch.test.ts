import { DDSketch } from "@datadog/sketches-js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  SKETCH_MAX_BINS,
  SKETCH_MAX_MS,
  SKETCH_MIN_MS,
  SKETCH_RELATIVE_ACCURACY,
  SPARSE_MAX_KEYS,
  addLatency,
  createSketch,
  decodeSketch,
  encodeSketch,
  mergeSketch,
  mergeSketchBins,
  mergeSketchSummary,
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

  describe("our bin store gives the library's own quantiles", () => {
    /** The library's sketch with its own dense store, fed the values as addLatency clamps them. */
    function reference(values: readonly number[]): DDSketch {
      const d = new DDSketch({ relativeAccuracy: SKETCH_RELATIVE_ACCURACY });
      for (const v of values) d.accept(v >= SKETCH_MIN_MS ? Math.min(v, SKETCH_MAX_MS) : 0);
      return d;
    }
    // Many quantiles, not only the gates' ones: every rank boundary the tests can reach.
    const qs = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 20 });
    // Latencies over the whole range (few per key: the sparse list), or few keys (many per key), and sizes either side of SPARSE_MAX_KEYS.
    const spread = fc.double({ min: -4, max: 9, noNaN: true }).map((e) => 10 ** e);
    const narrow = fc.integer({ min: 1, max: 40 }).map((k) => 0.5 * 1.02 ** k);
    const values = fc.array(fc.oneof(spread, narrow, distributions.bimodalWithZeros as fc.Arbitrary<number>), { maxLength: 600 });
    const same = (ours: LatencySketch, ref: DDSketch, q: readonly number[]) => {
      expect(sketchCount(ours)).toBe(ref.count);
      for (const x of [...q, ...QUANTILES]) expect(sketchQuantile(ours, x)).toBe(ref.getValueAtQuantile(x));
    };

    it("after adding values", () => {
      fc.assert(
        fc.property(values, qs, (v, q) => same(sketchOf(v), reference(v), q)),
        { numRuns: 200 },
      );
    });

    it("after merging sketches and after decoding", () => {
      fc.assert(
        fc.property(fc.array(values, { minLength: 1, maxLength: 5 }), qs, (parts, q) => {
          const merged = createSketch();
          for (const p of parts) mergeSketch(merged, sketchOf(p));
          const all = parts.flat();
          same(merged, reference(all), q);
          same(decodeSketch(encodeSketch(merged)), reference(all), q);
        }),
        { numRuns: 150 },
      );
    });

    it("after a running sum of bins gains sketches and loses some (the closed-bucket cache)", () => {
      fc.assert(
        fc.property(fc.array(fc.tuple(values, fc.boolean()), { minLength: 1, maxLength: 6 }), qs, (parts, q) => {
          const sketches = parts.map(([v]) => sketchOf(v));
          const sum = createSketch();
          for (const s of sketches) mergeSketchBins(sum, s, 1);
          // Take away the ones marked false, then read the sum as the window does.
          parts.forEach(([, keep], i) => keep || mergeSketchBins(sum, sketches[i] as LatencySketch, -1));
          const read = createSketch();
          mergeSketchBins(read, sum, 1);
          parts.forEach(([, keep], i) => keep && mergeSketchSummary(read, sketches[i] as LatencySketch));
          const kept = parts.filter(([, keep]) => keep).flatMap(([v]) => v);
          if (kept.length === 0) expect(sketchCount(read)).toBe(0);
          else same(read, reference(kept), q);
        }),
        { numRuns: 150 },
      );
    });
  });

  it("writes the used keys only when they are few (format 2) and one count per key when they fill the range (format 1); reads both", () => {
    // A light bucket: 30 latencies over the whole range.
    const light = sketchOf(Array.from({ length: 30 }, (_, i) => 10 ** (-3 + (11 * i) / 29)));
    const lightBytes = encodeSketch(light);
    expect(lightBytes[0]).toBe(2);
    expect(lightBytes.length).toBeLessThan(30 * 3 + 50);
    // A busy one: every key from 1 to 1,000 ms used.
    const busy = sketchOf(Array.from({ length: 10_000 }, (_, i) => 1 + (i % 1000)));
    expect(encodeSketch(busy)[0]).toBe(1);
    for (const s of [light, busy]) {
      const back = decodeSketch(encodeSketch(s));
      for (const q of QUANTILES) expect(sketchQuantile(back, q)).toBe(sketchQuantile(s, q));
    }
    // More keys than the sorted list holds, still few in the range: dense in memory, sparse on disk.
    const many = sketchOf(Array.from({ length: SPARSE_MAX_KEYS * 3 }, (_, i) => 10 ** (-3 + (11 * i) / (SPARSE_MAX_KEYS * 3))));
    expect(encodeSketch(many)[0]).toBe(2);
    expect(encodeSketch(decodeSketch(encodeSketch(many)))).toEqual(encodeSketch(many));
    // A format-2 sketch with an empty bin, or keys past the range, is not one we wrote.
    expect(() => decodeSketch(Uint8Array.from([...lightBytes.subarray(0, lightBytes.length - 1), 0]))).toThrow(RangeError);
  });

  it("reads a sketch in format 1 as rollgate wrote every sketch before format 2", () => {
    // encodeSketch of sketchOf([0, 0.5, 1, 1, 250, 3e6]) by the code of commit 8484f83.
    const old = Buffer.from(
      "010100000040dee3464100000000000000000000000060e346418d0643010000000000000000000000000000000000000000" +
        "0000000000000000000000000002000000000000000000000000000000000000000000000000000000000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000001000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "00000000000000000001",
      "hex",
    );
    const s = decodeSketch(old);
    const fresh = sketchOf([0, 0.5, 1, 1, 250, 3e6]);
    expect(sketchCount(s)).toBe(6);
    for (const q of [...QUANTILES, 0.2, 0.4, 0.6, 0.8]) expect(sketchQuantile(s, q)).toBe(sketchQuantile(fresh, q));
    expect(sketchMean(s)).toBe(sketchMean(fresh));
    // Written again, it takes the new, smaller form.
    expect(encodeSketch(s)[0]).toBe(2);
    expect(encodeSketch(s).length).toBeLessThan(old.length / 10);
  });
});
