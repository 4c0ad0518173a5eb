// The scale case's light traffic (6d) in one process on a manual clock, without the network:
// 10,000 rollouts (2 gates, interval 10 s, window 300 s) in an engine with the server's metrics
// observer over a SQLite file, and per simulated second 200 recordOutcomes calls of 50 outcomes
// round robin (latencies log-uniform over 1 µs .. 10^8 ms, 1% errors), 4 evaluator ticks and
// one window flush — the server's timers. The CPU each part takes (process.cpuUsage, so its
// garbage collection included) is printed per simulated second, after `warm` simulated seconds
// that fill the windows. `dist` picks the build (another tree's for an A/B).
// With ROLLGATE_ROUNDS_CPU_PROF=<file> the measured seconds are profiled (V8's CPU profile) into it;
// with ROLLGATE_ROUNDS_HEAP_PROF=<file> their allocations are sampled (V8's sampling heap profile).
// Usage: node evaluator-rounds.mjs <dist dir> <db dir> [measured seconds = 60] [warm seconds = 320]
// Prints {"tickMsPerSec", "flushMsPerSec", "recordMsPerSec", "totalMsPerSec", "evaluations", "gc"}.
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { PerformanceObserver } from "node:perf_hooks";
import { pino } from "pino";

const [dist, dbDir, secondsArg = "60", warmArg = "320"] = process.argv.slice(2);
const load = (p) => import(pathToFileURL(join(dist, p)).href);
const { createEngine } = await load("src/service/engine.js");
const { openSqliteStore } = await load("src/store/sqlite-store.js");
const { manualClock } = await load("src/domain/clock.js");
const { analysisWithDefaults, DEFAULT_STEP_WEIGHTS_BP } = await load("src/domain/rollout.js");
const { createMetrics } = await load("src/server/metrics.js");

const ROLLOUTS = 10_000;
const CALLS_PER_SEC = 200;
const PER_CALL = 50;
const clock = manualClock(Date.UTC(2026, 0, 1));
const logger = pino({ level: "info" }, pino.destination({ dest: "/dev/null", sync: true }));
const store = openSqliteStore(join(dbDir, "rounds.db"));
let engine;
const metrics = createMetrics(() => engine.list().map((r) => r.stage));
engine = createEngine({ store, clock, logger, observer: metrics.engine });
await engine.load();
const caller = { actor: "bench", reason: "bench" };
const gates = [
  { name: "errors", minSamples: 100, onBreach: "rollback", check: { kind: "error_rate", max: 0.05 } },
  { name: "p99", minSamples: 100, onBreach: "rollback", check: { kind: "latency", quantile: 0.99, maxRatio: 1.5 } },
];
for (let i = 0; i < ROLLOUTS; i++) {
  const name = `s-${i}`;
  await engine.create(
    {
      name,
      stableVersion: "v1",
      canaryVersion: "v2",
      steps: DEFAULT_STEP_WEIGHTS_BP.map((weightBp) => ({ weightBp, minDurationMs: 0, minSamples: 0 })),
      features: new Map([["new-checkout", true]]),
      salt: name,
      gates,
      analysis: analysisWithDefaults({ intervalMs: 10_000, windowMs: 300_000, autoPromote: false }),
    },
    caller,
  );
  // Spread the creations over one interval, as a server's creates spread its evaluations.
  if (i % (ROLLOUTS / 40) === 0) clock.advance(250);
}

let x = 12345;
const rnd = () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 4294967296;
const NO_METRICS = new Map();
// A batch as the decoder's conversion hands it over: fresh objects per call, as on the wire.
const batch = () =>
  Array.from({ length: PER_CALL }, (_, i) => ({
    variant: i % 2 === 0 ? "stable" : "canary",
    success: rnd() > 0.01,
    latencyMs: 10 ** (-3 + 11 * rnd()),
    metrics: NO_METRICS,
    invariantViolations: 0,
    key: "",
  }));

let gcMs = 0;
let gcs = 0;
new PerformanceObserver((l) => {
  for (const e of l.getEntries()) {
    gcMs += e.duration;
    gcs++;
  }
}).observe({ entryTypes: ["gc"] });
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const spent = { tick: 0, flush: 0, record: 0 };
let next = 0;
let evaluations = 0;
metrics.engine.health = ((health) => (h) => {
  evaluations++;
  health(h);
})(metrics.engine.health);

async function second(measure) {
  for (let q = 0; q < 4; q++) {
    const c0 = cpu();
    for (let k = 0; k < CALLS_PER_SEC / 4; k++) engine.recordOutcomes(`s-${next++ % ROLLOUTS}`, batch());
    const c1 = cpu();
    await engine.tick();
    const c2 = cpu();
    if (measure) {
      spent.record += c1 - c0;
      spent.tick += c2 - c1;
    }
    clock.advance(250);
  }
  const c0 = cpu();
  await engine.flush();
  if (measure) spent.flush += cpu() - c0;
}

for (let s = 0; s < Number(warmArg); s++) await second(false);
evaluations = 0;
gcMs = 0;
gcs = 0;
const seconds = Number(secondsArg);
const profile = process.env.ROLLGATE_ROUNDS_CPU_PROF;
const heapProfile = process.env.ROLLGATE_ROUNDS_HEAP_PROF;
const session = profile === undefined && heapProfile === undefined ? undefined : new Session();
session?.connect();
if (profile !== undefined) {
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
}
// Samples every 4 KiB allocated on average, and keeps what was collected since (the allocations, not the live heap).
if (heapProfile !== undefined) await session.post("HeapProfiler.startSampling", { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
for (let s = 0; s < seconds; s++) await second(true);
if (profile !== undefined) writeFileSync(profile, JSON.stringify((await session.post("Profiler.stop")).profile));
if (heapProfile !== undefined) writeFileSync(heapProfile, JSON.stringify((await session.post("HeapProfiler.stopSampling")).profile));
const per = (v) => Math.round((v / seconds) * 10) / 10;
console.log(
  JSON.stringify({
    tickMsPerSec: per(spent.tick),
    flushMsPerSec: per(spent.flush),
    recordMsPerSec: per(spent.record),
    totalMsPerSec: per(spent.tick + spent.flush + spent.record),
    evaluations: evaluations / seconds,
    gc: { perSec: gcs / seconds, msPerSec: per(gcMs) },
  }),
);
engine.shutdown();
