import {
  addLatency,
  createSketch,
  decodeSketch,
  encodeSketch,
  mergeSketch,
  mergeSketchBins,
  mergeSketchSummary,
  sketchCount,
  type LatencySketch,
} from "./latency-sketch.js";
import type { OutcomeSample } from "./outcome.js";

/**
 * A per-rollout, per-variant sliding window of outcomes (docs/design.md §5): a ring of time buckets,
 * each with count, errors, invariant violations, a latency sketch and per-metric
 * count/sum/min/max. Recording is O(1) with no per-outcome storage.
 *
 * Layout: the window is cut into N = clamp(ceil(window / interval), 10, 30) buckets of
 * B = ceil(window / N) ms, aligned to the epoch; with the defaults (5 min, 10 s) that is 30
 * buckets of 10 s. The ring holds N full buckets plus the current, partly filled one, so the
 * window always covers at least `window` (between N·B and (N + 1)·B) and slides in steps of
 * one bucket (at most 10% of the window): an outcome counts from when it is recorded until
 * at least `window` and less than (N + 1)·B (about `window + B`) later, then its bucket leaves
 * the ring. At an evaluation on a bucket boundary, with B dividing the window, the window holds
 * exactly the last `window` of outcomes.
 *
 * Memory: an idle window is a small object with no ring at all; buckets are allocated when
 * an outcome lands in them and released once they expire. A bucket holds at most
 * MAX_METRICS_PER_BUCKET metric names and one sketch (≤ ~10 KiB of bins), so a window is bounded
 * whatever the traffic.
 *
 * The functions mutate the window they are given; the engine owns one window per rollout and
 * variant and calls them from one thread.
 */

/** Fewest buckets a window is cut into. */
export const MIN_BUCKETS = 10;

/** Most buckets a window is cut into: beyond 30 the slide gets no smoother that matters. */
export const MAX_BUCKETS = 30;

/**
 * How far in the future an outcome's time may be and still count (as "now"): reporters' clocks
 * drift by a second or two; anything later than this is a broken clock and is ignored.
 */
export const FUTURE_TOLERANCE_MS = 5_000;

/** Most distinct metric names a bucket keeps; later new names are not recorded. */
export const MAX_METRICS_PER_BUCKET = 256;

/** A custom metric's aggregate over some outcomes. */
export interface MetricStats {
  readonly count: number;
  readonly sum: number;
  readonly min: number;
  readonly max: number;
}

/** One bucket's counts: the per-interval data a sequential test needs. */
export interface BucketCounts {
  readonly startMs: number;
  readonly endMs: number;
  readonly count: number;
  readonly errors: number;
}

/**
 * What a window holds at an instant, merged over its live buckets. Read-only: it may be the
 * cached value that the next aggregate call returns too, so never merge into its sketch.
 */
export interface WindowAggregate {
  readonly count: number;
  readonly errors: number;
  readonly invariantViolations: number;
  /** The merged latency sketch of the live buckets. */
  readonly latency: LatencySketch;
  /** Custom metrics over the live buckets, by name. */
  readonly metrics: ReadonlyMap<string, MetricStats>;
  /**
   * The newest outcome time this window has recorded since it was created or cleared, even
   * if that bucket has since expired (the no-data timeout may be longer than the window).
   */
  readonly lastOutcomeAt?: number;
  /** The live buckets holding outcomes, oldest first (absent when the window is empty). */
  readonly buckets?: readonly BucketCounts[];
}

/** One persisted bucket: its start instant and an opaque binary encoding of its contents. */
export interface BucketSnapshot {
  readonly startMs: number;
  readonly data: Uint8Array;
}

/** How restoreBuckets fared. */
export interface RestoreResult {
  readonly restored: number;
  /** Snapshots whose bucket is no longer (or not yet) in the window. */
  readonly expired: number;
  /** Snapshots that could not be decoded. */
  readonly corrupt: number;
}

/** A sliding window; its contents are reached through this module's functions only. */
export interface SlidingWindow {
  readonly windowMs: number;
  /** Width of a bucket, B. */
  readonly bucketMs: number;
  /** Full buckets, N; the ring holds one more for the current bucket. */
  readonly bucketCount: number;
}

interface MutableMetric {
  count: number;
  sum: number;
  min: number;
  max: number;
}

interface Bucket {
  /** floor(start / bucketMs). */
  index: number;
  count: number;
  errors: number;
  invariantViolations: number;
  latency: LatencySketch;
  metrics: Map<string, MutableMetric> | undefined;
  lastOutcomeAt: number;
  dirty: boolean;
  /** Bumped whenever the bucket's contents change (the closed-bucket cache checks it). */
  stamp: number;
}

/**
 * The merged bins of a window's closed buckets (those before the current one), kept between
 * aggregates so that one merges the open bucket onto it instead of every bucket's sketch: a
 * bucket is added once when it is first seen closed and taken away once when it has left the
 * window (bins are integer counts: exact). A member whose contents changed since it was added
 * (a late outcome, a restore) makes it start again from scratch.
 */
interface ClosedBins {
  readonly bins: LatencySketch;
  /** Each bucket summed, with its stamp when it was added and the last aggregate that saw it. */
  readonly members: Map<Bucket, { readonly stamp: number; seen: number }>;
  /** Aggregates counted, to tell the members a pass did not see. */
  pass: number;
}

interface Ring extends SlidingWindow {
  slots: (Bucket | undefined)[] | undefined;
  /** Bumped on every change, so that an aggregate is reused until something changes. */
  version: number;
  lastOutcomeAt: number | undefined;
  /** Set by clear and resize: the stored buckets of this window must be deleted. */
  cleared: boolean;
  cache: { version: number; current: number; oldest: number; future: boolean; aggregate: WindowAggregate } | undefined;
  closed: ClosedBins | undefined;
}

const ring = (w: SlidingWindow): Ring => w as Ring;

/** Returns the bucket count for a window and evaluation interval (see the module comment). */
export function bucketCountFor(windowMs: number, intervalMs: number): number {
  const wanted = intervalMs > 0 ? Math.ceil(windowMs / intervalMs) : MAX_BUCKETS;
  return Math.min(MAX_BUCKETS, Math.max(MIN_BUCKETS, wanted));
}

/** Returns an empty window of `windowMs` for a rollout evaluated every `intervalMs`. */
export function createWindow(windowMs: number, intervalMs: number): SlidingWindow {
  if (!(windowMs > 0) || !Number.isFinite(windowMs)) throw new RangeError(`window length must be > 0, got ${windowMs}`);
  const bucketCount = bucketCountFor(windowMs, intervalMs);
  const w: Ring = {
    windowMs,
    bucketMs: Math.max(1, Math.ceil(windowMs / bucketCount)),
    bucketCount,
    slots: undefined,
    version: 0,
    lastOutcomeAt: undefined,
    cleared: false,
    cache: undefined,
    closed: undefined,
  };
  return w;
}

function newBucket(index: number): Bucket {
  return { index, count: 0, errors: 0, invariantViolations: 0, latency: createSketch(), metrics: undefined, lastOutcomeAt: 0, dirty: false, stamp: 0 };
}

function slotOf(r: Ring, index: number): number {
  const span = r.bucketCount + 1;
  const s = index % span;
  return s < 0 ? s + span : s;
}

/** Returns the bucket for `index`, reusing its ring slot (and resetting a stale occupant). */
function bucketAt(r: Ring, index: number): Bucket | undefined {
  const slots = (r.slots ??= new Array<Bucket | undefined>(r.bucketCount + 1).fill(undefined));
  const slot = slotOf(r, index);
  const b = slots[slot];
  if (b === undefined) return (slots[slot] = newBucket(index));
  if (b.index === index) return b;
  // The slot holds a newer bucket only if the clock went backwards: the outcome is too old.
  if (b.index > index) return undefined;
  return (slots[slot] = newBucket(index));
}

/**
 * Records one outcome into the bucket of its time (`sample.timeMs`, or `now` when unset) and
 * returns true, or returns false and records nothing when that time is outside the window:
 * its bucket has left the ring, or it is more than FUTURE_TOLERANCE_MS after `now`. Times up
 * to the tolerance ahead count as `now`. O(1); allocates only when a bucket or metric name is
 * new. `sample.variant` is not looked at: the caller picks the window.
 */
export function record(w: SlidingWindow, sample: OutcomeSample, now: number): boolean {
  const r = ring(w);
  let t = sample.timeMs ?? now;
  if (t > now) {
    if (t - now > FUTURE_TOLERANCE_MS) return false;
    t = now;
  }
  const index = Math.floor(t / r.bucketMs);
  if (index < Math.floor(now / r.bucketMs) - r.bucketCount) return false;
  const b = bucketAt(r, index);
  if (b === undefined) return false;
  b.count++;
  if (!sample.success) b.errors++;
  b.invariantViolations += sample.invariantViolations;
  addLatency(b.latency, sample.latencyMs);
  if (sample.metrics.size > 0) recordMetrics(b, sample.metrics);
  if (t > b.lastOutcomeAt) b.lastOutcomeAt = t;
  if (r.lastOutcomeAt === undefined || t > r.lastOutcomeAt) r.lastOutcomeAt = t;
  b.dirty = true;
  b.stamp++;
  r.version++;
  return true;
}

function recordMetrics(b: Bucket, metrics: ReadonlyMap<string, number>): void {
  const into = (b.metrics ??= new Map());
  for (const [name, v] of metrics) {
    const m = into.get(name);
    if (m !== undefined) {
      m.count++;
      m.sum += v;
      if (v < m.min) m.min = v;
      if (v > m.max) m.max = v;
    } else if (into.size < MAX_METRICS_PER_BUCKET) {
      into.set(name, { count: 1, sum: v, min: v, max: v });
    }
  }
}

const EMPTY_SKETCH = createSketch();
const NO_METRICS: ReadonlyMap<string, MetricStats> = new Map();
const EMPTY: WindowAggregate = { count: 0, errors: 0, invariantViolations: 0, latency: EMPTY_SKETCH, metrics: NO_METRICS };

/**
 * Returns the window's contents at `now`, merged over its live buckets.
 *
 * Cheap when nothing changed: the result is cached until an outcome is recorded or one of the
 * merged buckets expires, so an idle rollout costs a few comparisons per evaluation. Empty and
 * expired buckets are skipped, and expired ones are released.
 */
export function aggregate(w: SlidingWindow, now: number): WindowAggregate {
  const r = ring(w);
  const current = Math.floor(now / r.bucketMs);
  const firstLive = current - r.bucketCount;
  const c = r.cache;
  if (c !== undefined && c.version === r.version && c.oldest >= firstLive && (current === c.current || (current > c.current && !c.future))) {
    return c.aggregate;
  }
  return merge(r, now, true);
}

/**
 * Returns what aggregate returns, computed by merging every live bucket's sketch, without the
 * closed-bucket cache (and without reading or changing either cache): for the tests that hold
 * the two equal, and for the bench.
 */
export function aggregateUncached(w: SlidingWindow, now: number): WindowAggregate {
  return merge(ring(w), now, false);
}

/** Merges the live buckets at `now` (see aggregate): the bins of closed buckets from their cache when `cached`. */
function merge(r: Ring, now: number, cached: boolean): WindowAggregate {
  const current = Math.floor(now / r.bucketMs);
  const firstLive = current - r.bucketCount;

  let count = 0;
  let errors = 0;
  let invariantViolations = 0;
  let oldest = Infinity;
  let latency: LatencySketch | undefined;
  let metrics: Map<string, MutableMetric> | undefined;
  let occupied = 0;
  let buckets: BucketCounts[] | undefined;
  // A bucket ahead of `now` exists only when outcomes were recorded at a later `now`.
  let future = false;
  // With the cache: the closed buckets' bins come from it, the open bucket's are merged onto
  // them, and count, sum, min and max are added bucket by bucket in slot order as mergeSketch
  // does, so that the result is the uncached one exactly.
  let closed = cached ? (r.closed ??= newClosedBins()) : undefined;
  let stale = false;
  const pass = closed === undefined ? 0 : ++closed.pass;
  let sketches: LatencySketch[] | undefined;
  let open: LatencySketch[] | undefined;
  const slots = r.slots;
  if (slots !== undefined) {
    for (let i = 0; i < slots.length; i++) {
      const b = slots[i];
      if (b === undefined) continue;
      if (b.index < firstLive) {
        slots[i] = undefined; // expired: release its memory
        continue;
      }
      occupied++;
      if (b.index > current) future = true;
      if (b.index > current || b.count === 0) continue;
      count += b.count;
      errors += b.errors;
      invariantViolations += b.invariantViolations;
      if (b.index < oldest) oldest = b.index;
      (buckets ??= []).push({ startMs: b.index * r.bucketMs, endMs: (b.index + 1) * r.bucketMs, count: b.count, errors: b.errors });
      if (b.metrics !== undefined) metrics = mergeMetrics(metrics, b.metrics);
      if (sketchCount(b.latency) === 0) continue;
      if (closed === undefined) {
        mergeSketch((latency ??= createSketch()), b.latency);
        continue;
      }
      (sketches ??= []).push(b.latency);
      if (b.index === current) {
        (open ??= []).push(b.latency);
        continue;
      }
      const m = closed.members.get(b);
      if (m === undefined) {
        mergeSketchBins(closed.bins, b.latency, 1);
        closed.members.set(b, { stamp: b.stamp, seen: pass });
      } else if (m.stamp !== b.stamp) stale = true;
      else m.seen = pass;
    }
    if (occupied === 0) r.slots = undefined;
  }
  if (closed !== undefined) {
    // Buckets that have left the window (or the ring) since the last pass are taken away.
    for (const [b, m] of closed.members) {
      if (m.seen === pass) continue;
      if (m.stamp !== b.stamp) stale = true;
      if (stale) break;
      mergeSketchBins(closed.bins, b.latency, -1);
      closed.members.delete(b);
    }
    if (stale) closed = r.closed = rebuildClosedBins(r, current, firstLive);
    if (r.slots === undefined) r.closed = undefined;
    if (sketches !== undefined) {
      latency = createSketch();
      mergeSketchBins(latency, closed.bins, 1);
      for (const s of open ?? []) mergeSketchBins(latency, s, 1);
      for (const s of sketches) mergeSketchSummary(latency, s);
    }
  }
  const base: WindowAggregate =
    count === 0 || buckets === undefined
      ? EMPTY
      : { count, errors, invariantViolations, latency: latency ?? EMPTY_SKETCH, metrics: metrics ?? NO_METRICS, buckets: buckets.sort((x, y) => x.startMs - y.startMs) };
  const result = r.lastOutcomeAt === undefined ? base : { ...base, lastOutcomeAt: r.lastOutcomeAt };
  r.cache = { version: r.version, current, oldest, future, aggregate: result };
  return result;
}

function newClosedBins(): ClosedBins {
  return { bins: createSketch(), members: new Map(), pass: 0 };
}

/** Returns the closed-bucket cache built afresh from the live closed buckets. */
function rebuildClosedBins(r: Ring, current: number, firstLive: number): ClosedBins {
  const closed = newClosedBins();
  for (const b of r.slots ?? []) {
    if (b === undefined || b.index < firstLive || b.index >= current || sketchCount(b.latency) === 0) continue;
    mergeSketchBins(closed.bins, b.latency, 1);
    closed.members.set(b, { stamp: b.stamp, seen: closed.pass });
  }
  return closed;
}

function mergeMetrics(into: Map<string, MutableMetric> | undefined, from: ReadonlyMap<string, MutableMetric>): Map<string, MutableMetric> {
  const out = into ?? new Map<string, MutableMetric>();
  for (const [name, m] of from) {
    const t = out.get(name);
    if (t === undefined) out.set(name, { ...m });
    else {
      t.count += m.count;
      t.sum += m.sum;
      if (m.min < t.min) t.min = m.min;
      if (m.max > t.max) t.max = m.max;
    }
  }
  return out;
}

/**
 * Empties the window (e.g. the canary's after a rollback), forgetting its last outcome time
 * too. The next takeCleared returns true so that the stored buckets get deleted.
 */
export function clear(w: SlidingWindow): void {
  const r = ring(w);
  r.slots = undefined;
  r.lastOutcomeAt = undefined;
  r.cleared = true;
  r.version++;
  r.cache = undefined;
  r.closed = undefined;
}

/**
 * Returns true once after clear or resizeWindow: the caller must delete every stored bucket
 * of this window (the store's `cleared`) before writing the next takeDirtyBuckets.
 */
export function takeCleared(w: SlidingWindow): boolean {
  const r = ring(w);
  const was = r.cleared;
  r.cleared = false;
  return was;
}

/** Returns the buckets changed since the last call, encoded, and marks them clean. */
export function takeDirtyBuckets(w: SlidingWindow): BucketSnapshot[] {
  const r = ring(w);
  const out: BucketSnapshot[] = [];
  if (r.slots === undefined) return out;
  for (const b of r.slots) {
    if (b === undefined || !b.dirty) continue;
    b.dirty = false;
    out.push({ startMs: b.index * r.bucketMs, data: encodeBucket(r, b) });
  }
  return out;
}

/**
 * Undoes takeCleared and takeDirtyBuckets after the store failed to write what they returned:
 * the window is marked cleared again when `cleared`, and each bucket of `startMs` still in it
 * dirty again (its data now includes anything recorded since), so the next flush writes them.
 */
export function flushFailed(w: SlidingWindow, cleared: boolean, startMs: readonly number[]): void {
  const r = ring(w);
  if (cleared) r.cleared = true;
  if (r.slots === undefined || startMs.length === 0) return;
  const wanted = new Set(startMs);
  for (const b of r.slots) if (b !== undefined && wanted.has(b.index * r.bucketMs)) b.dirty = true;
}

/**
 * Returns every bucket still in the window at `now`, encoded, without marking anything clean:
 * with other replicas' stored buckets restored beside them into a fresh window, it gives the
 * merged window that one evaluator judges when outcomes arrive at several replicas.
 */
export function snapshotBuckets(w: SlidingWindow, now: number): BucketSnapshot[] {
  const r = ring(w);
  const out: BucketSnapshot[] = [];
  if (r.slots === undefined) return out;
  const oldest = Math.floor(now / r.bucketMs) - r.bucketCount;
  for (const b of r.slots) {
    if (b === undefined || b.index < oldest) continue;
    out.push({ startMs: b.index * r.bucketMs, data: encodeBucket(r, b) });
  }
  return out;
}

/** Returns the start of the oldest bucket still in the window at `now`: stored buckets that start earlier are expired. */
export function windowStartMs(w: SlidingWindow, now: number): number {
  return (Math.floor(now / w.bucketMs) - w.bucketCount) * w.bucketMs;
}

/**
 * Loads persisted buckets into a window (normally a fresh one, at start-up), dropping those
 * outside the window at `now` and those that cannot be decoded.
 *
 * A snapshot cut for another bucket width (the rollout's window changed while the server was
 * down) is merged into the bucket holding its start instant; the window is then marked
 * cleared and the bucket dirty, so that the next flush rewrites the stored rows in the new
 * layout rather than leaving both.
 */
export function restoreBuckets(w: SlidingWindow, snapshots: readonly BucketSnapshot[], now: number): RestoreResult {
  const r = ring(w);
  const current = Math.floor(now / r.bucketMs);
  let restored = 0;
  let expired = 0;
  let corrupt = 0;
  let relaid = false;
  for (const s of snapshots) {
    let d: Decoded;
    try {
      d = decodeBucket(s.data);
    } catch {
      corrupt++;
      continue;
    }
    const index = Math.floor(s.startMs / r.bucketMs);
    if (index > current || index < current - r.bucketCount) {
      expired++;
      continue;
    }
    const b = bucketAt(r, index);
    if (b === undefined) {
      expired++;
      continue;
    }
    mergeInto(b, d);
    if (d.bucketMs !== r.bucketMs) {
      b.dirty = true;
      relaid = true;
    }
    if (d.lastOutcomeAt > 0 && (r.lastOutcomeAt === undefined || d.lastOutcomeAt > r.lastOutcomeAt)) r.lastOutcomeAt = d.lastOutcomeAt;
    restored++;
  }
  if (relaid) markAllDirty(r);
  if (restored > 0) {
    r.version++;
    r.cache = undefined;
    r.closed = undefined;
  }
  return { restored, expired, corrupt };
}

/**
 * Returns a window of a new length (or interval) holding the old one's live data, each old
 * bucket merged into the new bucket that holds its start instant; data older than the new
 * window is dropped. The old window must not be used afterwards. The new one is marked cleared
 * with every bucket dirty, so that the next flush replaces the stored rows.
 */
export function resizeWindow(w: SlidingWindow, windowMs: number, intervalMs: number, now: number): SlidingWindow {
  const old = ring(w);
  const next = ring(createWindow(windowMs, intervalMs));
  if (next.bucketMs === old.bucketMs && next.bucketCount === old.bucketCount) return w;
  const current = Math.floor(now / next.bucketMs);
  const oldFirstLive = Math.floor(now / old.bucketMs) - old.bucketCount;
  for (const b of old.slots ?? []) {
    if (b === undefined || b.index < oldFirstLive || b.count === 0) continue;
    const index = Math.floor((b.index * old.bucketMs) / next.bucketMs);
    if (index > current || index < current - next.bucketCount) continue;
    const into = bucketAt(next, index);
    if (into !== undefined) mergeInto(into, { ...b, bucketMs: old.bucketMs });
  }
  next.lastOutcomeAt = old.lastOutcomeAt;
  markAllDirty(next);
  next.version = old.version + 1;
  return next;
}

function markAllDirty(r: Ring): void {
  r.cleared = true;
  for (const b of r.slots ?? []) if (b !== undefined && b.count > 0) b.dirty = true;
}

interface Decoded {
  bucketMs: number;
  count: number;
  errors: number;
  invariantViolations: number;
  lastOutcomeAt: number;
  latency: LatencySketch;
  metrics: ReadonlyMap<string, MutableMetric> | undefined;
}

function mergeInto(b: Bucket, d: Decoded): void {
  b.stamp++;
  b.count += d.count;
  b.errors += d.errors;
  b.invariantViolations += d.invariantViolations;
  if (d.lastOutcomeAt > b.lastOutcomeAt) b.lastOutcomeAt = d.lastOutcomeAt;
  mergeSketch(b.latency, d.latency);
  if (d.metrics !== undefined) {
    const into = (b.metrics ??= new Map());
    for (const [name, m] of d.metrics) {
      const t = into.get(name);
      if (t === undefined) {
        if (into.size < MAX_METRICS_PER_BUCKET) into.set(name, { ...m });
      } else {
        t.count += m.count;
        t.sum += m.sum;
        if (m.min < t.min) t.min = m.min;
        if (m.max > t.max) t.max = m.max;
      }
    }
  }
}

// Bucket encoding, little-endian:
//   u8 format (1) · f64 bucketMs · f64 count · f64 errors · f64 invariantViolations ·
//   f64 lastOutcomeAt · u32 sketch length · sketch (latency-sketch encoding) ·
//   u16 metric count · per metric: u16 name length · name (UTF-8) ·
//   f64 count · f64 sum · f64 min · f64 max
// Doubles hold every count exactly up to 2⁵³.
const BUCKET_FORMAT = 1;

const NO_NAMES: readonly Buffer[] = [];
const NO_NAMES_METRICS: readonly MutableMetric[] = [];

function encodeBucket(r: Ring, b: Bucket): Uint8Array {
  const sketch = encodeSketch(b.latency);
  const names = b.metrics === undefined ? NO_NAMES : [...b.metrics.keys()].map((n) => Buffer.from(n, "utf8"));
  let size = 1 + 8 * 5 + 4 + sketch.length + 2;
  for (const n of names) size += 2 + n.length + 32;
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  let o = 0;
  v.setUint8(o, BUCKET_FORMAT);
  o += 1;
  // Five doubles written one by one: a list of them to loop over would be made per bucket flushed.
  v.setFloat64(o, r.bucketMs, true);
  v.setFloat64(o + 8, b.count, true);
  v.setFloat64(o + 16, b.errors, true);
  v.setFloat64(o + 24, b.invariantViolations, true);
  v.setFloat64(o + 32, b.lastOutcomeAt, true);
  o += 40;
  v.setUint32(o, sketch.length, true);
  o += 4;
  out.set(sketch, o);
  o += sketch.length;
  v.setUint16(o, names.length, true);
  o += 2;
  let i = 0;
  for (const m of b.metrics?.values() ?? NO_NAMES_METRICS) {
    const n = names[i++] as Buffer;
    v.setUint16(o, n.length, true);
    o += 2;
    out.set(n, o);
    o += n.length;
    for (const x of [m.count, m.sum, m.min, m.max]) {
      v.setFloat64(o, x, true);
      o += 8;
    }
  }
  return out;
}

/** Decodes a bucket; throws RangeError on anything that is not this encoding. */
function decodeBucket(data: Uint8Array): Decoded {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let o = 0;
  const need = (k: number) => {
    if (o + k > data.length) throw new RangeError("window bucket: truncated");
  };
  const f64 = () => {
    need(8);
    const x = v.getFloat64(o, true);
    o += 8;
    return x;
  };
  need(1);
  if (v.getUint8(0) !== BUCKET_FORMAT) throw new RangeError("window bucket: unknown format");
  o = 1;
  const bucketMs = f64();
  const count = f64();
  const errors = f64();
  const invariantViolations = f64();
  const lastOutcomeAt = f64();
  const sane = (x: number) => Number.isSafeInteger(x) && x >= 0;
  if (!(bucketMs > 0) || !sane(count) || !sane(errors) || errors > count || !sane(invariantViolations) || !(lastOutcomeAt >= 0)) {
    throw new RangeError("window bucket: bad counts");
  }
  need(4);
  const sketchLen = v.getUint32(o, true);
  o += 4;
  need(sketchLen);
  const latency = decodeSketch(data.subarray(o, o + sketchLen));
  o += sketchLen;
  if (sketchCount(latency) !== count) throw new RangeError("window bucket: sketch does not match count");
  need(2);
  const n = v.getUint16(o, true);
  o += 2;
  let metrics: Map<string, MutableMetric> | undefined;
  for (let i = 0; i < n; i++) {
    need(2);
    const len = v.getUint16(o, true);
    o += 2;
    need(len);
    const name = Buffer.from(data.subarray(o, o + len)).toString("utf8");
    o += len;
    (metrics ??= new Map()).set(name, { count: f64(), sum: f64(), min: f64(), max: f64() });
  }
  if (o !== data.length) throw new RangeError("window bucket: trailing bytes");
  return { bucketMs, count, errors, invariantViolations, lastOutcomeAt, latency, metrics };
}
