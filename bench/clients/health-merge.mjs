// Health under traffic (issue 17, point 4): what one aggregate of a window costs when an outcome
// has arrived since the last one — the merge an evaluation, a Health call or a health publish
// pays. A 5-minute window of 31 buckets (30 s of 10 s each plus the open one), each holding
// outcomes whose latencies span the sketch's whole range; then, `calls` times, one outcome into
// the open bucket and one aggregate: with the closed-bucket cache (aggregate) and without it
// (aggregateUncached, every bucket's sketch merged), interleaved in rounds.
// Usage: node health-merge.mjs <calls> <rounds>
// Prints {"cachedUs": [...], "uncachedUs": [...], "buckets", "outcomesPerBucket"}.
import { aggregate, aggregateUncached, createWindow, record } from "../../dist/src/domain/sliding-window.js";

const [callsArg, roundsArg] = process.argv.slice(2);
const calls = Number(callsArg);
const rounds = Number(roundsArg);
const T0 = Date.UTC(2026, 0, 1);
const PER_BUCKET = 200;

let x = 7;
const rnd = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 4294967296);
const outcome = (latencyMs) => ({ variant: "canary", success: true, latencyMs, invariantViolations: 0, metrics: new Map(), key: "" });

function fullWindow() {
  const w = createWindow(300_000, 10_000);
  let now = T0;
  for (let b = 0; b <= w.bucketCount; b++) {
    for (let i = 0; i < PER_BUCKET; i++) record(w, outcome(10 ** (-3 + 11 * rnd())), now);
    if (b < w.bucketCount) now += w.bucketMs;
  }
  return { w, now };
}

function time(fn) {
  const { w, now } = fullWindow();
  fn(w, now); // the cache is built once, as the first evaluation of the bucket builds it
  const t0 = process.hrtime.bigint();
  let sink = 0;
  for (let i = 0; i < calls; i++) {
    record(w, outcome(10 ** (-3 + 11 * rnd())), now);
    sink += fn(w, now).count;
  }
  const us = Number(process.hrtime.bigint() - t0) / 1000 / calls;
  if (sink === 0) throw new Error("nothing merged");
  return us;
}

const cachedUs = [];
const uncachedUs = [];
for (let r = 0; r < rounds; r++) {
  // Order reversed every other round.
  if (r % 2 === 0) {
    cachedUs.push(time(aggregate));
    uncachedUs.push(time(aggregateUncached));
  } else {
    uncachedUs.push(time(aggregateUncached));
    cachedUs.push(time(aggregate));
  }
}
process.stdout.write(JSON.stringify({ cachedUs, uncachedUs, buckets: 31, outcomesPerBucket: PER_BUCKET }) + "\n");
