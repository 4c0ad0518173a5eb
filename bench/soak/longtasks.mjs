// Preloaded into the soak's server when `npm run soak -- --long-tasks <file>` asks (node
// --import): records every event-loop stall longer than ROLLGATE_LONG_TASK_MS (default 20) and
// every GC pause, with monotonic timestamps in microseconds (the clock of a --cpu-prof profile,
// so that bench/soak/long-tasks-report.mjs can say what ran in each stall), and writes them as
// JSON to ROLLGATE_LONG_TASKS when the process exits. Diagnosis only: the 1 ms timer it runs
// costs the server a little CPU, so a run that records long tasks is not the one to record.
import { writeFileSync } from "node:fs";
import { PerformanceObserver, constants, monitorEventLoopDelay } from "node:perf_hooks";

const file = process.env.ROLLGATE_LONG_TASKS;
const limitUs = Number(process.env.ROLLGATE_LONG_TASK_MS ?? 20) * 1000;
const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const stalls = [];
const gcs = [];
const kinds = { [constants.NODE_PERFORMANCE_GC_MAJOR]: "major", [constants.NODE_PERFORMANCE_GC_MINOR]: "minor", [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental", [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb" };
// performance entries are in ms since timeOrigin; this is that origin on the monotonic clock.
const originUs = nowUs() - performance.now() * 1000;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcs.push({ atUs: Math.round(originUs + e.startTime * 1000), us: Math.round(e.duration * 1000), kind: kinds[e.detail?.kind] ?? String(e.detail?.kind) });
}).observe({ entryTypes: ["gc"] });
let last = nowUs();
setInterval(() => {
  const now = nowUs();
  if (now - last > limitUs) stalls.push({ fromUs: last, toUs: now });
  last = now;
}, 1).unref();
// The same sampler as the server's metric (5 ms): how many delay samples a second it records.
const eld = monitorEventLoopDelay({ resolution: 5 });
eld.enable();
const startedUs = nowUs();
if (file !== undefined) process.on("exit", () => writeFileSync(file, JSON.stringify({ limitUs, stalls, gcs, delaySamplesPerSec: eld.count / ((nowUs() - startedUs) / 1e6) })));

// ROLLGATE_ALLOC_PROF=<file>: the sampling heap profiler keeping the objects GC collected too,
// so that the profile (.heapprofile, for Chrome DevTools) is where the allocation comes from,
// not what is left at the end.
const allocFile = process.env.ROLLGATE_ALLOC_PROF;
if (allocFile !== undefined) {
  const { Session } = await import("node:inspector");
  const session = new Session();
  session.connect();
  session.post("HeapProfiler.startSampling", { samplingInterval: 65536, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  process.on("exit", () => session.post("HeapProfiler.stopSampling", (err, r) => err === null && writeFileSync(allocFile, JSON.stringify(r.profile))));
}
