import { DDSketch } from "@datadog/sketches-js";

/**
 * A mergeable, log-bucketed latency histogram: a DDSketch from @datadog/sketches-js (its
 * logarithmic key mapping and dense store) behind a handful of functions.
 *
 * Accuracy: every quantile is within 1% (relative) of the exact order statistic
 * `sorted[floor(q·(n−1))]`, half the 2% docs/design.md §5 allows, for latencies between
 * SKETCH_MIN_MS (1 µs) and SKETCH_MAX_MS (10⁸ ms, ~28 h). Latencies below 1 µs count as
 * exactly 0 (as do zeros) and latencies above 28 h as 28 h: outside that range a latency
 * is a clock artefact, not a measurement.
 *
 * Memory: that value range is what bounds the sketch. It spans SKETCH_MAX_BINS (1,268) bins
 * at most, ~10 KiB, whatever the traffic; latencies between 1 ms and 10 s use ~470 bins,
 * which the store allocates in chunks of 128.
 *
 * Where we deliberately do not use the library (v2.1.1):
 * - its collapsing stores (the usual way to bound a DDSketch) miscount after collapsing:
 *   the lowest bin ends up holding more than the sketch's total count and every quantile
 *   collapses to the lowest value. Bounding the value range bounds the plain dense store.
 * - merge: its `merge` loses bins when the merged store's highest key is 0 (values near
 *   1 ms: `_extendRange` reads `secondKey || key`), which yields NaN quantiles. We merge by
 *   adding the other sketch's bins one key at a time through the store's public `add`.
 * - encoding: its `toProto`/`fromProto` need `protobufjs`, which the package does not declare
 *   (it is only present here as a dev dependency of @grpc/grpc-js and is pruned from the
 *   production image), and `fromProto` drops sum, min and max. We write a compact encoding
 *   of the bins instead (varint counts: about a byte per bin).
 */

/** The relative accuracy of quantiles (1%). */
export const SKETCH_RELATIVE_ACCURACY = 0.01;

/** Latencies below this (1 µs) count as 0. */
export const SKETCH_MIN_MS = 1e-3;

/** Latencies above this (~28 h) count as this. */
export const SKETCH_MAX_MS = 1e8;

/** The encoding format version, first byte of every encoded sketch. */
const FORMAT = 1;

declare const sketchBrand: unique symbol;

/** A latency sketch; opaque: use the functions of this module. */
export interface LatencySketch {
  readonly [sketchBrand]: true;
}

type Impl = DDSketch;

const impl = (s: LatencySketch): Impl => s as unknown as Impl;

/** Returns a new, empty latency sketch. */
export function createSketch(): LatencySketch {
  return new DDSketch({ relativeAccuracy: SKETCH_RELATIVE_ACCURACY }) as unknown as LatencySketch;
}

/** The most bins a sketch can have: the keys from SKETCH_MIN_MS to SKETCH_MAX_MS. */
export const SKETCH_MAX_BINS: number = (() => {
  const m = impl(createSketch()).mapping;
  return m.key(SKETCH_MAX_MS) - m.key(SKETCH_MIN_MS) + 1;
})();

/**
 * Adds one latency in milliseconds: below 1 µs (and NaN, and negatives, which callers have
 * rejected already) as 0, above 28 h as 28 h, so that nothing can grow or poison a sketch.
 */
export function addLatency(s: LatencySketch, ms: number): void {
  impl(s).accept(ms >= SKETCH_MIN_MS ? (ms < SKETCH_MAX_MS ? ms : SKETCH_MAX_MS) : 0);
}

/** Adds every value of `from` into `into`; `from` is unchanged. */
export function mergeSketch(into: LatencySketch, from: LatencySketch): void {
  const a = impl(into);
  const b = impl(from);
  if (b.count === 0) return;
  const st = b.store;
  for (let key = st.minKey; key <= st.maxKey; key++) {
    const c = st.bins[key - st.offset] ?? 0;
    if (c > 0) a.store.add(key, c);
  }
  a.zeroCount += b.zeroCount;
  a.count += b.count;
  a.sum += b.sum;
  if (b.min < a.min) a.min = b.min;
  if (b.max > a.max) a.max = b.max;
}

/**
 * Adds (`weight` 1) or takes away (-1) `from`'s bins and zero count in `into`, leaving its
 * count, sum, min and max alone: a running sum of several sketches' bins that can also lose one
 * (sliding-window.ts keeps the closed buckets' bins that way). Counts are integers, so taking away
 * what was added is exact. Only for such sums, read through mergeSketchBins into a sketch whose
 * summary comes from mergeSketchSummary.
 */
export function mergeSketchBins(into: LatencySketch, from: LatencySketch, weight: 1 | -1): void {
  const a = impl(into);
  const b = impl(from);
  // A running sum keeps no count of its own: look at its bins.
  if (b.store.count === 0 && b.zeroCount === 0) return;
  const st = b.store;
  if (weight === 1 && a.store.bins.length === 0 && st.bins.length > 0) {
    // Into an empty store: copy the bins whole rather than growing the range key by key.
    a.store.bins = st.bins.slice();
    a.store.offset = st.offset;
    a.store.minKey = st.minKey;
    a.store.maxKey = st.maxKey;
    a.store.count = st.count;
    a.zeroCount += b.zeroCount;
    return;
  }
  for (let key = st.minKey; key <= st.maxKey; key++) {
    const c = st.bins[key - st.offset] ?? 0;
    if (c > 0) a.store.add(key, weight * c);
  }
  a.zeroCount += weight * b.zeroCount;
}

/** Adds `from`'s count, sum, min and max into `into` (its bins: mergeSketchBins); mergeSketch is both. */
export function mergeSketchSummary(into: LatencySketch, from: LatencySketch): void {
  const a = impl(into);
  const b = impl(from);
  if (b.count === 0) return;
  a.count += b.count;
  a.sum += b.sum;
  if (b.min < a.min) a.min = b.min;
  if (b.max > a.max) a.max = b.max;
}

/** Returns the value at quantile `q` (0..1), or NaN when the sketch is empty. */
export function sketchQuantile(s: LatencySketch, q: number): number {
  return impl(s).getValueAtQuantile(q);
}

/** Returns how many values the sketch holds. */
export function sketchCount(s: LatencySketch): number {
  return impl(s).count;
}

/** Returns the exact mean of the values, or NaN when the sketch is empty. */
export function sketchMean(s: LatencySketch): number {
  const x = impl(s);
  return x.count === 0 ? NaN : x.sum / x.count;
}

/**
 * Returns the sketch in a compact binary form that decodeSketch reads back exactly.
 *
 * Layout: format byte (1), varint zero count, float64 sum, min and max, varint bin count,
 * zigzag-varint lowest key, then one varint count per key from the lowest to the highest.
 */
export function encodeSketch(s: LatencySketch): Uint8Array {
  const x = impl(s);
  const st = x.store;
  const bins = st.count > 0 ? st.maxKey - st.minKey + 1 : 0;
  const w = writer(1 + 10 + 24 + 10 + 10 + bins * 3);
  w.byte(FORMAT);
  w.varint(x.zeroCount);
  w.f64(x.sum);
  w.f64(x.min);
  w.f64(x.max);
  w.varint(bins);
  if (bins > 0) {
    w.varint(zigzag(st.minKey));
    for (let key = st.minKey; key <= st.maxKey; key++) w.varint(Math.round(st.bins[key - st.offset] ?? 0));
  }
  return w.done();
}

/**
 * Returns the sketch encoded by encodeSketch.
 *
 * Throws RangeError on bytes that are not such an encoding (a corrupt store row); the sliding
 * window catches it and drops the bucket.
 */
export function decodeSketch(bytes: Uint8Array): LatencySketch {
  const r = reader(bytes);
  if (r.byte() !== FORMAT) throw new RangeError("latency sketch: unknown format");
  const s = createSketch();
  const x = impl(s);
  const zeroCount = r.varint();
  const sum = r.f64();
  const min = r.f64();
  const max = r.f64();
  const bins = r.varint();
  if (bins > SKETCH_MAX_BINS) throw new RangeError("latency sketch: too many bins");
  if (bins > 0) {
    const minKey = unzigzag(r.varint());
    const lowest = x.mapping.key(SKETCH_MIN_MS);
    if (minKey < lowest || minKey + bins - 1 > lowest + SKETCH_MAX_BINS - 1) throw new RangeError("latency sketch: keys out of range");
    for (let i = 0; i < bins; i++) {
      const c = r.varint();
      if (c > 0) x.store.add(minKey + i, c);
    }
  }
  r.end();
  x.zeroCount = zeroCount;
  x.count = x.store.count + zeroCount;
  x.sum = sum;
  x.min = x.count > 0 ? min : Infinity;
  x.max = x.count > 0 ? max : -Infinity;
  return s;
}

const zigzag = (n: number): number => (n >= 0 ? n * 2 : -n * 2 - 1);
const unzigzag = (n: number): number => (n % 2 === 0 ? n / 2 : -(n + 1) / 2);

/** A little-endian byte writer that grows as needed; varints hold integers up to 2⁵³. */
function writer(initial: number) {
  let buf = new Uint8Array(initial);
  let view = new DataView(buf.buffer);
  let n = 0;
  const room = (k: number) => {
    if (n + k <= buf.length) return;
    const next = new Uint8Array(Math.max(buf.length * 2, n + k));
    next.set(buf);
    buf = next;
    view = new DataView(buf.buffer);
  };
  return {
    byte(b: number) {
      room(1);
      buf[n++] = b;
    },
    varint(v: number) {
      room(8);
      // Division rather than bit operations: counts may exceed 2³¹.
      let x = Math.max(0, Math.floor(v));
      while (x >= 128) {
        buf[n++] = (x % 128) | 128;
        x = Math.floor(x / 128);
      }
      buf[n++] = x;
    },
    f64(v: number) {
      room(8);
      view.setFloat64(n, v, true);
      n += 8;
    },
    done: () => buf.slice(0, n),
  };
}

/** The reader matching `writer`; throws RangeError when the bytes run out or overflow. */
function reader(bytes: Uint8Array) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let n = 0;
  const need = (k: number) => {
    if (n + k > bytes.length) throw new RangeError("latency sketch: truncated");
  };
  return {
    byte() {
      need(1);
      return bytes[n++] as number;
    },
    varint() {
      let x = 0;
      let scale = 1;
      for (;;) {
        need(1);
        const b = bytes[n++] as number;
        x += (b & 127) * scale;
        if (b < 128) break;
        scale *= 128;
        if (scale > 2 ** 56) throw new RangeError("latency sketch: varint overflow");
      }
      return x;
    },
    f64() {
      need(8);
      const v = view.getFloat64(n, true);
      n += 8;
      return v;
    },
    end() {
      if (n !== bytes.length) throw new RangeError("latency sketch: trailing bytes");
    },
  };
}
