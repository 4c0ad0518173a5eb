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
 * at most, whatever the traffic. The bins live in our own store (BinStore below) in place of the
 * library's dense store: up to SPARSE_MAX_KEYS distinct keys as a sorted list of (key, count)
 * (a 10 s bucket of a lightly used rollout holds a few dozen latencies spread over the whole
 * range: a few hundred bytes instead of a 1,268-bin array), beyond that one count per key
 * between the lowest and highest seen (a Float64Array, ≤ ~10 KiB). The library's store
 * grows by shifting and re-centring its whole array whenever a key falls outside it, which is
 * most of what recording cost under spread traffic. Both hold the same count per key as the
 * library's store would, and quantiles are read the library's way (`keyAtRank` over the keys in
 * order), so every quantile is the one the library's own store gives.
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
 *   of the bins instead: a varint count per key over the range (format 1), or, when fewer than
 *   half the keys in the range are used, (key gap, count) varint pairs of the used keys only
 *   (format 2); both are read.
 */

/** The relative accuracy of quantiles (1%). */
export const SKETCH_RELATIVE_ACCURACY = 0.01;

/** Latencies below this (1 µs) count as 0. */
export const SKETCH_MIN_MS = 1e-3;

/** Latencies above this (~28 h) count as this. */
export const SKETCH_MAX_MS = 1e8;

/** Encoding formats, first byte of every encoded sketch: one count per key over the range, or the used keys only. */
const FORMAT_DENSE = 1;
const FORMAT_SPARSE = 2;

/** Most distinct keys a store keeps as a sorted list; one more and it turns dense. */
export const SPARSE_MAX_KEYS = 64;

declare const sketchBrand: unique symbol;

/** A latency sketch; opaque: use the functions of this module. */
export interface LatencySketch {
  readonly [sketchBrand]: true;
}

/** Inserts `v` at `i` in place: what `splice(i, 0, v)` does without the array of removed items it makes (per recorded latency). */
function insertAt(a: number[], i: number, v: number): void {
  for (let j = a.length; j > i; j--) a[j] = a[j - 1] as number;
  a[i] = v;
}

/** Removes the item at `i` in place: `splice(i, 1)` without the array it returns. */
function removeAt(a: number[], i: number): void {
  for (let j = i + 1; j < a.length; j++) a[j - 1] = a[j] as number;
  a.pop();
}

type Impl = DDSketch & { store: BinStore };

const impl = (s: LatencySketch): Impl => s as unknown as Impl;

const MAPPING = new DDSketch({ relativeAccuracy: SKETCH_RELATIVE_ACCURACY }).mapping;
/** The keys of SKETCH_MIN_MS and SKETCH_MAX_MS: every latency's key is in between. */
const KEY_LO = MAPPING.key(SKETCH_MIN_MS);
const KEY_HI = MAPPING.key(SKETCH_MAX_MS);
/** Keys added either side when a dense store grows, so that a few neighbours do not each reallocate. */
const DENSE_SLACK = 32;

/**
 * The positive-value store of our sketches, in place of the library's DenseStore: what the
 * library's DDSketch calls (`add`, `keyAtRank`, `count`) with the library's meaning, plus the
 * iteration this module needs. Counts are integers (values are added with weight 1, merged bins
 * with their integer counts, and only what was added is ever taken away).
 *
 * Sparse while at most SPARSE_MAX_KEYS keys are in use: `keys` (ascending) and `counts`, a key
 * leaving when its count returns to 0. Dense beyond: `bins[k - offset]`
 * for keys offset..offset + bins.length - 1, never sparse again.
 */
class BinStore {
  count = 0;
  /** The highest key added: what keyAtRank answers past the last count, as the library's store does. */
  maxKey = -Infinity;
  /** The sorted list (plain arrays: small ones cost less to make and grow than typed arrays); empty once dense. */
  keys: number[] = [];
  counts: number[] = [];
  bins: Float64Array | undefined = undefined;
  offset = 0;

  /** How many keys the sorted list holds. */
  get n(): number {
    return this.keys.length;
  }

  add(key: number, weight = 1): void {
    this.count += weight;
    if (key > this.maxKey) this.maxKey = key;
    if (this.bins !== undefined) {
      this.addDense(key, weight);
      return;
    }
    const keys = this.keys;
    const n = keys.length;
    // Binary search for the first entry >= key.
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((keys[mid] as number) < key) lo = mid + 1;
      else hi = mid;
    }
    if (lo < n && keys[lo] === key) {
      const c = (this.counts[lo] as number) + weight;
      if (c !== 0) this.counts[lo] = c;
      else {
        removeAt(keys, lo);
        removeAt(this.counts, lo);
      }
      return;
    }
    if (n === SPARSE_MAX_KEYS) {
      this.toDense(key);
      this.addDense(key, weight);
      return;
    }
    if (lo === n) {
      keys.push(key);
      this.counts.push(weight);
    } else {
      insertAt(keys, lo, key);
      insertAt(this.counts, lo, weight);
    }
  }

  /** Returns the key of the count at `rank` (0-based) walking the keys upwards: the library's DenseStore.keyAtRank. */
  keyAtRank(rank: number, lower = true): number {
    let running = 0;
    const bins = this.bins;
    if (bins !== undefined) {
      for (let i = 0; i < bins.length; i++) {
        running += bins[i] as number;
        if ((lower && running > rank) || (!lower && running >= rank + 1)) return i + this.offset;
      }
      return this.maxKey;
    }
    const keys = this.keys;
    const counts = this.counts;
    for (let i = 0; i < keys.length; i++) {
      running += counts[i] as number;
      if ((lower && running > rank) || (!lower && running >= rank + 1)) return keys[i] as number;
    }
    return this.maxKey;
  }

  /** Adds `weight` times every count of `from`. */
  addAll(from: BinStore, weight: 1 | -1): void {
    const bins = from.bins;
    if (bins !== undefined) {
      for (let i = 0; i < bins.length; i++) {
        const c = bins[i] as number;
        if (c > 0) this.add(i + from.offset, weight * c);
      }
      return;
    }
    const keys = from.keys;
    const counts = from.counts;
    for (let i = 0; i < keys.length; i++) this.add(keys[i] as number, weight * (counts[i] as number));
  }

  /** Makes this (empty) store a copy of `from`. */
  copyOf(from: BinStore): void {
    this.count = from.count;
    this.maxKey = from.maxKey;
    this.offset = from.offset;
    this.keys = from.keys.slice();
    this.counts = from.counts.slice();
    this.bins = from.bins?.slice();
  }

  /** Turns the sorted list into dense bins covering its keys and `key`. */
  private toDense(key: number): void {
    const { keys, counts } = this;
    const lo = Math.min(key, keys[0] as number);
    const hi = Math.max(key, keys[keys.length - 1] as number);
    this.bins = new Float64Array(0);
    this.offset = lo;
    this.grow(lo, hi);
    const bins = this.bins as Float64Array;
    for (let i = 0; i < keys.length; i++) bins[(keys[i] as number) - this.offset] = counts[i] as number;
    this.keys = [];
    this.counts = [];
  }

  private addDense(key: number, weight: number): void {
    let bins = this.bins as Float64Array;
    if (key < this.offset || key >= this.offset + bins.length) {
      this.grow(Math.min(key, this.offset), Math.max(key, this.offset + bins.length - 1));
      bins = this.bins as Float64Array;
    }
    const i = key - this.offset;
    bins[i] = (bins[i] as number) + weight;
  }

  /** Reallocates the bins to cover lo..hi (and some slack within the sketch's key range), keeping the counts. */
  private grow(lo: number, hi: number): void {
    const old = this.bins as Float64Array;
    const from = lo < this.offset ? Math.min(lo, Math.max(KEY_LO, lo - DENSE_SLACK)) : lo;
    const oldHi = this.offset + old.length - 1;
    const to = hi > oldHi ? Math.max(hi, Math.min(KEY_HI, hi + DENSE_SLACK)) : hi;
    const next = new Float64Array(to - from + 1);
    if (old.length > 0) next.set(old, this.offset - from);
    this.bins = next;
    this.offset = from;
  }
}

/** Returns a new, empty latency sketch. */
export function createSketch(): LatencySketch {
  const s = new DDSketch({ relativeAccuracy: SKETCH_RELATIVE_ACCURACY }) as unknown as { store: unknown; mapping: unknown };
  // The library's sketch over our store (see BinStore); one mapping shared by all (it is immutable).
  s.store = new BinStore();
  s.mapping = MAPPING;
  return s as unknown as LatencySketch;
}

/** The most bins a sketch can have: the keys from SKETCH_MIN_MS to SKETCH_MAX_MS. */
export const SKETCH_MAX_BINS: number = KEY_HI - KEY_LO + 1;

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
  a.store.addAll(b.store, 1);
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
  if (weight === 1 && a.store.count === 0 && a.store.n === 0 && a.store.bins === undefined) a.store.copyOf(b.store);
  else a.store.addAll(b.store, weight);
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
 * Layout: format byte, varint zero count, float64 sum, min and max, then
 * - format 1 (dense): varint bin count, zigzag-varint lowest key, one varint count per key from
 *   the lowest used key to the highest;
 * - format 2 (sparse): varint count of used keys, zigzag-varint lowest key, its varint count, then
 *   for each further used key the varint gap to the one before minus 1 and its varint count.
 * Format 2 is written when fewer than half the keys of the range are used.
 */
export function encodeSketch(s: LatencySketch): Uint8Array {
  const x = impl(s);
  const st = x.store;
  // The used keys: their number, the lowest and the highest.
  let used = 0;
  let first = 0;
  let last = 0;
  if (st.bins !== undefined) {
    const bins = st.bins;
    for (let i = 0; i < bins.length; i++) {
      if ((bins[i] as number) <= 0) continue;
      if (used === 0) first = i + st.offset;
      last = i + st.offset;
      used++;
    }
  } else if (st.n > 0) {
    used = st.n;
    first = st.keys[0] as number;
    last = st.keys[st.n - 1] as number;
  }
  const span = used === 0 ? 0 : last - first + 1;
  const sparse = used * 2 < span;
  const w = writer(1 + 10 + 24 + 10 + 10 + (sparse ? used * 6 : span * 3));
  w.byte(sparse ? FORMAT_SPARSE : FORMAT_DENSE);
  w.varint(x.zeroCount);
  w.f64(x.sum);
  w.f64(x.min);
  w.f64(x.max);
  w.varint(sparse ? used : span);
  if (used === 0) return w.done();
  w.varint(zigzag(first));
  let prev = first - 1;
  // Each used key in turn: dense, the zero counts of the keys skipped and its own; sparse, the gap and its count.
  const put = (key: number, c: number) => {
    if (!sparse) for (let k = prev + 1; k < key; k++) w.varint(0);
    else if (key !== first) w.varint(key - prev - 1);
    w.varint(Math.round(c));
    prev = key;
  };
  if (st.bins !== undefined) {
    for (let i = 0; i < st.bins.length; i++) {
      const c = st.bins[i] as number;
      if (c > 0) put(i + st.offset, c);
    }
  } else {
    const { keys, counts } = st;
    for (let i = 0; i < keys.length; i++) put(keys[i] as number, counts[i] as number);
  }
  return w.done();
}

/**
 * Returns the sketch encoded by encodeSketch (either format).
 *
 * Throws RangeError on bytes that are not such an encoding (a corrupt store row); the sliding
 * window catches it and drops the bucket.
 */
export function decodeSketch(bytes: Uint8Array): LatencySketch {
  const r = reader(bytes);
  const format = r.byte();
  if (format !== FORMAT_DENSE && format !== FORMAT_SPARSE) throw new RangeError("latency sketch: unknown format");
  const s = createSketch();
  const x = impl(s);
  const zeroCount = r.varint();
  const sum = r.f64();
  const min = r.f64();
  const max = r.f64();
  const bins = r.varint();
  if (bins > SKETCH_MAX_BINS) throw new RangeError("latency sketch: too many bins");
  if (bins > 0) {
    let key = unzigzag(r.varint());
    if (key < KEY_LO) throw new RangeError("latency sketch: keys out of range");
    for (let i = 0; i < bins; i++) {
      if (format === FORMAT_SPARSE && i > 0) key += r.varint() + 1;
      if (key > KEY_HI) throw new RangeError("latency sketch: keys out of range");
      const c = r.varint();
      if (c > 0) x.store.add(key, c);
      else if (format === FORMAT_SPARSE) throw new RangeError("latency sketch: empty bin");
      if (format === FORMAT_DENSE) key++;
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
