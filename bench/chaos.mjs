#!/usr/bin/env node
// Repeated crashes (issue 16, point 2): `npm run chaos [-- --crashes 20 --seed 1]`. Under the
// soak's mixed load (bench/soak/load.mjs), the server (pinned to core 0, SQLite in a temporary
// directory) is killed with SIGKILL at `crashes` random moments (seeded: 2 to 6 s after each
// start, by default) and restarted each time on the same database and port. The load generator
// logs every control-plane change the server acknowledged, with the version it returned.
//
// Checked:
//   - after every crash, before the restart: `PRAGMA integrity_check` of the database as the
//     crash left it (with its WAL) is "ok";
//   - after the last restart: every acknowledged change is in the audit log (an event of that
//     rollout whose snapshot has the acknowledged version, weight and paused flag), every
//     acknowledged deletion holds (the rollout is gone, its deletion audited), no rollout is
//     older than its last acknowledged version, and `rollgate events --verify` checks the whole
//     hash chain;
//   - outcomes lost per crash: a ledger rollout (1 h window, no gates) gets 1,000 outcomes/s
//     besides the load; loss = what its window held when the server died (what it held after
//     the previous restart + what was acknowledged since) - what it holds after the restart,
//     in outcomes and in seconds of that traffic. Window buckets are flushed every 1 s
//     (src/server/server.ts, flushMs), so a crash should lose at most about the last second.
//
// Flags: --crashes 20 --seed 1 --min-up 2s --max-up 6s --json --no-write --no-build
//        --route-rate 5000 --outcome-rate 50000 --watch-health 200 --watch-routes 10 --churn-rate 4
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchDir } from "./lib/util.mjs";
import { startLedger } from "./soak/ledger.mjs";
import {
  build,
  cliPath,
  connectJson,
  createRollout,
  freePort,
  machine,
  median,
  parseDuration,
  loadOptionsOf,
  parseFlags,
  pinSelf,
  quantileOf,
  repoRoot,
  sleep,
  startLoad,
  startServer,
  stopServer,
} from "./soak/harness.mjs";

const flags = parseFlags(process.argv.slice(2));
const crashes = Number(flags.crashes ?? 20);
const seedArg = Number(flags.seed ?? 1);
const minUp = parseDuration(flags["min-up"] ?? "2s");
const maxUp = parseDuration(flags["max-up"] ?? "6s");
const num = (v, d) => (v === undefined ? d : Number(v));
const load = loadOptionsOf(flags);
const log = (s) => process.stderr.write(`${s}\n`);
let seed = seedArg >>> 0 || 1;
const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);
const Database = createRequire(import.meta.url)("better-sqlite3");

/** Returns PRAGMA integrity_check of a database file ("ok" when sound). */
function integrity(db) {
  const d = new Database(db, { readonly: false, fileMustExist: true });
  try {
    return d.pragma("integrity_check", { simple: true });
  } finally {
    d.close();
  }
}

/** Returns the stable samples the ledger rollout's window holds. */
async function ledgerHeld(port) {
  const r = await connectJson(port, "rollgate.v1.DecisionService/Health", { rollout: "ledger" });
  return Number(r.health?.samples?.stable ?? 0);
}

/** Returns every audit event (all rollouts), paged. */
async function allEvents(port) {
  const out = [];
  let after = "0";
  for (;;) {
    const r = await connectJson(port, "rollgate.v1.RolloutService/ListEvents", { afterSeq: after, limit: 1000 });
    const page = r.events ?? [];
    out.push(...page);
    if (page.length < 1000) return out;
    after = page.at(-1).seq;
  }
}

pinSelf();
build(flags["no-build"] === true);
const before = machine();
const dir = mkdtempSync(join(tmpdir(), "rollgate-chaos-"));
const db = join(dir, "rollgate.db");
const changeLog = join(dir, "changes.jsonl");
writeFileSync(changeLog, "");
const port = await freePort();
let server = await startServer({ db, port });
const rollouts = ["soak-0", "soak-1", "soak-2", "soak-3"];
for (const r of rollouts) await createRollout(port, r);
await connectJson(port, "rollgate.v1.RolloutService/CreateRollout", {
  rollout: { name: "ledger", stableVersion: "v1", canaryVersion: "v2", analysis: { interval: "10s", window: "3600s", autoPromote: false } },
  reason: "chaos ledger",
});
log(`chaos: ${crashes} crashes, seed ${seedArg}, port ${port}, database ${db}`);

const gen = startLoad({ port, seconds: 3600, rollouts, changeLog, ...load });
const ledger = startLedger({ port, rollout: "ledger" });
const crashLog = [];
let heldAfterRestart = 0;
let ackedAtRestart = 0;
let integrityFailures = 0;
const restartMs = [];
const unstable = [];
for (let i = 1; i <= crashes; i++) {
  const upFor = minUp + rnd() * (maxUp - minUp);
  await sleep(upFor * 1000);
  // The moment of the crash: what the ledger had acknowledged is what the window must hold.
  const ackedNow = ledger.acked();
  server.child.kill("SIGKILL");
  await server.exited;
  ledger.pause();
  // Every answer that reached this process before the connection died counts as acknowledged.
  await ledger.settled();
  const sinceRestart = ledger.acked() - ackedAtRestart;
  const heldAtCrash = heldAfterRestart + sinceRestart;
  const check = integrity(db);
  if (check !== "ok") integrityFailures++;
  const t = Date.now();
  server = await startServer({ db, port });
  restartMs.push(Date.now() - t);
  const held = await ledgerHeld(port);
  // Read again a moment later (nothing is sent meanwhile): the restored window must not move.
  await sleep(300);
  const heldAgain = await ledgerHeld(port);
  if (heldAgain !== held) unstable.push({ crash: i, held, heldAgain });
  const lost = heldAtCrash - held;
  crashLog.push({ crash: i, upSeconds: Number(upFor.toFixed(2)), heldAtCrash, held, lost, lostSeconds: lost / ledger.perSecond, integrity: check, lateAcks: ledger.acked() - ackedNow });
  log(`crash ${i}: up ${upFor.toFixed(1)} s; ledger held ${heldAtCrash} → ${held} after restart (lost ${lost} = ${(lost / ledger.perSecond).toFixed(2)} s); integrity ${check}; restart ${restartMs.at(-1)} ms`);
  heldAfterRestart = held;
  ackedAtRestart = ledger.acked();
  ledger.resume();
}
await sleep(3000);
ledger.stop();
const final = await gen.finish();

// --- Verify every acknowledged change ------------------------------------------------------------
const changes = readFileSync(changeLog, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
const acked = changes.filter((c) => c.acked);
const events = await allEvents(port);
const byRollout = new Map();
for (const e of events) {
  let list = byRollout.get(e.rollout);
  if (list === undefined) byRollout.set(e.rollout, (list = []));
  list.push({ ...e, snap: JSON.parse(e.snapshot ?? "{}") });
}
const missing = [];
const lastAcked = new Map();
for (const c of acked) {
  const evs = byRollout.get(c.rollout) ?? [];
  if (c.op === "delete") {
    if (!evs.some((e) => e.type === "EVENT_TYPE_DELETED")) missing.push({ ...c, why: "no deletion event" });
    lastAcked.set(c.rollout, c);
    continue;
  }
  const found = evs.some((e) => e.snap.version === c.version && e.snap.weight_bp === c.weightBp && e.snap.paused === c.paused);
  if (!found) missing.push({ ...c, why: `no event with version ${c.version}, weight ${c.weightBp}, paused ${c.paused}` });
  lastAcked.set(c.rollout, c);
}
const stale = [];
for (const [name, c] of lastAcked) {
  let current;
  try {
    current = (await connectJson(port, "rollgate.v1.RolloutService/GetRollout", { name })).rollout;
  } catch (e) {
    if (!/HTTP 404/.test(e.message)) throw e;
  }
  if (c.op === "delete") {
    // A later create of the same name never happens (names are unique per run).
    if (current !== undefined) stale.push({ rollout: name, why: "deleted (acknowledged) but present" });
  } else if (current === undefined) {
    // Only an unacknowledged delete after the last acknowledged change may have removed it.
    const laterDelete = changes.some((x) => x.rollout === name && x.op === "delete" && !x.acked && x.at >= c.at);
    if (!laterDelete) stale.push({ rollout: name, why: "gone without an acknowledged delete" });
  } else if (Number(current.version) < c.version) {
    stale.push({ rollout: name, why: `version ${current.version} older than acknowledged ${c.version}` });
  } else if (Number(current.version) === c.version && ((current.weightBp ?? 0) !== c.weightBp || (current.paused === true) !== c.paused)) {
    stale.push({ rollout: name, why: `version ${c.version} but weight ${current.weightBp} paused ${current.paused}` });
  }
}
let verify;
try {
  verify = JSON.parse(execFileSync(process.execPath, [cliPath, "--server", `127.0.0.1:${port}`, "events", "--verify", "-o", "json"], { encoding: "utf8", cwd: repoRoot }));
} catch (e) {
  verify = { ok: false, problem: String(e.stdout ?? e.message).slice(0, 500) };
}
await stopServer(server);
const finalIntegrity = integrity(db);
rmSync(dir, { recursive: true, force: true });

const lostSeconds = crashLog.map((c) => c.lostSeconds);
const result = {
  ...before,
  loadavgAfter: machine().loadavg,
  command: `npm run chaos -- --crashes ${crashes} --seed ${seedArg}`,
  crashes,
  seed: seedArg,
  load,
  changes: { attempted: changes.length, acked: acked.length, unacked: changes.length - acked.length, byOp: final.changes.byOp },
  events: events.length,
  missing,
  stale,
  unstable,
  verify,
  integrity: { afterEachCrash: crashLog.map((c) => c.integrity), failures: integrityFailures, final: finalIntegrity },
  loss: {
    perCrash: crashLog,
    secondsMin: Math.min(...lostSeconds),
    secondsMedian: median(lostSeconds),
    secondsP90: quantileOf(lostSeconds, 0.9),
    secondsMax: Math.max(...lostSeconds),
    ledgerPerSecond: ledger.perSecond,
  },
  restartMs: { median: median(restartMs), max: Math.max(...restartMs) },
  load_totals: { routes: final.route.ok, outcomes: final.outcomes.acked, reconnects: final.reconnects, failedWhileDown: { route: final.route.down, outcomes: final.outcomes.down, changes: final.changes.down }, errorsWhileUp: { route: final.route.err, outcomes: final.outcomes.err, changes: final.changes.err, health: final.health.err, routes: final.routes.err }, lastErrors: [final.route, final.outcomes, final.changes, final.health, final.routes].map((s) => s.lastError).filter(Boolean) },
};
result.pass = {
  changes: missing.length === 0 && stale.length === 0 && acked.length > 0,
  restore: unstable.length === 0,
  chain: verify.ok === true,
  integrity: integrityFailures === 0 && finalIntegrity === "ok",
  loss: result.loss.secondsMax <= 1.5,
};
result.passed = Object.values(result.pass).every(Boolean);

const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : "n/a");
if (flags["no-write"] !== true) {
  const md = `# Chaos (repeated crashes) — last recorded run

\`npm run chaos\` (\`bench/chaos.mjs\`; the load is the soak's, \`bench/soak/load.mjs\`); what it checks is in the script's header.
Short version in \`npm test\`: \`test/reliability/soak-chaos.test.ts\` (3 crashes).

| | |
|---|---|
| date | ${result.date} |
| commit | ${result.commit} |
| command | \`${result.command}\` |
| load average (1, 5, 15 min) before / after | ${result.loadavg.join(", ")} / ${result.loadavgAfter.join(", ")} (2 cores shared with other work) |
| load | Route ${load.routeRate}/s, ${load.outcomeRate} outcomes/s, ${load.watchHealth} WatchHealth + ${load.watchRoutes} WatchRoutes streams, ${load.churnRate} changes/s; plus the ledger: ${ledger.perSecond} outcomes/s to rollout \`ledger\` |
| crashes | ${crashes} × SIGKILL, ${minUp}–${maxUp} s after each start (seed ${seedArg}); restart on the same database and port: median ${result.restartMs.median} ms, max ${result.restartMs.max} ms to ready |
| verdict | **${result.passed ? "PASS" : "FAIL"}** |

## Acknowledged changes

${result.changes.attempted} control-plane changes attempted, ${result.changes.acked} acknowledged (${Object.entries(result.changes.byOp).map(([k, v]) => `${k} ${v}`).join(", ")}), ${result.changes.unacked} failed or unanswered (the server was down).
After the last restart: **${missing.length}** acknowledged changes missing from the audit log, **${stale.length}** rollouts in a state older than acknowledged${missing.length + stale.length > 0 ? `: ${JSON.stringify([...missing, ...stale].slice(0, 5))}` : ""}.
Audit log: ${events.length} events; \`rollgate events --verify\`: ${verify.ok ? `hash chain intact, ${verify.checked} events verified` : `BROKEN: ${JSON.stringify(verify)}`}.
\`PRAGMA integrity_check\`: ${result.integrity.failures === 0 ? "ok" : `${result.integrity.failures} failures`} after each of the ${crashes} crashes (the database as the crash left it, before the restart), ${finalIntegrity} at the end.

## Outcomes lost per crash

Window buckets are flushed every second (\`flushMs\`, default 1000, in \`src/server/server.ts\`; \`src/service/engine/windows.ts\` writes the changed buckets in one transaction), so a crash can lose what arrived since the last flush: at most about one second.
A negative loss is outcomes the server recorded (and flushed) whose answer never reached the client: calls in flight at the crash.
The restored window read twice, 300 ms apart, with nothing sent: ${unstable.length === 0 ? "equal after every restart" : `DIFFERENT: ${JSON.stringify(unstable)}`}.
Measured on the ledger (${ledger.perSecond} outcomes/s): lost seconds of traffic min ${f2(result.loss.secondsMin)}, median ${f2(result.loss.secondsMedian)}, p90 ${f2(result.loss.secondsP90)}, max ${f2(result.loss.secondsMax)} (limit 1.5 s: one flush period plus a late flush on a loaded core).

| crash | up (s) | held at crash | held after restart | lost | lost (s) |
|---|---|---|---|---|---|
${crashLog.map((c) => `| ${c.crash} | ${c.upSeconds} | ${c.heldAtCrash} | ${c.held} | ${c.lost} | ${f2(c.lostSeconds)} |`).join("\n")}

Load generator: ${result.load_totals.routes} Route calls and ${result.load_totals.outcomes} outcomes acknowledged, ${result.load_totals.reconnects} reconnects; calls failed while the server was down: ${JSON.stringify(result.load_totals.failedWhileDown)} (injected); failed while it was up: ${JSON.stringify(result.load_totals.errorsWhileUp)}.
`;
  writeFileSync(join(benchDir, "CHAOS.md"), md);
  log("wrote bench/CHAOS.md");
}
log(`chaos ${result.passed ? "PASS" : "FAIL"}: ${JSON.stringify(result.pass)}; missing ${missing.length}, stale ${stale.length}, loss max ${f2(result.loss.secondsMax)} s`);
if (flags.json === true) process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(result.passed ? 0 : 1);
