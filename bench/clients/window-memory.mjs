// The memory bound of one rollout's windows under the worst traffic, in process with a
// simulated clock (run with --expose-gc): `pairs` stable+canary window pairs with the default
// 5-minute window and 10-second interval (30 + 1 buckets each) are fed, bucket after bucket,
// outcomes whose latencies hit every bin of the sketch (1 µs .. 10^8 ms) — and, with
// `metrics`, 256 distinct custom-metric names per bucket (the per-bucket cap); then fed the
// same again five times over. Heap (and ArrayBuffer) bytes per rollout (two windows) after each pass shows the
// bound, and that it stays put.
// Usage: node --expose-gc window-memory.mjs <pairs> <latency|metrics>
// Prints {"idleBytesPerRollout", "fullBytesPerRollout": [per pass], "buckets", "outcomesPerBucket"}.
import { createWindow, record, aggregate } from "../../dist/src/domain/sliding-window.js";

const pairs = Number(process.argv[2] ?? 100);
const withMetrics = process.argv[3] === "metrics";
const WINDOW_MS = 300_000;
const INTERVAL_MS = 10_000;
// The JS heap plus ArrayBuffer memory: a sketch's dense bins are a typed array, whose bytes V8
// keeps outside the heap (in `arrayBuffers`) once it is larger than a few dozen bytes.
const heap = () => {
  globalThis.gc();
  globalThis.gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

// Latencies: 2,000 values log-spaced over the sketch's whole range (its ~1,270 bins all hit).
const latencies = Array.from({ length: 2000 }, (_, i) => 10 ** (-3 + (11 * i) / 1999));
const metricNames = Array.from({ length: 256 }, (_, i) => `metric_${i}`);
const samples = latencies.map((latencyMs, i) => ({
  variant: "canary",
  success: i % 50 !== 0,
  latencyMs,
  metrics: withMetrics ? new Map(metricNames.slice((i * 8) % 256, ((i * 8) % 256) + 8).map((n) => [n, i])) : new Map(),
  invariantViolations: 0,
  key: "",
}));

// Idle: many pairs, so that the per-pair figure is above the heap's noise.
const IDLE_PAIRS = 20_000;
let base = heap();
let idleWindows = Array.from({ length: IDLE_PAIRS }, () => [createWindow(WINDOW_MS, INTERVAL_MS), createWindow(WINDOW_MS, INTERVAL_MS)]);
const idle = (heap() - base) / IDLE_PAIRS;
idleWindows.length = 0; // released before the full-traffic measurement

base = heap();
const windows = Array.from({ length: pairs }, () => [createWindow(WINDOW_MS, INTERVAL_MS), createWindow(WINDOW_MS, INTERVAL_MS)]);

let now = 1_700_000_000_000;
const buckets = 31;
const full = [];
for (let pass = 0; pass < 6; pass++) {
  for (let b = 0; b < buckets; b++) {
    for (const pair of windows) for (const w of pair) for (const s of samples) record(w, s, now);
    now += INTERVAL_MS;
  }
  for (const pair of windows) for (const w of pair) aggregate(w, now - 1);
  full.push((heap() - base) / pairs);
}
process.stdout.write(JSON.stringify({ idleBytesPerRollout: idle, fullBytesPerRollout: full, buckets, outcomesPerBucket: samples.length, pairs, withMetrics }) + "\n");
