import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { sketchCount, sketchQuantile } from "../../src/domain/latency-sketch.js";
import {
  FUTURE_TOLERANCE_MS,
  MAX_BUCKETS,
  MAX_METRICS_PER_BUCKET,
  MIN_BUCKETS,
  aggregate,
  bucketCountFor,
  clear,
  createWindow,
  record,
  resizeWindow,
  restoreBuckets,
  takeCleared,
  takeDirtyBuckets,
  windowStartMs,
  type SlidingWindow,
  type WindowAggregate,
} from "../../src/domain/sliding-window.js";
import { T0, sample } from "./fixtures.js";

const MIN = 60_000;

/** The parts of an aggregate that tests compare (the sketch by its quantiles). */
function summary(a: WindowAggregate) {
  return {
    count: a.count,
    errors: a.errors,
    invariantViolations: a.invariantViolations,
    p50: a.count === 0 ? 0 : sketchQuantile(a.latency, 0.5),
    p99: a.count === 0 ? 0 : sketchQuantile(a.latency, 0.99),
    metrics: [...a.metrics].sort(([x], [y]) => x.localeCompare(y)),
    lastOutcomeAt: a.lastOutcomeAt,
  };
}

describe("window layout", () => {
  it("cuts the window into clamp(window / interval, 10, 30) buckets", () => {
    expect(bucketCountFor(5 * MIN, 10_000)).toBe(30);
    expect(bucketCountFor(60_000, 10_000)).toBe(MIN_BUCKETS);
    expect(bucketCountFor(24 * 60 * MIN, 1000)).toBe(MAX_BUCKETS);
    const w = createWindow(5 * MIN, 10_000);
    expect(w).toMatchObject({ windowMs: 5 * MIN, bucketMs: 10_000, bucketCount: 30 });
    const odd = createWindow(7_001, 1000);
    expect(odd.bucketMs * odd.bucketCount).toBeGreaterThanOrEqual(7_001);
  });
});

describe("record and aggregate", () => {
  it("counts outcomes, errors, violations, latency and metrics", () => {
    const w = createWindow(MIN, 10_000);
    for (let i = 1; i <= 100; i++) {
      record(w, sample({ success: i % 10 !== 0, latencyMs: i, invariantViolations: i === 50 ? 2 : 0, metrics: new Map([["cart", i]]) }), T0 + i * 100);
    }
    const a = aggregate(w, T0 + 10_000);
    expect(a.count).toBe(100);
    expect(a.errors).toBe(10);
    expect(a.invariantViolations).toBe(2);
    expect(sketchCount(a.latency)).toBe(100);
    expect(sketchQuantile(a.latency, 0.99)).toBeCloseTo(99, -0.5);
    expect(a.metrics.get("cart")).toEqual({ count: 100, sum: 5050, min: 1, max: 100 });
    expect(a.lastOutcomeAt).toBe(T0 + 10_000);
  });

  it("places an outcome by its own time, and ignores it once that time has left the window", () => {
    const w = createWindow(MIN, 10_000);
    const now = T0 + 10 * MIN;
    expect(record(w, sample({ timeMs: now - 30_000 }), now)).toBe(true);
    expect(record(w, sample({ timeMs: now - 2 * MIN }), now)).toBe(false);
    expect(aggregate(w, now).count).toBe(1);
    expect(aggregate(w, now + 30_000).count).toBe(1);
    // The window always covers at least its length: 60 s later the outcome (90 s old) is gone.
    expect(aggregate(w, now + 40_000).count).toBe(0);
  });

  it(`accepts outcomes up to ${FUTURE_TOLERANCE_MS} ms in the future as now, and ignores later ones`, () => {
    const w = createWindow(MIN, 10_000);
    expect(record(w, sample({ timeMs: T0 + FUTURE_TOLERANCE_MS }), T0)).toBe(true);
    expect(record(w, sample({ timeMs: T0 + FUTURE_TOLERANCE_MS + 1 }), T0)).toBe(false);
    const a = aggregate(w, T0);
    expect(a.count).toBe(1);
    expect(a.lastOutcomeAt).toBe(T0);
  });

  it("expires buckets exactly: an outcome counts while its bucket is among the last N full ones or the current one", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 }).map((k) => k * 1_000 + (k % 7)),
        fc.array(fc.integer({ min: 0, max: 400_000 }), { minLength: 1, maxLength: 60 }),
        fc.integer({ min: 0, max: 500_000 }),
        (windowMs, offsets, queryOffset) => {
          const w = createWindow(windowMs, 1000);
          const times = [...offsets].sort((a, b) => a - b).map((o) => T0 + o);
          const recorded: number[] = [];
          // Outcomes arrive in time order, each reported as it happens.
          for (const t of times) if (record(w, sample(), t)) recorded.push(t);
          expect(recorded).toHaveLength(times.length);
          const now = Math.max(T0 + queryOffset, times[times.length - 1] as number);
          const start = windowStartMs(w, now);
          const live = recorded.filter((t) => t >= start).length;
          expect(aggregate(w, now).count).toBe(live);
          // What the window covers: at least its length, less than one bucket more than N buckets.
          expect(now - start).toBeGreaterThanOrEqual(windowMs);
          expect(now - start).toBeLessThan((w.bucketCount + 1) * w.bucketMs);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("keeps the newest outcome time after its bucket expires (for the no-data timeout)", () => {
    const w = createWindow(MIN, 10_000);
    record(w, sample(), T0);
    const later = aggregate(w, T0 + 10 * MIN);
    expect(later.count).toBe(0);
    expect(later.lastOutcomeAt).toBe(T0);
  });

  it("caps the distinct metric names a bucket keeps", () => {
    const w = createWindow(MIN, 10_000);
    for (let i = 0; i < 2 * MAX_METRICS_PER_BUCKET; i++) record(w, sample({ metrics: new Map([[`m${i}`, 1]]) }), T0);
    const a = aggregate(w, T0);
    expect(a.count).toBe(2 * MAX_METRICS_PER_BUCKET);
    expect(a.metrics.size).toBe(MAX_METRICS_PER_BUCKET);
    expect(a.metrics.get("m0")).toEqual({ count: 1, sum: 1, min: 1, max: 1 });
  });
});

describe("aggregate caching and idle windows", () => {
  it("returns the same aggregate until something is recorded or a bucket expires", () => {
    const w = createWindow(MIN, 10_000);
    const idle = aggregate(w, T0);
    expect(idle.count).toBe(0);
    expect(aggregate(w, T0 + 5 * MIN)).toBe(idle);

    record(w, sample(), T0);
    const a = aggregate(w, T0);
    expect(a).not.toBe(idle);
    expect(aggregate(w, T0 + 30_000)).toBe(a);
    record(w, sample(), T0 + 30_000);
    const b = aggregate(w, T0 + 30_000);
    expect(b.count).toBe(2);
    expect(aggregate(w, T0 + 60_000)).toBe(b);
    // The first bucket leaves the window: a new aggregate, and the bucket is released.
    const c = aggregate(w, T0 + 70_000);
    expect(c.count).toBe(1);
    expect(takeDirtyBuckets(w)).toHaveLength(1);
  });

  it("releases every bucket of a window that went idle", () => {
    const w = createWindow(MIN, 10_000);
    for (let i = 0; i < 50; i++) record(w, sample(), T0 + i * 1000);
    takeDirtyBuckets(w);
    aggregate(w, T0 + 10 * MIN);
    // Nothing is left to flush or merge: the ring itself is gone.
    expect((w as unknown as { slots: unknown }).slots).toBeUndefined();
    expect(aggregate(w, T0 + 10 * MIN).count).toBe(0);
  });

  it("aggregates 10,000 idle windows cheaply: the cached empty aggregate each time", () => {
    const windows: SlidingWindow[] = Array.from({ length: 10_000 }, () => createWindow(5 * MIN, 10_000));
    const first = windows.map((w) => aggregate(w, T0));
    const again = windows.map((w) => aggregate(w, T0 + MIN));
    expect(again.every((a, i) => a === first[i] && a.count === 0)).toBe(true);
  });
});

describe("clear", () => {
  it("empties the window, forgets the last outcome and asks for the stored buckets to be deleted once", () => {
    const w = createWindow(MIN, 10_000);
    record(w, sample(), T0);
    expect(takeCleared(w)).toBe(false);
    clear(w);
    expect(aggregate(w, T0)).toMatchObject({ count: 0 });
    expect(aggregate(w, T0).lastOutcomeAt).toBeUndefined();
    expect(takeDirtyBuckets(w)).toEqual([]);
    expect(takeCleared(w)).toBe(true);
    expect(takeCleared(w)).toBe(false);
  });
});

describe("persistence", () => {
  const traffic = fc.array(
    fc.record({
      at: fc.integer({ min: 0, max: 90_000 }),
      success: fc.boolean(),
      latencyMs: fc.double({ min: 0, max: 10_000, noNaN: true }),
      violations: fc.integer({ min: 0, max: 3 }),
      metric: fc.option(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { nil: undefined }),
    }),
    { maxLength: 300 },
  );

  it("restores what takeDirtyBuckets flushed: the same aggregate", () => {
    fc.assert(
      fc.property(traffic, fc.integer({ min: 0, max: 60_000 }), (outcomes, later) => {
        const w = createWindow(MIN, 10_000);
        const flushed = [];
        const sorted = [...outcomes].sort((a, b) => a.at - b.at);
        for (const [i, o] of sorted.entries()) {
          const metrics = o.metric === undefined ? new Map() : new Map([["cart.value", o.metric]]);
          record(w, sample({ success: o.success, latencyMs: o.latencyMs, invariantViolations: o.violations, metrics }), T0 + o.at);
          // Flushes happen every now and then, as the server's timer does.
          if (i % 37 === 0) flushed.push(...takeDirtyBuckets(w));
        }
        flushed.push(...takeDirtyBuckets(w));
        expect(takeDirtyBuckets(w)).toEqual([]);
        // The store keeps the latest row per bucket start.
        const rows = new Map(flushed.map((s) => [s.startMs, s]));
        const now = T0 + 90_000 + later;
        const restored = createWindow(MIN, 10_000);
        const result = restoreBuckets(restored, [...rows.values()], now);
        expect(result.corrupt).toBe(0);
        expect(result.restored + result.expired).toBe(rows.size);
        expect(summary(aggregate(restored, now))).toEqual({ ...summary(aggregate(w, now)), lastOutcomeAt: aggregate(restored, now).lastOutcomeAt });
        // Restored buckets are already stored: nothing to flush.
        expect(takeDirtyBuckets(restored)).toEqual([]);
      }),
      { numRuns: 100 },
    );
  });

  it("drops expired and corrupt snapshots and says so", () => {
    const w = createWindow(MIN, 10_000);
    record(w, sample(), T0);
    record(w, sample(), T0 + 50_000);
    const rows = takeDirtyBuckets(w).sort((x, y) => x.startMs - y.startMs);
    expect(rows).toHaveLength(2);
    const [old, fresh] = rows as [(typeof rows)[number], (typeof rows)[number]];
    const broken = { startMs: fresh.startMs, data: fresh.data.subarray(0, fresh.data.length - 2) };
    const garbage = { startMs: fresh.startMs, data: Uint8Array.from([1, 2, 3]) };
    const target = createWindow(MIN, 10_000);
    expect(restoreBuckets(target, [old, broken, garbage], T0 + 110_000)).toEqual({ restored: 0, expired: 1, corrupt: 2 });
    expect(restoreBuckets(target, [fresh], T0 + 110_000)).toEqual({ restored: 1, expired: 0, corrupt: 0 });
    expect(aggregate(target, T0 + 110_000).count).toBe(1);
  });

  it("reads a bucket stored before the sparse sketch encoding (sketch format 1) and writes it back in the new form", () => {
    // Written by the code of commit 8484f83 (test/domain/data/window-bucket-v1.json says how).
    const old = JSON.parse(readFileSync(new URL("data/window-bucket-v1.json", import.meta.url), "utf8")) as {
      nowMs: number;
      windowMs: number;
      intervalMs: number;
      startMs: number;
      hex: string;
      samples: { success: boolean; latencyMs: number; invariantViolations: number; metrics: Record<string, number> }[];
    };
    const data = Uint8Array.from(Buffer.from(old.hex, "hex"));
    // The same outcomes recorded now.
    const fresh = createWindow(old.windowMs, old.intervalMs);
    for (const x of old.samples) record(fresh, { variant: "canary", key: "", ...x, metrics: new Map(Object.entries(x.metrics)) }, old.nowMs);
    const restored = createWindow(old.windowMs, old.intervalMs);
    expect(restoreBuckets(restored, [{ startMs: old.startMs, data }], old.nowMs)).toEqual({ restored: 1, expired: 0, corrupt: 0 });
    const a = aggregate(restored, old.nowMs);
    const b = aggregate(fresh, old.nowMs);
    expect(summary(a)).toEqual(summary(b));
    expect(a.count).toBe(40);
    for (const q of [0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1]) expect(sketchQuantile(a.latency, q)).toBe(sketchQuantile(b.latency, q));
    // Its new encoding (what the next flush writes) is far smaller and reads back the same.
    const [row] = takeDirtyBuckets(fresh);
    expect(row?.startMs).toBe(old.startMs);
    expect(row?.data.length).toBeLessThan(data.length / 4);
    const again = createWindow(old.windowMs, old.intervalMs);
    restoreBuckets(again, [row as { startMs: number; data: Uint8Array }], old.nowMs);
    expect(summary(aggregate(again, old.nowMs))).toEqual(summary(b));
  });

  it("re-lays snapshots cut for another bucket width and asks for the stored rows to be replaced", () => {
    const w = createWindow(MIN, 10_000);
    for (let i = 0; i < 60; i++) record(w, sample({ latencyMs: i + 1 }), T0 + i * 1000);
    const rows = takeDirtyBuckets(w);
    const wider = createWindow(2 * MIN, 10_000);
    expect(wider.bucketMs).not.toBe(w.bucketMs);
    expect(restoreBuckets(wider, rows, T0 + 60_000).restored).toBe(rows.length);
    expect(aggregate(wider, T0 + 60_000).count).toBe(60);
    expect(takeCleared(wider)).toBe(true);
    expect(takeDirtyBuckets(wider).length).toBeGreaterThan(0);
  });

  it("points the store at expired rows", () => {
    const w = createWindow(MIN, 10_000);
    expect(windowStartMs(w, T0 + 95_000)).toBe(T0 + 30_000);
  });
});

describe("resizeWindow", () => {
  it("keeps the live data that fits the new length, in the new layout, and replaces the stored rows", () => {
    const w = createWindow(5 * MIN, 10_000);
    for (let i = 0; i < 300; i++) record(w, sample({ success: i % 4 !== 0, latencyMs: 1 + (i % 50) }), T0 + i * 1000);
    const now = T0 + 300_000;
    takeDirtyBuckets(w);

    const longer = resizeWindow(w, 10 * MIN, 10_000, now);
    expect(longer.windowMs).toBe(10 * MIN);
    expect(summary(aggregate(longer, now))).toEqual(summary(aggregate(w, now)));
    expect(takeCleared(longer)).toBe(true);
    expect(takeDirtyBuckets(longer).length).toBeGreaterThan(0);

    const shorter = resizeWindow(createWindowWith(300, now), MIN, 10_000, now);
    // The last minute (plus at most one bucket) is kept.
    const kept = aggregate(shorter, now).count;
    expect(kept).toBeGreaterThanOrEqual(60);
    expect(kept).toBeLessThanOrEqual(60 + shorter.bucketMs / 1000);
  });

  it("returns the same window when the layout does not change", () => {
    const w = createWindow(5 * MIN, 10_000);
    expect(resizeWindow(w, 5 * MIN, 10_000, T0)).toBe(w);
  });
});

/** Returns a 5-minute window with one outcome per second for the `n` seconds before `now`. */
function createWindowWith(n: number, now: number): SlidingWindow {
  const w = createWindow(5 * MIN, 10_000);
  for (let i = n; i > 0; i--) record(w, sample(), now - i * 1000);
  return w;
}
