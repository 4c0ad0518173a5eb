// The closed-bucket cache of aggregate (sliding-window.ts): an evaluation merges the open bucket
// onto the cached bins of the closed ones. DDSketch bins are integer counts, so the cached merge
// must give exactly what merging every bucket gives: counts, quantiles, sum, min, max, metrics.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { sketchCount, sketchMean, sketchQuantile } from "../../src/domain/latency-sketch.js";
import {
  aggregate,
  aggregateUncached,
  clear,
  createWindow,
  record,
  resizeWindow,
  restoreBuckets,
  snapshotBuckets,
  type SlidingWindow,
  type WindowAggregate,
} from "../../src/domain/sliding-window.js";
import { T0, sample } from "./fixtures.js";

const QUANTILES = [0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1];

/** Everything of an aggregate a gate or Health can read, the sketch by count, quantiles and mean. */
function exact(a: WindowAggregate) {
  return {
    count: a.count,
    errors: a.errors,
    invariantViolations: a.invariantViolations,
    buckets: a.buckets,
    lastOutcomeAt: a.lastOutcomeAt,
    sketchCount: sketchCount(a.latency),
    quantiles: QUANTILES.map((q) => sketchQuantile(a.latency, q)),
    mean: sketchMean(a.latency),
    metrics: [...a.metrics].sort(([x], [y]) => x.localeCompare(y)),
  };
}

type Op =
  | { op: "record"; n: number; agoMs: number; latency: number; fail: boolean; metric: boolean }
  | { op: "tick"; ms: number }
  | { op: "clear" }
  | { op: "restore" }
  | { op: "resize"; windowMs: number }
  | { op: "look" };

const ops: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant("record" as const), n: fc.integer({ min: 1, max: 20 }), agoMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 400_000 })), latency: fc.oneof(fc.constant(0), fc.double({ min: 1e-4, max: 1e9, noNaN: true })), fail: fc.boolean(), metric: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant("tick" as const), ms: fc.oneof(fc.integer({ min: 0, max: 15_000 }), fc.integer({ min: 0, max: 400_000 })) }) },
  { weight: 1, arbitrary: fc.constant({ op: "clear" as const }) },
  { weight: 1, arbitrary: fc.constant({ op: "restore" as const }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("resize" as const), windowMs: fc.constantFrom(60_000, 300_000, 310_000) }) },
  { weight: 5, arbitrary: fc.constant({ op: "look" as const }) },
);

describe("aggregate's closed-bucket cache", () => {
  it("gives exactly the uncached merge over random outcomes, ticks, clears, restores and resizes", () => {
    fc.assert(
      fc.property(fc.array(ops, { minLength: 1, maxLength: 120 }), fc.integer({ min: 0, max: 9_999 }), (seq, offset) => {
        let now = T0 + offset;
        let w: SlidingWindow = createWindow(300_000, 10_000);
        let k = 0;
        for (const o of seq) {
          switch (o.op) {
            case "record":
              for (let i = 0; i < o.n; i++) {
                const latencyMs = o.latency * (1 + (k++ % 7) / 3);
                record(w, sample({ success: !(o.fail && i % 3 === 0), latencyMs, timeMs: now - o.agoMs, metrics: o.metric ? new Map([["cpu", latencyMs % 97]]) : new Map() }), now);
              }
              break;
            case "tick":
              now += o.ms;
              break;
            case "clear":
              clear(w);
              break;
            case "restore": {
              // A fresh window from this one's snapshots (a restart), merged onto what it holds (a peer's buckets).
              const again = createWindow(w.windowMs, 10_000);
              restoreBuckets(again, snapshotBuckets(w, now), now);
              restoreBuckets(w, snapshotBuckets(again, now), now);
              break;
            }
            case "resize":
              w = resizeWindow(w, o.windowMs, 10_000, now);
              break;
            case "look":
              break;
          }
          // Evaluations and Health look after every step: the cache is used and kept up.
          expect(exact(aggregate(w, now))).toEqual(exact(aggregateUncached(w, now)));
        }
      }),
      { numRuns: 300 },
    );
  });

  it("merges only the open bucket onto the closed ones after a new outcome", () => {
    const w = createWindow(300_000, 10_000);
    let now = T0;
    for (let b = 0; b < 31; b++) {
      for (let i = 0; i < 50; i++) record(w, sample({ latencyMs: 10 ** (-3 + (11 * i) / 50) }), now);
      aggregate(w, now);
      now += 10_000;
    }
    now -= 10_000;
    record(w, sample({ latencyMs: 5 }), now);
    const a = aggregate(w, now);
    expect(a.count).toBe(31 * 50 + 1);
    expect(exact(a)).toEqual(exact(aggregateUncached(w, now)));
  });
});
