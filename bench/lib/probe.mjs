// Preloaded into a rollgate server process by the benchmark (node --expose-gc --import):
// on SIGUSR2 it prints one JSON line {"probe": memoryUsage()} on stdout, so the suite can read
// heap and RSS after garbage is gone. It changes nothing else.
//
// By default each probe runs two full GCs first. With ROLLGATE_PROBE_HEAP=natural (the soak) it
// does not: heapUsed is then the heap used right after the server's own last mark-compact
// (recorded by v8.GCProfiler, which costs a few µs per GC), and a full GC is forced only when
// no mark-compact has run for ROLLGATE_PROBE_MAX_AGE_S seconds (default 10). A forced full GC
// on this heap is an atomic, non-incremental mark-compact of ~50 ms that also leaves a backlog
// of requests for the turns after it; a probe every 2 s made them the soak's only major GCs
// (one a second) and put its stalls into the event-loop figures it measures.
import { GCProfiler } from "node:v8";

const natural = process.env.ROLLGATE_PROBE_HEAP === "natural";
const maxAgeMs = Number(process.env.ROLLGATE_PROBE_MAX_AGE_S ?? 10) * 1000;
const profiler = natural ? new GCProfiler() : undefined;
profiler?.start();
let lastMajor; // { atMs, heapUsed } of the last mark-compact the server ran by itself

process.on("SIGUSR2", () => {
  let heapUsed;
  let forced = false;
  if (profiler !== undefined) {
    const stats = profiler.stop().statistics;
    profiler.start();
    const mc = stats.findLast((s) => s.gcType === "MarkSweepCompact");
    if (mc !== undefined) lastMajor = { atMs: Date.now(), heapUsed: mc.afterGC.heapStatistics.usedHeapSize };
    if (lastMajor !== undefined && Date.now() - lastMajor.atMs <= maxAgeMs) heapUsed = lastMajor.heapUsed;
  }
  if (heapUsed === undefined) {
    globalThis.gc?.();
    globalThis.gc?.();
    forced = true;
  }
  const m = process.memoryUsage();
  process.stdout.write(JSON.stringify({ probe: { rss: m.rss, heapUsed: heapUsed ?? m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, forced } }) + "\n");
});
