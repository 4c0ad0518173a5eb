#!/usr/bin/env node
// The soak (issue 16, point 1): `npm run soak [-- --duration 10m]`. One rollgate server (child
// process pinned to core 0, SQLite in a temporary directory, loopback) under a mixed load from
// bench/soak/load.mjs pinned to core 1: Route on the gRPC fast path, RecordOutcome batches,
// WatchHealth and WatchRoutes streams, control-plane churn, evaluations every second. The server
// is sampled from its /metrics every few seconds: RSS, heap used, event-loop delay p99, GC pause
// time, RPCs by method and code; throughput per kind comes from the load generator.
//
// Pass (after the warm-up, the first quarter of the run):
//   - memory flat: for RSS and for the live heap, median(last quarter) <= 1.05 x median(second
//     quarter). The second and the last quarter are half a run apart, so this is "growth <= 5%
//     over the last half"; medians of many samples, not two single samples, so that one outlier
//     (a burst, a GC that ran late) decides nothing. The live heap is heap used right after the
//     server's own last mark-compact (the server runs with bench/lib/probe.mjs in its "natural"
//     mode, which reads it from v8.GCProfiler on SIGUSR2 after each scrape): heap used as
//     sampled is a saw-tooth between collections (here 30 to 80 MiB within seconds) that hides
//     a leak of a few MiB; the live heap is what a leak makes grow. Both are plotted. The probe
//     forces no GC unless the server ran no mark-compact for 10 s (a light load); such probes
//     are counted ("forced probes"), and the event-loop histogram is reset by a second scrape
//     right after one. Forcing two full GCs at every sample, as this script did before, was
//     the soak's only source of major GCs at full load (one a second, ~50 ms each, atomic) and
//     their backlog of requests spilled into the next interval: on a quiet machine that alone
//     moved the interval p99 from ~12 ms to 17-28 ms.
//   - event-loop delay: the p99 of every sample interval after the warm-up <= 20 ms.
//   - no errors: no failed call in the load generator and no RPC the server answered with a
//     code other than OK (streams the load generator cancels at its end are CANCELED, not errors).
//
// Flags: --duration 10m (default)  --sample 5s  --json (print the summary as the last line)
//        --no-write (leave bench/SOAK.md and bench/soak/*.svg alone)  --no-build
//        --window 60s (the rollouts' window: it fills during the warm-up; a short run wants a short one)
//        --route-rate 5000 --outcome-rate 50000 --watch-health 200 --watch-routes 10 --churn-rate 4
//        diagnosis (not for a recorded run: they cost the server CPU):
//        --cpu-prof <dir> (the server runs under node --cpu-prof, the profile lands in <dir>)
//        --long-tasks <file> (bench/soak/longtasks.mjs: every event-loop stall > 20 ms and every GC
//        pause, written to <file> at exit; `node bench/soak/long-tasks-report.mjs <file> <profile>`
//        says what ran in each stall)  --alloc-prof <file> (with --long-tasks: where the allocation
//        that the GC collects comes from, a .heapprofile)
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchDir } from "./lib/util.mjs";
import {
  build,
  createRollout,
  machine,
  MB,
  median,
  parseDuration,
  loadOptionsOf,
  parseFlags,
  pinSelf,
  quantileOf,
  sampleServer,
  scrape,
  sleep,
  slope,
  startLoad,
  startServer,
  stopServer,
} from "./soak/harness.mjs";
import { timeChart } from "./soak/svg.mjs";

const flags = parseFlags(process.argv.slice(2));
if (flags.help === true) {
  const src = await import("node:fs").then((fs) => fs.readFileSync(new URL(import.meta.url), "utf8"));
  process.stdout.write(src.slice(src.indexOf("// Flags:"), src.indexOf("\nimport ")).replace(/^\/\/ ?/gm, "") + "\n");
  process.exit(0);
}
const seconds = parseDuration(flags.duration ?? "10m");
const sampleMs = parseDuration(flags.sample ?? (seconds >= 300 ? "5s" : "2s")) * 1000;
const log = (s) => process.stderr.write(`${s}\n`);
const num = (v, d) => (v === undefined ? d : Number(v));
const load = loadOptionsOf(flags);
export const LIMITS = { growth: 0.05, lagP99Ms: 20 };

pinSelf();
build(flags["no-build"] === true);
const before = machine();
const dir = mkdtempSync(join(tmpdir(), "rollgate-soak-"));
const nodeArgs = [];
const env = { ROLLGATE_PROBE_HEAP: "natural" };
if (typeof flags["cpu-prof"] === "string") nodeArgs.push("--cpu-prof", "--cpu-prof-dir", flags["cpu-prof"]);
if (typeof flags["long-tasks"] === "string") {
  nodeArgs.push("--import", join(benchDir, "soak", "longtasks.mjs"));
  env.ROLLGATE_LONG_TASKS = flags["long-tasks"];
  if (typeof flags["alloc-prof"] === "string") env.ROLLGATE_ALLOC_PROF = flags["alloc-prof"];
}
const server = await startServer({ db: join(dir, "rollgate.db"), nodeArgs, env });
const rollouts = ["soak-0", "soak-1", "soak-2", "soak-3"];
const window = flags.window ?? "60s";
for (const r of rollouts) await createRollout(server.port, r, { window });
log(`soak: server pid ${server.pid} on port ${server.port}, ${seconds}s, sampling every ${sampleMs / 1000}s`);

const gen = startLoad({ port: server.port, seconds: seconds + 60, rollouts, ...load });
const samples = [];
const t0 = Date.now();
let prevLoad;
let prevAt = t0;
let forcedProbes = 0;
await sampleServer(server.port); // resets the event-loop histogram: the first interval starts now
while (Date.now() - t0 < seconds * 1000) {
  await sleep(Math.min(sampleMs, seconds * 1000 - (Date.now() - t0)));
  const at = Date.now();
  const s = await sampleServer(server.port);
  const live = await server.probe();
  // A forced probe's full GCs (two, tens of ms on this heap) are the harness's, not rollgate's:
  // a second scrape, its figures dropped, resets the event-loop histogram after them (a scrape,
  // like any Prometheus scrape, stays in the figures).
  if (live.forced) {
    forcedProbes++;
    await scrape(server.port);
  }
  const l = gen.last();
  const dt = (at - prevAt) / 1000;
  const rate = (get) => (l === undefined || prevLoad === undefined ? NaN : (get(l) - get(prevLoad)) / dt);
  samples.push({
    t: (at - t0) / 1000,
    ...s,
    liveHeap: live.heapUsed,
    routePerSec: rate((x) => x.route.ok),
    outcomesPerSec: rate((x) => x.outcomes.acked),
    healthMsgsPerSec: rate((x) => x.health.messages),
    routesMsgsPerSec: rate((x) => x.routes.messages),
    changesPerSec: rate((x) => x.changes.ok),
    gcMsPerSec: samples.length === 0 ? NaN : ((s.gcSeconds - samples.at(-1).gcSeconds) * 1000) / dt,
    load: l,
  });
  prevLoad = l;
  prevAt = at;
  const x = samples.at(-1);
  log(
    `t=${x.t.toFixed(0)}s rss ${(x.rss / MB).toFixed(1)} MB heap ${(x.heapUsed / MB).toFixed(1)} MB live ${(x.liveHeap / MB).toFixed(1)} MB lag p99 ${x.lagP99Ms.toFixed(1)} ms ` +
      `route ${x.routePerSec.toFixed(0)}/s outcomes ${x.outcomesPerSec.toFixed(0)}/s health ${x.healthMsgsPerSec.toFixed(0)} msg/s ` +
      `changes ${x.changesPerSec.toFixed(1)}/s streams ${x.subscribers.health}+${x.subscribers.routes}`,
  );
}
const final = await gen.finish();
const last = await sampleServer(server.port);
await stopServer(server);
rmSync(dir, { recursive: true, force: true });
const after = machine();

// --- Verdict ------------------------------------------------------------------------------------
const n = samples.length;
const q = (i) => samples.slice(Math.floor((n * i) / 4), Math.floor((n * (i + 1)) / 4));
const steady = samples.slice(Math.floor(n / 4));
const growth = (key) => median(q(3).map((s) => s[key])) / median(q(1).map((s) => s[key])) - 1;
const serverErrors = {};
for (const [method, codes] of Object.entries(last.rpcs)) {
  for (const [code, count] of Object.entries(codes)) if (code !== "ok" && code !== "canceled") serverErrors[`${method} ${code}`] = count;
}
const clientErrors = {
  route: final.route.err + final.route.down,
  outcomes: final.outcomes.err + final.outcomes.down,
  health: final.health.err + final.health.down,
  routes: final.routes.err + final.routes.down,
  changes: final.changes.err + final.changes.down,
};
const lastErrors = [final.route, final.outcomes, final.health, final.routes, final.changes].map((s) => s.lastError).filter((e) => e !== "");
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const result = {
  ...before,
  loadavgAfter: after.loadavg,
  command: `npm run soak -- ${process.argv.slice(2).join(" ") || "--duration 10m"}`,
  seconds,
  sampleSeconds: sampleMs / 1000,
  samples: n,
  forcedProbes,
  load,
  rss: { q2MB: median(q(1).map((s) => s.rss)) / MB, q4MB: median(q(3).map((s) => s.rss)) / MB, growth: growth("rss"), slopeMBPerMin: (slope(steady.map((s) => ({ x: s.t, y: s.rss }))) * 60) / MB },
  heap: { q2MB: median(q(1).map((s) => s.liveHeap)) / MB, q4MB: median(q(3).map((s) => s.liveHeap)) / MB, growth: growth("liveHeap"), slopeMBPerMin: (slope(steady.map((s) => ({ x: s.t, y: s.liveHeap }))) * 60) / MB },
  heapSampled: { q2MB: median(q(1).map((s) => s.heapUsed)) / MB, q4MB: median(q(3).map((s) => s.heapUsed)) / MB, growth: growth("heapUsed") },
  lag: {
    maxP99Ms: Math.max(...steady.map((s) => s.lagP99Ms)),
    medianP99Ms: median(steady.map((s) => s.lagP99Ms)),
    intervalsOver: steady.filter((s) => s.lagP99Ms > LIMITS.lagP99Ms).length,
    maxMs: Math.max(...steady.map((s) => s.lagMaxMs)),
  },
  gc: { msPerSec: median(steady.map((s) => s.gcMsPerSec)), totalSeconds: last.gcSeconds, majorSeconds: last.gcMajorSeconds },
  throughput: {
    routePerSec: mean(steady.map((s) => s.routePerSec)),
    outcomesPerSec: mean(steady.map((s) => s.outcomesPerSec)),
    healthMsgsPerSec: mean(steady.map((s) => s.healthMsgsPerSec)),
    routesMsgsPerSec: mean(steady.map((s) => s.routesMsgsPerSec)),
    changesPerSec: mean(steady.map((s) => s.changesPerSec)),
  },
  totals: {
    routes: final.route.ok,
    outcomes: final.outcomes.acked,
    healthMessages: final.health.messages,
    routesMessages: final.routes.messages,
    changes: final.changes.ok,
    changesByOp: final.changes.byOp,
    skipped: { route: final.route.skipped, outcomes: final.outcomes.skipped },
    streamsOpenAtEnd: { health: final.health.open, routes: final.routes.open },
  },
  clientErrors,
  serverErrors,
  lastErrors,
  serverWarnings: server.logs.slice(0, 20).map((e) => `${e.level >= 50 ? "error" : "warn"}: ${e.msg}`),
};
result.pass = {
  rss: result.rss.growth <= LIMITS.growth,
  heap: result.heap.growth <= LIMITS.growth,
  lag: result.lag.maxP99Ms <= LIMITS.lagP99Ms,
  errors: Object.values(clientErrors).every((e) => e === 0) && Object.keys(serverErrors).length === 0,
};
result.passed = Object.values(result.pass).every(Boolean);

// --- Record -------------------------------------------------------------------------------------
const pct = (x) => `${(x * 100).toFixed(1)}%`;
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : "n/a");
if (flags["no-write"] !== true) {
  const warm = { from: 0, to: samples[Math.floor(n / 4)]?.t ?? 0, label: "warm-up" };
  const pts = (key, scale = 1) => samples.map((s) => ({ x: s.t, y: s[key] / scale }));
  const sub = `${result.date.slice(0, 16)}Z, commit ${result.commit}, ${seconds}s, load average ${result.loadavg.join(" ")}`;
  const out = join(benchDir, "soak");
  writeFileSync(join(out, "memory.svg"), timeChart({ title: "Soak: server memory", subtitle: sub, yLabel: "MiB", series: [{ label: "RSS", points: pts("rss", MB) }, { label: "heap used (as sampled)", points: pts("heapUsed", MB) }, { label: "heap used after a mark-compact", points: pts("liveHeap", MB) }], shade: warm }));
  writeFileSync(
    join(out, "event-loop.svg"),
    timeChart({ title: "Soak: event-loop delay p99 per sample interval", subtitle: sub, yLabel: "ms", series: [{ label: "p99", points: pts("lagP99Ms") }, { label: "GC ms per s", points: pts("gcMsPerSec") }], limit: { y: LIMITS.lagP99Ms, label: "20 ms limit" }, shade: warm }),
  );
  writeFileSync(
    join(out, "throughput.svg"),
    timeChart({
      title: "Soak: throughput per kind",
      subtitle: sub,
      yLabel: "per second",
      series: [
        { label: "Route calls", points: pts("routePerSec") },
        { label: "outcomes / 10", points: pts("outcomesPerSec", 10) },
        { label: "WatchHealth msgs", points: pts("healthMsgsPerSec") },
        { label: "changes x 100", points: samples.map((s) => ({ x: s.t, y: s.changesPerSec * 100 })) },
      ],
      shade: warm,
    }),
  );
  const md = `# Soak — last recorded run

\`npm run soak\` (\`bench/soak.mjs\`, load generator \`bench/soak/load.mjs\`); what it does and the pass rules are in the script's header.
Short version in \`npm test\`: \`test/reliability/soak.test.ts\`.

| | |
|---|---|
| date | ${result.date} |
| commit | ${result.commit} |
| command | \`${result.command}\` |
| node | ${result.node} |
| load average (1, 5, 15 min) before / after | ${result.loadavg.join(", ")} / ${result.loadavgAfter.join(", ")} (2 cores shared with other work) |
| server | \`taskset -c 0 node dist/src/cli/main.js serve --listen 127.0.0.1:0 --db <tmp>/rollgate.db\` |
| load | \`taskset -c 1 node bench/soak/load.mjs\`: Route ${load.routeRate}/s (raw HTTP/2, fast path), RecordOutcome ${load.outcomeRate} outcomes/s in batches of ${load.outcomeBatch}, ${load.watchHealth} WatchHealth + ${load.watchRoutes} WatchRoutes streams, ${load.churnRate} control-plane changes/s (SetWeight, Pause/Resume, CreateRollout, DeleteRollout), 4 rollouts evaluated every 1 s over a ${window} window |
| samples | ${n}, every ${sampleMs / 1000} s; warm-up = first quarter; ${forcedProbes} of them forced a full GC (none ran for 10 s) |
| verdict | **${result.passed ? "PASS" : "FAIL"}** |

## Figures (after warm-up)

| | value | limit | |
|---|---|---|---|
| RSS: median 2nd quarter → last quarter | ${f1(result.rss.q2MB)} → ${f1(result.rss.q4MB)} MiB (${pct(result.rss.growth)}; trend ${result.rss.slopeMBPerMin.toFixed(2)} MiB/min) | ≤ 5% | ${result.pass.rss ? "pass" : "FAIL"} |
| heap used after a mark-compact: median 2nd quarter → last quarter | ${f1(result.heap.q2MB)} → ${f1(result.heap.q4MB)} MiB (${pct(result.heap.growth)}; trend ${result.heap.slopeMBPerMin.toFixed(2)} MiB/min) | ≤ 5% | ${result.pass.heap ? "pass" : "FAIL"} |
| event-loop delay p99, worst interval (median interval) | ${f1(result.lag.maxP99Ms)} ms (${f1(result.lag.medianP99Ms)} ms); ${result.lag.intervalsOver} of ${steady.length} intervals over; max single delay ${f1(result.lag.maxMs)} ms | ≤ 20 ms every interval | ${result.pass.lag ? "pass" : "FAIL"} |
| heap used as sampled (saw-tooth), medians | ${f1(result.heapSampled.q2MB)} → ${f1(result.heapSampled.q4MB)} MiB (${pct(result.heapSampled.growth)}) | | |
| GC pause | ${f1(result.gc.msPerSec)} ms per s (median); ${f1(result.gc.totalSeconds)} s in all, ${f1(result.gc.majorSeconds)} s major | | |
| errors (load generator: route, outcomes, health, routes, changes) | ${Object.values(clientErrors).join(", ")} | 0 | ${result.pass.errors ? "pass" : "FAIL"} |
| errors (server RPCs not OK/CANCELED) | ${Object.keys(serverErrors).length === 0 ? "none" : Object.entries(serverErrors).map(([k, v]) => `${k}: ${v}`).join(", ")} | none | |

Throughput (mean per second after warm-up): Route ${result.throughput.routePerSec.toFixed(0)}, outcomes ${result.throughput.outcomesPerSec.toFixed(0)}, WatchHealth messages ${result.throughput.healthMsgsPerSec.toFixed(0)}, WatchRoutes messages ${result.throughput.routesMsgsPerSec.toFixed(0)}, control-plane changes ${result.throughput.changesPerSec.toFixed(2)}.
Totals: ${result.totals.routes} Route calls, ${result.totals.outcomes} outcomes, ${result.totals.healthMessages} WatchHealth and ${result.totals.routesMessages} WatchRoutes messages, ${result.totals.changes} changes (${Object.entries(result.totals.changesByOp).map(([k, v]) => `${k} ${v}`).join(", ")}); ticks skipped at the in-flight cap: Route ${result.totals.skipped.route}, RecordOutcome ${result.totals.skipped.outcomes}.
${result.serverWarnings.length === 0 ? "The server logged no warning or error." : `Server warnings/errors: ${result.serverWarnings.join("; ")}`}

![memory](soak/memory.svg)
![event-loop delay](soak/event-loop.svg)
![throughput](soak/throughput.svg)
`;
  // Notes written by hand below the marker (causes, profiles, earlier runs) are kept from run to run.
  const KEPT_MARKER = "<!-- Notes below are written by hand and kept by every run. -->";
  let kept = `\n${KEPT_MARKER}\n`;
  try {
    const old = readFileSync(join(benchDir, "SOAK.md"), "utf8");
    const at = old.indexOf(KEPT_MARKER);
    if (at >= 0) kept = `\n${old.slice(at)}`;
  } catch {
    /* first run */
  }
  writeFileSync(join(benchDir, "SOAK.md"), md + kept);
  log("wrote bench/SOAK.md and bench/soak/*.svg");
}
log(
  `soak ${result.passed ? "PASS" : "FAIL"}: rss ${pct(result.rss.growth)}, heap ${pct(result.heap.growth)}, lag p99 worst ${f1(result.lag.maxP99Ms)} ms, ` +
    `client errors ${JSON.stringify(clientErrors)}, server errors ${JSON.stringify(serverErrors)} ${lastErrors.join(" | ")}`,
);
if (flags.json === true) process.stdout.write(`${JSON.stringify({ ...result, series: samples.map(({ load: _l, rpcs: _r, ...s }) => s) })}\n`);
process.exit(result.passed ? 0 : 1);
