#!/usr/bin/env node
// What blocked the soak's server's event loop: reads the stalls and GC pauses recorded by
// bench/soak/longtasks.mjs and the server's --cpu-prof profile, and for every stall says what
// the profile's samples in it were running, by category (window flush, evaluation, health
// fan-out, control-plane commit, GC, request handling...) and by function (self time).
// Usage: node bench/soak/long-tasks-report.mjs <long-tasks.json> <server.cpuprofile> [--from-s N]
import { readFileSync } from "node:fs";

const [tasksFile, profFile, ...rest] = process.argv.slice(2);
const fromS = rest[0] === "--from-s" ? Number(rest[1]) : 0;
const { stalls, gcs, limitUs } = JSON.parse(readFileSync(tasksFile, "utf8"));
const prof = JSON.parse(readFileSync(profFile, "utf8"));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const times = [];
let t = prof.startTime;
for (const d of prof.timeDeltas) times.push((t += d));
const t0 = prof.startTime;

/** The categories, first match from the top of the stack (innermost) outwards. */
const CATEGORIES = [
  ["GC", (f) => f.functionName === "(garbage collector)"],
  ["window flush (SQLite)", (f) => /flushTx|flushWindows|flushOnce/.test(f.functionName)],
  ["control-plane commit (SQLite)", (f) => /sqlite-store/.test(f.url) && !/flush/.test(f.functionName)],
  ["evaluation", (f) => /evaluateEntry|preview|evaluate\b|analy/.test(f.functionName) || /domain\/(analysis|gates|sequential)/.test(f.url)],
  ["health fan-out", (f) => /publishHealth|fan-out|encodeHealth/.test(f.functionName) || /fan-out/.test(f.url)],
  ["metrics scrape", (f) => /prom-client/.test(f.url)],
  ["probe (forced GC)", (f) => /probe\.mjs/.test(f.url)],
  ["RecordOutcome decode + validate", (f) => /protobuf\/dist\/esm\/(from-binary|reflect|create|wire)/.test(f.url) || /validateOutcomes|outcomeFromProto|decodeOutcome/.test(f.functionName)],
  ["RecordOutcome ingest (windows)", (f) => /recordOutcomes|ingest|latency-sketch|sliding-window/.test(f.functionName + f.url)],
  ["Route", (f) => /route/i.test(f.functionName) && /src\//.test(f.url)],
  ["gRPC fast path (rollgate)", (f) => /grpc-fast-path|one-port|hot-method|wire-encoding/.test(f.url)],
  ["node:http2 (per stream)", (f) => /internal\/http2/.test(f.url)],
];
const stackOf = (id) => {
  const s = [];
  for (let x = id; x !== undefined; x = parent.get(x)) s.push(byId.get(x).callFrame);
  return s; // innermost first
};
const categoryOf = (id) => {
  const s = stackOf(id);
  for (const [name, test] of CATEGORIES) if (s.some(test)) return name;
  const f = s[0];
  if (f.functionName === "(idle)") return "(idle)";
  if (f.functionName === "(program)") return "(program: native, outside JS)";
  const outer = s.at(-2); // below (root)
  return `other: ${outer?.functionName || "(anonymous)"} ${(outer?.url ?? "").split("/").slice(-2).join("/")}`;
};
const fnName = (id) => {
  const f = byId.get(id).callFrame;
  return `${f.functionName || "(anonymous)"} ${f.url.split("/").slice(-2).join("/")}:${f.lineNumber + 1}`;
};

// The profiler's nominal interval: a sample every this many µs while the thread runs. On a loaded
// machine a stall's wall time includes time the process was not running at all (no samples);
// its samples x the interval is about the CPU time it held the loop for, what it would take on
// an idle machine.
const interval = [...prof.timeDeltas].sort((a, b) => a - b)[prof.timeDeltas.length >> 1];
const mine = stalls.filter((s) => s.fromUs >= t0 + fromS * 1e6 && s.toUs <= prof.endTime);
const byCat = new Map();
const bySelf = new Map();
const dominant = new Map();
let i = 0;
const rows = [];
for (const s of mine) {
  while (i < times.length && times[i] < s.fromUs) i++;
  const cats = new Map();
  let busy = 0;
  for (let j = i; j < times.length && times[j] <= s.toUs; j++) {
    if (byId.get(prof.samples[j]).callFrame.functionName !== "(idle)") busy++;
    const dt = (times[j + 1] ?? times[j]) - times[j];
    const c = categoryOf(prof.samples[j]);
    cats.set(c, (cats.get(c) ?? 0) + dt);
    byCat.set(c, (byCat.get(c) ?? 0) + dt);
    const fn = fnName(prof.samples[j]);
    bySelf.set(fn, (bySelf.get(fn) ?? 0) + dt);
  }
  const gc = gcs.filter((g) => g.atUs >= s.fromUs && g.atUs < s.toUs).reduce((a, g) => a + g.us, 0);
  const top = [...cats].sort((a, b) => b[1] - a[1]);
  const d = top[0]?.[0] ?? "(no samples)";
  const e = dominant.get(d) ?? { n: 0, us: 0, max: 0 };
  const dur = s.toUs - s.fromUs;
  dominant.set(d, { n: e.n + 1, us: e.us + dur, max: Math.max(e.max, dur) });
  rows.push({ atS: (s.fromUs - t0) / 1e6, ms: dur / 1000, cpuMs: (busy * interval) / 1000, dominant: d, gcMs: gc / 1000, top: top.slice(0, 3).map(([c, us]) => `${c} ${(us / 1000).toFixed(1)}`).join(", ") });
}
const spanS = (prof.endTime - t0) / 1e6 - fromS;
const total = mine.reduce((a, s) => a + s.toUs - s.fromUs, 0);
const ms = (us) => (us / 1000).toFixed(1);
console.log(`stalls > ${limitUs / 1000} ms: ${mine.length} in ${spanS.toFixed(0)} s (${(mine.length / spanS).toFixed(2)}/s), ${ms(total)} ms in all; durations p50 ${ms(q(0.5))} p90 ${ms(q(0.9))} max ${ms(q(1))} ms`);
function q(p) {
  const v = mine.map((s) => s.toUs - s.fromUs).sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.ceil(p * v.length) - 1)] ?? 0;
}
const gcIn = gcs.filter((g) => g.atUs >= t0 + fromS * 1e6);
const gcBy = {};
for (const g of gcIn) {
  const e = (gcBy[g.kind] ??= { n: 0, us: 0, max: 0, over20: 0 });
  e.n++;
  e.us += g.us;
  e.max = Math.max(e.max, g.us);
  if (g.us > 20_000) e.over20++;
}
console.log(`GC pauses: ${Object.entries(gcBy).map(([k, e]) => `${k} ${e.n} (${ms(e.us)} ms, max ${ms(e.max)} ms, ${e.over20} over 20 ms)`).join("; ")}`);
console.log("\nstalls by dominant category (count, total ms, max ms):");
for (const [c, e] of [...dominant].sort((a, b) => b[1].us - a[1].us)) console.log(`  ${c}: ${e.n}, ${ms(e.us)}, ${ms(e.max)}`);
console.log("\nprofile samples inside stalls, by category (ms):");
for (const [c, us] of [...byCat].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${c}: ${ms(us)}`);
console.log("\nself time inside stalls, top functions (ms):");
for (const [f, us] of [...bySelf].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`  ${ms(us)}  ${f}`);
console.log(`\nstalls by their CPU content (busy samples x ${interval} µs), the part a loaded machine does not add:`);
for (const lim of [10, 20, 40]) {
  const over = rows.filter((r) => r.cpuMs > lim);
  const by = {};
  for (const r of over) by[r.dominant] = (by[r.dominant] ?? 0) + 1;
  console.log(`  over ${lim} ms: ${over.length} (${(over.length / spanS).toFixed(2)}/s): ${Object.entries(by).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ")}`);
}
console.log("\nlongest stalls by CPU content:");
for (const r of [...rows].sort((a, b) => b.cpuMs - a.cpuMs).slice(0, 15)) console.log(`  t=${r.atS.toFixed(2)}s ${r.cpuMs.toFixed(0)} ms CPU in ${r.ms.toFixed(1)} ms (GC ${r.gcMs.toFixed(1)}): ${r.top}`);
console.log("\nlongest stalls:");
for (const r of rows.sort((a, b) => b.ms - a.ms).slice(0, 25)) console.log(`  t=${r.atS.toFixed(2)}s ${r.ms.toFixed(1)} ms (GC ${r.gcMs.toFixed(1)}): ${r.top}`);

// Whole-run shares by category (not only inside stalls): ms per second of the run.
{
  const all = new Map();
  let span = 0;
  for (let j = 0; j < times.length - 1; j++) {
    if (times[j] < t0 + fromS * 1e6) continue;
    const dt = times[j + 1] - times[j];
    span += dt;
    const c = categoryOf(prof.samples[j]);
    all.set(c, (all.get(c) ?? 0) + dt);
  }
  console.log("\nwhole run after --from-s, by category (ms per s of the run, share):");
  for (const [c, us] of [...all].sort((a, b) => b[1] - a[1]).slice(0, 16)) console.log(`  ${c}: ${(us / 1000 / (span / 1e6)).toFixed(1)} ms/s, ${((us / span) * 100).toFixed(1)}%`);
}
