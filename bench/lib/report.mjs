// Turning the raw figures into targets (met / missed by how much) and RESULTS.md.
import { fmt, mmm } from "./util.mjs";
import { profileMarkdown } from "./profile.mjs";

const KiB = 1024;
const MiB = 1024 * 1024;

/** "met", or "missed by X%" measured against the goal in its direction. */
function verdict(value, goal, dir) {
  if (!Number.isFinite(value)) return { met: false, text: "no figure" };
  const met = dir === ">=" ? value >= goal : value <= goal;
  if (met) return { met, text: "met" };
  const by = dir === ">=" ? ((goal - value) / goal) * 100 : ((value - goal) / goal) * 100;
  return { met, text: `missed by ${by.toFixed(0)}%` };
}

const range = (s, f) => `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
const ratios = (a, b) => a.map((x, i) => x / b[i]);

/**
 * Returns the targets table rows from the raw results: each {id, name, measured, baseline,
 * ratio, goal, result, met}. Missing cases (errors) give a row saying so.
 */
export function targets(R) {
  const rows = [];
  const add = (row) => rows.push(row);
  const missing = (id, name, goal, err) => add({ id, name, measured: "—", baseline: "—", ratio: "—", goal, result: `not measured: ${err}`, met: false });

  if (R.route?.ok) {
    const { rps, latency } = R.route.value;
    const top = Math.max(...Object.keys(rps.rollgate).map(Number));
    const r = mmm(ratios(rps.rollgate[top], rps.bare[top]));
    const v = verdict(r.median, 0.5, ">=");
    add({
      id: "1a",
      name: `Route over gRPC (fast path), req/s at ${top} in flight, vs bare node:http2`,
      measured: range(mmm(rps.rollgate[top]), (x) => fmt(x)),
      baseline: range(mmm(rps.bare[top]), (x) => fmt(x)),
      ratio: range(r, (x) => `${x.toFixed(2)}×`),
      goal: "≥ 0.5×",
      result: v.text,
      met: v.met,
    });
    const p99 = mmm(latency.rollgate.p99);
    const v2 = verdict(p99.median, 1000, "<=");
    add({
      id: "1b",
      name: "Route p99 latency at 1 call in flight (p50 in the Route section)",
      measured: range(p99, (x) => `${fmt(x)} µs`),
      baseline: `bare ${fmt(mmm(latency.bare.p99).median)} µs`,
      ratio: `${(p99.median / mmm(latency.bare.p99).median).toFixed(2)}× bare`,
      goal: "≤ 1,000 µs",
      result: v2.text,
      met: v2.met,
    });
  } else {
    missing("1", "Route over gRPC", "≥ 0.5× bare; p99 ≤ 1 ms", R.route?.error);
  }

  if (R.bucketing?.ok) {
    const b = R.bucketing.value.rounds;
    const route = mmm(b.route);
    const v = verdict(route.median, 1500, "<=");
    add({
      id: "2",
      name: "Bucketing in process: full route(table, key), ns per decision, vs flagd-core fractional",
      measured: range(route, (x) => `${fmt(x)} ns`),
      baseline: range(mmm(b.flagd), (x) => `${fmt(x)} ns`),
      ratio: range(mmm(ratios(b.route, b.flagd)), (x) => `${x.toFixed(2)}× flagd`),
      goal: "≤ 1,500 ns",
      result: v.text,
      met: v.met,
    });
  } else missing("2", "Bucketing in process", "≤ 1.5 µs", R.bucketing?.error);

  if (R.routeBatch?.ok) {
    const c = R.routeBatch.value.callsPerSec;
    for (const n of [100, 1000]) {
      const keys = c[n].map((x) => x * n);
      const r = mmm(ratios(keys, c[1]));
      const v = verdict(r.median, 20, ">=");
      add({
        id: n === 100 ? "3a" : "3b",
        name: `RouteBatch keys/s at batch ${fmt(n)} vs single Route calls/s (same calls in flight)`,
        measured: range(mmm(keys), (x) => `${fmt(x)} keys/s`),
        baseline: range(mmm(c[1]), (x) => `${fmt(x)} calls/s`),
        ratio: range(r, (x) => `${x.toFixed(1)}×`),
        goal: "≥ 20×",
        result: v.text,
        met: v.met,
      });
    }
  } else missing("3", "RouteBatch", "≥ 20×", R.routeBatch?.error);

  if (R.ingest?.ok) {
    const g = R.ingest.value;
    for (const [id, key, name] of [
      ["4a", "record", "RecordOutcome ingest, batches of 500, gates evaluating (1 s)"],
      ["4b", "stream", "StreamOutcomes ingest, messages of 500, gates evaluating (1 s)"],
    ]) {
      const s = mmm(g[key].perSec);
      const v = verdict(s.median, 200_000, ">=");
      add({
        id,
        name,
        measured: range(s, (x) => `${fmt(x)}/s`),
        baseline: `server CPU ${(mmm(g[key].cpuShare).median * 100).toFixed(0)}% of a core; ${fmt(mmm(g[key].perCpuSec).median)} per CPU-second`,
        ratio: `${(s.median / 200_000).toFixed(1)}× goal`,
        goal: "≥ 200,000 outcomes/s",
        result: v.text,
        met: v.met,
      });
    }
  } else missing("4", "Ingest", "≥ 200,000/s", R.ingest?.error);

  if (R.watch?.ok) {
    const w = R.watch.value;
    const p99 = mmm(w.segments.map((s) => s.p99Ms));
    const v = verdict(p99.median, 100, "<=");
    add({
      id: "5",
      name: `WatchHealth fan-out: ${fmt(w.subscribed)} subscribers over 100 rollouts at 1 s, evaluation → delivery p99`,
      measured: range(p99, (x) => `${x.toFixed(1)} ms`),
      baseline: `RSS ${fmt(w.rssBefore / MiB)} MiB idle → ${fmt(w.rssWith / MiB)} MiB with subscribers`,
      ratio: `${(p99.median / 100).toFixed(2)}× goal`,
      goal: "≤ 100 ms",
      result: v.text,
      met: v.met,
    });
  } else missing("5", "WatchHealth fan-out", "p99 ≤ 100 ms", R.watch?.error);

  if (R.scale?.ok) {
    const s = R.scale.value;
    const idle = mmm(s.idle);
    const v = verdict(idle.median * 100, 10, "<=");
    add({
      id: "6a",
      name: "10,000 rollouts evaluated every 10 s, idle: server CPU, % of one core",
      measured: range(idle, (x) => `${(x * 100).toFixed(1)}%`),
      baseline: `with light traffic: ${(mmm(s.busy).median * 100).toFixed(1)}%`,
      ratio: `${(idle.median * 10).toFixed(2)}× goal`,
      goal: "≤ 10%",
      result: v.text,
      met: v.met,
    });
    const rssPer = (s.rss1 - s.mem0.rss) / 10_000;
    const heapPer = (s.mem1.heapUsed - s.mem0.heapUsed) / 10_000;
    const v2 = verdict(Math.max(rssPer, heapPer) / KiB, 64, "<=");
    add({
      id: "6b",
      name: "Memory per rollout, idle (after GC, 10,000 rollouts)",
      measured: `${fmt(rssPer / KiB, 1)} KiB RSS, ${fmt(heapPer / KiB, 1)} KiB heap`,
      baseline: `RSS ${fmt(s.mem0.rss / MiB)} → ${fmt(s.rss1 / MiB)} MiB`,
      ratio: `${(Math.max(rssPer, heapPer) / KiB / 64).toFixed(2)}× goal`,
      goal: "≤ 64 KiB",
      result: v2.text,
      met: v2.met,
    });
    const busy = mmm(s.busy);
    const vb = verdict(busy.median * 100, 10, "<=");
    add({
      id: "6d",
      name: `10,000 rollouts under light traffic (${s.traffic.rate} RecordOutcome calls/s × ${s.traffic.perCall} outcomes): server CPU, % of one core`,
      measured: range(busy, (x) => `${(x * 100).toFixed(1)}%`),
      baseline: `idle: ${(idle.median * 100).toFixed(1)}%`,
      ratio: `${(busy.median * 10).toFixed(2)}× goal`,
      goal: "≤ 10%",
      result: vb.text,
      met: vb.met,
    });
  } else missing("6", "Scale", "≤ 10% CPU; ≤ 64 KiB", R.scale?.error);

  if (R.merge?.ok) {
    const m = R.merge.value;
    const ratio = mmm(m.ratios);
    add({
      id: "6e",
      name: `Health merge after a new outcome, ${m.buckets} buckets over the whole sketch range: µs per aggregate with the closed-bucket cache`,
      measured: range(mmm(m.cachedUs), (x) => `${fmt(x, 1)} µs`),
      baseline: `every bucket merged: ${range(mmm(m.uncachedUs), (x) => `${fmt(x, 1)} µs`)}`,
      ratio: `${ratio.median.toFixed(3)}× (same-round ratios ${ratio.min.toFixed(3)}–${ratio.max.toFixed(3)})`,
      goal: "reported",
      result: "reported",
      met: true,
    });
  }

  if (R.windowBound?.ok) {
    const w = R.windowBound.value;
    const growth = (mode) => {
      const f = w[mode].fullBytesPerRollout;
      // From the third pass on: the first two include the closed-bucket sums settling (their dense bins reach full range once).
      const from = f[Math.min(2, f.length - 2)];
      return (f.at(-1) - from) / from;
    };
    const bounded = growth("latency") < 0.01 && growth("metrics") < 0.01;
    add({
      id: "6c",
      name: "Memory per rollout under any traffic (worst case, all 31 buckets of both windows full)",
      measured: `${fmt(w.latency.fullBytesPerRollout.at(-1) / KiB)} KiB (latencies over every sketch bin); ${fmt(w.metrics.fullBytesPerRollout.at(-1) / KiB)} KiB (+256 metric names per bucket)`,
      baseline: `after light traffic in the server: ${R.scale?.ok ? `${fmt((R.scale.value.mem2.heapUsed - R.scale.value.mem1.heapUsed) / R.scale.value.traffic.rolloutsTouched / KiB, 1)} KiB heap per rollout touched` : "—"}`,
      ratio: `growth over the last ${w.latency.fullBytesPerRollout.length - 3} full passes: ${(growth("latency") * 100).toFixed(2)}% / ${(growth("metrics") * 100).toFixed(2)}%`,
      goal: "bounded",
      result: bounded ? "met (bounded)" : "missed (still growing)",
      met: bounded,
    });
  }

  if (R.scale?.ok) {
    const s = R.scale.value;
    const floor = mmm(s.floor);
    add({
      id: "7a",
      name: "Durability: CreateRollout/s, 8 callers, each a synchronous FULL commit (the 10,000 creates)",
      measured: range(mmm(s.createChunks.length > 0 ? s.createChunks : [s.createsPerSec]), (x) => `${fmt(x)}/s`),
      baseline: `SQLite floor ${fmt(floor.median)} commits/s`,
      ratio: `${(s.createsPerSec / floor.median).toFixed(2)}× floor`,
      goal: "reported",
      result: "reported",
      met: true,
    });
    for (const c of [1, 8]) {
      const sw = mmm(s.setWeight[c]);
      // Each round's SetWeight against the same round's floor (the machine's load moves both).
      const ratio = mmm(s.setWeight[c].map((x, i) => x / s.floor[i]));
      const v = c === 8 ? verdict(ratio.median, 0.5, ">=") : undefined;
      add({
        id: c === 1 ? "7b" : "7c",
        name: `Durability: SetWeight/s on one rollout over Connect JSON (${s.setWeightClient ?? "node fetch"}), ${c} caller${c === 1 ? "" : "s"}`,
        measured: `${range(sw, (x) => `${fmt(x)}/s`)}${s.setWeightCpu === undefined ? "" : `, server CPU ${fmt(mmm(s.setWeightCpu[c]).median * 1e6)} µs per change`}`,
        baseline: `SQLite floor ${fmt(floor.median)} commits/s`,
        ratio: `${ratio.median.toFixed(2)}× floor (same-round ratios ${ratio.min.toFixed(2)}–${ratio.max.toFixed(2)})`,
        goal: c === 8 ? "≥ 0.5× floor" : "reported",
        result: v === undefined ? "reported" : v.text,
        met: v === undefined ? true : v.met,
      });
    }
  }
  if (R.durability?.ok) {
    const d = R.durability.value;
    for (const c of [1, 8]) {
      const ratio = mmm(d.head[`ratio${c}`]);
      const v = c === 8 ? verdict(ratio.median, 0.5, ">=") : undefined;
      const base = d.baseline === undefined ? "" : `; the baseline build: ${mmm(d.baseline[`ratio${c}`]).median.toFixed(2)}× (${fmt(mmm(d.baseline[c]).median)}/s)`;
      add({
        id: c === 1 ? "7d" : "7e",
        name: `Durability in the engine (no network): SetWeight/s, ${c} caller${c === 1 ? "" : "s"}, ÷ the same process's SQLite floor`,
        measured: range(mmm(d.head[c]), (x) => `${fmt(x)}/s`),
        baseline: `SQLite floor, same round${base}`,
        ratio: `${ratio.median.toFixed(2)}× floor (${ratio.min.toFixed(2)}–${ratio.max.toFixed(2)})`,
        goal: c === 8 ? "≥ 0.5× floor" : "reported",
        result: v === undefined ? "reported" : v.text,
        met: v === undefined ? true : v.met,
      });
    }
  }
  return rows;
}

/** Returns the Route section's tables: throughput by in-flight, CPU per call, latency. */
function routeSection(v, SERVERS, LEVELS) {
  const L = [];
  L.push("| server | " + LEVELS.map((l) => `${l} in flight`).join(" | ") + " |");
  L.push("|---|" + LEVELS.map(() => "---:").join("|") + "|");
  for (const s of SERVERS) {
    const cells = LEVELS.map((l) => {
      const m = mmm(v.rps[s.id][l]);
      const ratio = mmm(ratios(v.rps[s.id][l], v.rps.bare[l])).median;
      return `${fmt(m.median)} (${fmt(m.min)}–${fmt(m.max)})${s.id === "bare" ? "" : ` · ${ratio.toFixed(2)}×`}`;
    });
    L.push(`| ${s.label} | ${cells.join(" | ")} |`);
  }
  L.push("", "req/s, median (min–max) of the rounds · ratio to the bare reference in the same rounds.", "");
  const top = LEVELS.at(-1);
  L.push(`| server | CPU per call at ${top} in flight | p50 at 1 in flight | p99 at 1 in flight |`, "|---|---:|---:|---:|");
  for (const s of SERVERS) {
    const cpu = mmm(v.cpuUs[s.id]);
    const l = v.latency[s.id];
    L.push(`| ${s.label} | ${fmt(cpu.median)} µs (${fmt(cpu.min)}–${fmt(cpu.max)}) | ${range(mmm(l.p50), (x) => `${fmt(x)} µs`)} | ${range(mmm(l.p99), (x) => `${fmt(x)} µs`)} |`);
  }
  L.push("", "CPU per call: the server process's user+system CPU time (/proc) over the h2load run divided by the calls h2load completed.");
  return L;
}

/** Returns the whole RESULTS.md text. */
export function renderResults(ctx) {
  const { R, meta, rows, profiles, SERVERS, LEVELS, config } = ctx;
  const L = [];
  L.push("# rollgate benchmark results", "");
  L.push("Generated by `npm run bench` (bench/run.mjs); do not edit by hand — rerun it. What the numbers mean, how each case is built, and the analysis of what misses: [bench/README.md](README.md) and [bench/FINDINGS.md](FINDINGS.md).", "");
  L.push("| | |", "|---|---|");
  L.push(`| date | ${meta.date} |`);
  L.push(`| commit | \`${meta.commit}\`${meta.dirtyNote} |`);
  L.push(`| machine | ${meta.cpu}, ${meta.cores} cores, ${meta.memGiB} GiB RAM, Linux ${meta.kernel} |`);
  L.push(`| Node.js | ${meta.node} |`);
  L.push(`| load generator | ${meta.h2load} |`);
  L.push(`| pinning | ${meta.pinned ? "servers on core 0 (`taskset -c 0`), load generators and clients on core 1 (`taskset -c 1`)" : "NOT pinned (taskset missing or fewer than 2 cores): figures are not comparable"} |`);
  L.push(`| load average at start / end | ${meta.loadStart} / ${meta.loadEnd} (other work on the machine shows up as noise, most in p99 and in min–max spreads) |`);
  L.push(`| rounds | ${config.rounds} interleaved rounds per case: every figure is taken beside its baseline in the same round |`);
  L.push(`| duration of the run | ${meta.duration} |`);
  L.push("");
  L.push("## Targets (issue 6)", "");
  L.push("Figures are median (min–max) over the rounds; a target is judged on the median.", "");
  L.push("| # | what | measured | baseline (same run) | ratio | goal | result |", "|---|---|---|---|---|---|---|");
  const mark = (r) => (r.goal === "reported" ? "" : r.met ? "✅ " : "❌ ");
  for (const r of rows) L.push(`| ${r.id} | ${r.name} | ${r.measured} | ${r.baseline} | ${r.ratio} | ${r.goal} | ${mark(r)}${r.result} |`);
  L.push("");

  L.push("## 1. Route over gRPC against the references", "");
  if (R.route?.ok) {
    L.push("![Route throughput vs calls in flight](route-throughput.svg)", "");
    L.push(...routeSection(R.route.value, SERVERS, LEVELS), "");
  } else L.push(`Not measured: ${R.route?.error}`, "");

  L.push("## 2. Bucketing in process", "");
  if (R.bucketing?.ok) {
    const b = R.bucketing.value;
    const label = {
      bucketOf: "rollgate `bucketOf(salt, key)` (src/domain/bucketing.ts)",
      route: "rollgate `route(compileRoutes(rollout), key)` — a full decision",
      flagd: "`@openfeature/flagd-core` fractional, 2 variants (`resolveStringEvaluation`)",
    };
    L.push("| what | ns per decision | ratio to flagd |", "|---|---:|---:|");
    for (const [k, v] of Object.entries(b.rounds)) L.push(`| ${label[k] ?? k} | ${range(mmm(v), (x) => fmt(x))} | ${mmm(ratios(v, b.rounds.flagd)).median.toFixed(2)}× |`);
    L.push("", `${fmt(b.calls)} calls per round over ${fmt(b.keys)} distinct keys, after a warm-up; canary share over 20,000 keys at 5%: rollgate ${(b.canaryShare.rollgate * 100).toFixed(2)}%, flagd ${(b.canaryShare.flagd * 100).toFixed(2)}%. bucketOf was checked against the ${b.vectorsChecked} reference vectors first.`, "");
  } else L.push(`Not measured: ${R.bucketing?.error}`, "");

  L.push("## 3. RouteBatch", "");
  if (R.routeBatch?.ok) {
    const c = R.routeBatch.value;
    L.push(`| call | calls/s | keys/s |`, "|---|---:|---:|");
    for (const n of [1, 100, 1000]) L.push(`| ${n === 1 ? "Route (1 key)" : `RouteBatch ${fmt(n)} keys`} | ${range(mmm(c.callsPerSec[n]), (x) => fmt(x))} | ${range(mmm(c.callsPerSec[n].map((x) => x * n)), (x) => fmt(x))} |`);
    L.push("", `${c.clients} connections × ${c.inFlight} calls in flight each, for every call size.`, "");
  } else L.push(`Not measured: ${R.routeBatch?.error}`, "");

  L.push("## 4. Ingest", "");
  if (R.ingest?.ok) {
    const g = R.ingest.value;
    L.push("| path | outcomes/s | server CPU (share of a core) | outcomes per server CPU-second |", "|---|---:|---:|---:|");
    for (const [k, name] of [["record", `RecordOutcome (gRPC fast path), ${g.clients} connections × ${g.inFlight} in flight`], ["stream", `StreamOutcomes (connect-node), ${g.streams} streams`]]) {
      L.push(`| ${name} | ${range(mmm(g[k].perSec), (x) => fmt(x))} | ${range(mmm(g[k].cpuShare), (x) => `${(x * 100).toFixed(0)}%`)} | ${range(mmm(g[k].perCpuSec), (x) => fmt(x))} |`);
    }
    L.push("", `Gates were evaluating throughout: after the run the rollout's health was ${fmt(g.evaluation.evaluatedAgoMs)} ms old, with ${g.evaluation.samples?.canary ?? 0} canary and ${g.evaluation.samples?.stable ?? 0} stable samples in the window (${g.evaluation.gates.join(", ")}).`, "");
  } else L.push(`Not measured: ${R.ingest?.error}`, "");

  L.push("## 5. WatchHealth fan-out", "");
  if (R.watch?.ok) {
    const w = R.watch.value;
    L.push("| period | updates delivered | p50 | p99 | max |", "|---|---:|---:|---:|---:|");
    w.segments.forEach((s, i) => L.push(`| ${i + 1} of ${w.segments.length} | ${fmt(s.updates)} | ${s.p50Ms.toFixed(1)} ms | ${s.p99Ms.toFixed(1)} ms | ${s.maxMs.toFixed(1)} ms |`));
    L.push(`| whole run | ${fmt(w.all.updates)} | ${w.all.p50Ms.toFixed(1)} ms | ${w.all.p99Ms.toFixed(1)} ms | ${w.all.maxMs.toFixed(1)} ms |`);
    L.push("", `${fmt(w.subscribed)} WatchHealth streams (10 per rollout) over ${w.connections} HTTP/2 connections; delay = arrival time at the client − \`health.evaluated_at\`. Server RSS ${fmt(w.rssBefore / MiB)} MiB before the subscribers, ${fmt(w.rssWith / MiB)} MiB (peak) with them; server CPU ${(w.cpuShare * 100).toFixed(0)}% of a core during the run.`, "");
  } else L.push(`Not measured: ${R.watch?.error}`, "");

  L.push("## 6. Scale: 10,000 rollouts", "");
  if (R.scale?.ok) {
    const s = R.scale.value;
    L.push("| | value |", "|---|---|");
    L.push(`| server CPU idle, per ${config.idleSeconds / config.rounds} s period | ${s.idle.map((x) => `${(x * 100).toFixed(1)}%`).join(", ")} |`);
    L.push(`| server CPU with light traffic (${s.traffic.rate} RecordOutcome calls/s × ${s.traffic.perCall} outcomes, round robin over all rollouts) | ${s.busy.map((x) => `${(x * 100).toFixed(1)}%`).join(", ")} |`);
    L.push(`| heap used after GC: empty → 10,000 idle rollouts → after traffic | ${fmt(s.mem0.heapUsed / MiB, 1)} → ${fmt(s.mem1.heapUsed / MiB, 1)} → ${fmt(s.mem2.heapUsed / MiB, 1)} MiB |`);
    L.push(`| RSS: empty → 10,000 idle rollouts → after traffic | ${fmt(s.mem0.rss / MiB, 1)} → ${fmt(s.rss1 / MiB, 1)} → ${fmt(s.rss2 / MiB, 1)} MiB |`);
    L.push(`| traffic sent | ${fmt(s.traffic.calls)} calls, ${fmt(s.traffic.outcomes)} outcomes to ${fmt(s.traffic.rolloutsTouched)} rollouts, latencies log-uniform over 1 µs..10⁸ ms |`);
    L.push(`| creating the rollouts | ${fmt(s.createSeconds, 1)} s, server CPU ${(s.createCpu * 100).toFixed(0)}% of a core |`);
    L.push("");
  } else L.push(`Not measured: ${R.scale?.error}`, "");
  if (R.windowBound?.ok) {
    const w = R.windowBound.value;
    L.push("Worst case of one rollout's two windows, in process on a simulated clock (5-minute window, 10 s interval: 30 + 1 buckets each), every bucket fed 2,000 outcomes whose latencies hit every sketch bin, then fed again three more times:", "");
    L.push("| traffic | idle | after pass 1 | 2 | 3 | 4 |", "|---|---:|---:|---:|---:|---:|");
    for (const mode of ["latency", "metrics"]) {
      const x = w[mode];
      L.push(`| ${mode === "latency" ? "latencies only" : "latencies + 256 metric names per bucket"} | ${fmt(x.idleBytesPerRollout)} B | ${x.fullBytesPerRollout.map((b) => `${fmt(b / KiB)} KiB`).join(" | ")} |`);
    }
    L.push("");
  }

  L.push("## 7. Durability cost", "");
  if (R.scale?.ok) {
    const s = R.scale.value;
    L.push("| mutation | per second |", "|---|---:|");
    L.push(`| CreateRollout, 8 callers (each third of the 10,000) | ${s.createChunks.map((x) => fmt(x)).join(", ")} |`);
    L.push(`| SetWeight on one rollout, 1 caller | ${range(mmm(s.setWeight[1]), (x) => fmt(x))} |`);
    L.push(`| SetWeight on one rollout, 8 callers | ${range(mmm(s.setWeight[8]), (x) => fmt(x))} |`);
    L.push(`| floor: better-sqlite3 alone, WAL + synchronous FULL, one 2-row transaction per commit | ${range(mmm(s.floor), (x) => fmt(x))} |`);
    L.push("", "Every mutation is committed (synchronous FULL) with its audit event before the RPC answers; the engine runs changes one at a time, so more callers only overlap the HTTP and JSON work around the commit.", "");
  } else L.push(`Not measured: ${R.scale?.error}`, "");

  L.push("## Profiles", "");
  L.push("Taken with `node --cpu-prof` on the server during the load (samples outside the load window dropped), self time per function and per area of code. The Route profile is taken on every run; the others only when their target is missed.", "");
  for (const p of profiles) {
    if (p.error !== undefined) L.push(`**${p.title}** — profile failed: ${p.error}`, "");
    else L.push(...profileMarkdown(p.title, p.summary), "");
  }

  L.push("## Exact commands", "");
  L.push("```sh");
  L.push("npm ci            # installs, and builds dist/ (prepare: tsc -b)");
  L.push("npm run bench     # node bench/run.mjs: runs `npx tsc -b`, installs h2load (apt-get install -y nghttp2-client) if missing, then everything below");
  for (const [name, c] of Object.entries(meta.commands)) {
    L.push(`# ${name}`);
    for (const line of c) L.push(line);
  }
  L.push("```", "");
  if (meta.errors.length > 0) {
    L.push("## Errors", "");
    for (const e of meta.errors) L.push(`- ${e}`);
    L.push("");
  }
  return L.join("\n");
}
