#!/usr/bin/env node
// The benchmark suite of issue 6: `npm run bench`. Builds dist/ if needed, installs h2load if
// missing, starts its own servers on free loopback ports pinned to core 0, drives them from
// core 1, runs every case in interleaved rounds beside its baseline, profiles what misses,
// and rewrites bench/RESULTS.md, bench/results.json and bench/route-throughput.svg.
//
// Flags: --quick   one short round of everything, printed only (RESULTS.md left alone)
//        --only=route,bucketing,batch,ingest,watch,scale,merge,durability,local,ofrep,otel,replicas,connect,sequential   a subset, printed only
//        --otel-baseline=<tree>   with --only=otel: also a server from <tree>/dist (another build)
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { basename, join } from "node:path";
import { bucketingCase } from "./cases/bucketing.mjs";
import { connectCase } from "./cases/connect.mjs";
import { ingestCase } from "./cases/ingest.mjs";
import { localMemoryCase, localRouteCase, propagationCase } from "./cases/local.mjs";
import { durabilityCase } from "./cases/durability.mjs";
import { mergeCase } from "./cases/merge.mjs";
import { ofrepCase } from "./cases/ofrep.mjs";
import { replicasCase } from "./cases/replicas.mjs";
import { otelCase } from "./cases/otel.mjs";
import { sequentialCase } from "./cases/sequential.mjs";
import { LEVELS, routeBatchCase, routeCase, SERVERS } from "./cases/route.mjs";
import { scaleCase, windowBoundCase } from "./cases/scale.mjs";
import { watchCase } from "./cases/watch.mjs";
import { ensureH2load } from "./lib/h2load.mjs";
import { profiles as runProfiles } from "./lib/profiles.mjs";
import { renderResults, targets } from "./lib/report.mjs";
import { lineChart } from "./lib/svg.mjs";
import { benchDir, CLIENT_CORE, cliPath, exists, mmm, pinned, repoRoot } from "./lib/util.mjs";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const onlyArg = argv.find((a) => a.startsWith("--only="));
const only = onlyArg === undefined ? undefined : new Set(onlyArg.slice(7).split(","));
const partial = quick || only !== undefined;
const started = Date.now();
const log = (s) => process.stdout.write(`${s}\n`);

const config = quick
  ? { rounds: 1, routeSeconds: 0.5, batchSeconds: 0.5, ingestSeconds: 1, watchSeconds: 3, idleSeconds: 10, trafficSeconds: 5, trafficRate: 200, bucketingCalls: 100_000 }
  : { rounds: 3, routeSeconds: 1, batchSeconds: 1.5, ingestSeconds: 2, watchSeconds: 9, idleSeconds: 30, trafficSeconds: 15, trafficRate: 200, bucketingCalls: 300_000 };

// This process only orchestrates and runs clients: keep it off the servers' core.
if (pinned) {
  try {
    execFileSync("taskset", ["-cp", String(CLIENT_CORE), String(process.pid)], { stdio: "ignore" });
  } catch {
    /* not fatal: every load generator is pinned on its own */
  }
}

// Build: tsc -b is incremental, so this is quick when dist/ is fresh.
log("building dist/ (npx tsc -b)…");
const build = spawnSync("npx", ["tsc", "-b"], { cwd: repoRoot, stdio: "inherit" });
if (build.status !== 0) {
  if (!exists(cliPath)) {
    log("build failed and dist/ is missing: fix the build (npm run build) and rerun");
    process.exit(1);
  }
  log("warning: build failed; benchmarking the dist/ already there");
}
try {
  log(ensureH2load(log));
} catch (e) {
  log(`cannot run: ${e.message}`);
  process.exit(1);
}

const dir = mkdtempSync(join(tmpdir(), "rollgate-bench-bodies-"));
process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
const sh = (cmd, args) => {
  try {
    return execFileSync(cmd, args, { cwd: repoRoot, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "";
  }
};
const dirty = sh("git", ["status", "--porcelain"]);
const dirtySrc = dirty.split("\n").filter((l) => / (src|gen|proto)\//.test(l)).length;
const meta = {
  date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
  commit: `${sh("git", ["rev-parse", "--short", "HEAD"]) || "unknown"}${dirty === "" ? "" : "-dirty"}`,
  dirtyNote: dirty === "" ? "" : ` (uncommitted changes in the tree${dirtySrc > 0 ? `, ${dirtySrc} of them under src/, gen/ or proto/: dist/ was built from them` : ", none under src/, gen/ or proto/"})`,
  cpu: (/model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? cpus()[0]?.model ?? "unknown").trim(),
  cores: cpus().length,
  memGiB: Math.round(totalmem() / 2 ** 30),
  kernel: release(),
  node: process.version,
  h2load: sh("h2load", ["--version"]).split("\n")[0] || "h2load",
  pinned,
  loadStart: loadavg().map((x) => x.toFixed(2)).join(" "),
  commands: {},
  errors: [],
};
log(`rollgate bench: ${meta.commit}, ${meta.cpu}, ${meta.cores} cores, Node ${meta.node}, load ${meta.loadStart}${quick ? " (quick)" : ""}`);

const R = {};
/** In RESULTS.md, the line after which the sections of partial runs begin; a full run keeps them. */
const PARTIAL_MARKER = "<!-- Sections below come from partial runs (--only=…), each with its own date, commit and commands; a full run keeps them. -->";
async function runCase(key, title, fn) {
  if (only !== undefined && !only.has(key) && !(key === "windowBound" && only.has("scale")) && !(key.startsWith("local") && only.has("local")) && !(key === "routeBatch" && only.has("batch"))) return;
  log(`\n== ${title}`);
  const t0 = Date.now();
  try {
    const value = await fn();
    R[key] = { ok: true, value };
    if (value.commands !== undefined) meta.commands[title] = value.commands;
    if (value.command !== undefined) meta.commands[title] = [value.command];
  } catch (e) {
    R[key] = { ok: false, error: e.message.split("\n")[0] };
    meta.errors.push(`${title}: ${e.message.split("\n").slice(0, 3).join(" ")}`);
    log(`  FAILED: ${e.message}`);
  }
  log(`  (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
}

const { rounds } = config;
await runCase("route", "1. Route over gRPC vs references", () => routeCase({ dir, seconds: config.routeSeconds, rounds, log }));
await runCase("bucketing", "2. Bucketing in process", () => bucketingCase({ rounds: Math.max(rounds, 3), calls: config.bucketingCalls, log }));
await runCase("routeBatch", "3. RouteBatch vs Route", () => routeBatchCase({ dir, seconds: config.batchSeconds, rounds, log }));
await runCase("ingest", "4. Ingest", () => ingestCase({ dir, seconds: config.ingestSeconds, rounds, log }));
await runCase("watch", "5. WatchHealth fan-out", () => watchCase({ seconds: config.watchSeconds, rounds: Math.max(rounds, 3), log }));
await runCase("scale", "6-7. Scale and durability", () =>
  scaleCase({ idleSeconds: config.idleSeconds, trafficSeconds: config.trafficSeconds, rounds: Math.max(rounds, 3), trafficRate: config.trafficRate, log }),
);
await runCase("windowBound", "6. Window memory bound", () => windowBoundCase({ log }));
await runCase("durability", "7. Durable changes in the engine vs the SQLite floor", () => durabilityCase({ rounds: Math.max(rounds, 3), seconds: quick ? 1 : 2, log }));
await runCase("merge", "6. Health merge: closed-bucket cache vs every bucket", () => mergeCase({ rounds: Math.max(rounds, 5) * 2, calls: quick ? 500 : 2000, log }));
await runCase("local", "8. Local evaluation: decisions", () => localRouteCase({ rounds: Math.max(rounds, 3), calls: config.bucketingCalls * 3, remoteSeconds: config.routeSeconds, log }));
await runCase("localMemory", "8. Local evaluation: client memory", () => localMemoryCase({ log }));
await runCase("localPropagation", "8. Local evaluation: WatchRoutes propagation", () =>
  propagationCase({ seconds: config.watchSeconds, rounds: Math.max(rounds, 3), rate: 5, log }),
);

// Issue 14: reported, no target; only with --only=ofrep (the full run and its tables stay as they were).
if (only?.has("ofrep")) await runCase("ofrep", "9. OFREP vs Route", () => ofrepCase({ dir, seconds: config.routeSeconds, rounds, log }));
// Issue 15: reported, no target; only with --only=otel. Many short rounds: the differences are small.
const otelBaseline = argv.find((a) => a.startsWith("--otel-baseline="))?.slice(16);
if (only?.has("otel")) {
  await runCase("otel", "10. Route with OpenTelemetry tracing off and on", () =>
    otelCase({
      dir,
      seconds: config.routeSeconds,
      rounds: quick ? 1 : 12,
      log,
      ...(otelBaseline === undefined ? {} : { baseline: { tree: otelBaseline, label: basename(otelBaseline) } }),
    }),
  );
}
// Issue 12: reported, no target; only with --only=replicas (starts its own PostgreSQL).
if (only?.has("replicas")) await runCase("replicas", "10. Several replicas on PostgreSQL", () => replicasCase({ dir, seconds: config.routeSeconds, rounds, log }));
// Issue 17: the Connect fast path and gRPC Route beside the bare node:http and node:http2
// servers; only with --only=connect (figures appended to RESULTS.md by hand, as ofrep's are).
if (only?.has("connect")) await runCase("connect", "10. Connect protocol and gRPC Route vs bare node", () => connectCase({ dir, seconds: config.routeSeconds * 2, rounds: Math.max(rounds, 5), log }));
// Issue 18: reported, no target; only with --only=sequential.
if (only?.has("sequential")) await runCase("sequential", "10. Sequential error-rate gate: cost per evaluation and state", () => sequentialCase({ rounds: Math.max(rounds, 5), log }));

const rows = targets(R);
log("\n== profiles");
// A run of the local-evaluation cases only profiles nothing: the other targets were not measured.
const localOnly = only !== undefined && [...only].every((k) => k.startsWith("local") || ["ofrep", "otel", "replicas", "connect", "sequential"].includes(k));
const profiles = localOnly ? [] : await runProfiles({ R, rows, dir, log, quick });

meta.loadEnd = loadavg().map((x) => x.toFixed(2)).join(" ");
const secs = Math.round((Date.now() - started) / 1000);
meta.duration = `${Math.floor(secs / 60)} min ${secs % 60} s`;

log("\n== targets");
for (const r of rows) log(`${r.goal === "reported" ? "INFO  " : r.met ? "MET   " : "MISSED"} ${r.id.padEnd(3)} ${r.name}: ${r.measured} | baseline ${r.baseline} | ${r.ratio} | goal ${r.goal} | ${r.result}`);
log(`\ntotal ${meta.duration}`);

if (partial) {
  log("\n(--quick/--only: RESULTS.md, results.json and the plot were left as they were)");
} else {
  if (R.route?.ok) {
    const svg = lineChart({
      title: "Route over gRPC: throughput vs calls in flight",
      subtitle: `${meta.date.slice(0, 10)} · ${meta.commit} · server on core 0, h2load on core 1 · median and min–max of ${rounds} rounds`,
      xLabel: "calls in flight (h2load: -c min(4,n) -m n/min(4,n))",
      yLabel: "requests per second",
      series: SERVERS.map((s) => ({
        label: s.label,
        points: LEVELS.map((l) => ({ x: l, ...mmm(R.route.value.rps[s.id][l]) })),
      })),
    });
    writeFileSync(join(benchDir, "route-throughput.svg"), svg);
  }
  writeFileSync(join(benchDir, "results.json"), JSON.stringify({ meta, config, results: R, targets: rows }, null, 1) + "\n");
  // The sections partial runs added (below the marker) are kept: a full run does not measure them.
  const old = exists(join(benchDir, "RESULTS.md")) ? readFileSync(join(benchDir, "RESULTS.md"), "utf8") : "";
  const at = old.indexOf(PARTIAL_MARKER);
  const kept = at < 0 ? "" : `\n${old.slice(at)}`;
  writeFileSync(join(benchDir, "RESULTS.md"), renderResults({ R, meta, rows, profiles, SERVERS, LEVELS, config }) + kept);
  log("wrote bench/RESULTS.md, bench/results.json, bench/route-throughput.svg");
}
process.exit(meta.errors.length > 0 ? 1 : 0);
