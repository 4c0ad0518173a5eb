#!/usr/bin/env node
// Streams under pressure (issue 16, point 5): `npm run soak:streams [-- --streams 10000]`.
// One rollgate server (pinned to core 0) with `rollouts` rollouts evaluated every second (each
// evaluation publishes a health), and `streams` WatchHealth streams from client processes
// pinned to core 1 (bench/soak/streams-client.mjs):
//   - 80% readers, over `connections` HTTP/2 connections: delivery delay of every update
//     (arrival - the health's evaluated_at) measured;
//   - 10% that never read (their own connection): flow-control windows fill, the server's
//     writes back up;
//   - 10% that vanish (their own connection, in a process stopped with SIGSTOP: sockets stay
//     open, nothing reads or answers, like a peer whose host froze or whose network went away),
//     killed with SIGKILL only at the end.
// Phases: all subscribed → `seconds` with every group live → vanish (SIGSTOP) → `seconds` more.
// Pass: the readers' delivery p99 <= 100 ms in both phases (delay = the client's Date.now() on
// receipt - the health's evaluated_at, the server's Date.now() when it judged that rollout,
// each in its turn of the round; see streams-client.mjs; the rounds' own durations are
// reported beside it, from rollgate_evaluation_round_seconds); the vanished streams cleaned up while their process is still
// stopped (the server's rollgate_stream_subscribers{feed="health"} falls back to readers +
// non-readers, through the HTTP/2 keep-alive: a PING unanswered within --http2-keepalive closes
// the connection); the server's memory bounded: its live heap (after a full GC) at the end of
// phase 1 grows by at most `--heap-growth` (default 10%) over the same after the warm-up, with
// the same streams open and the never-reading ones blocked, and is no larger at the end of
// phase 2 (fewer streams) — RSS is reported beside it, not judged: it keeps the allocator's
// high-water mark; readers lose no update (no seq gap) and no reader stream fails.
// The server's full GCs for the memory probes pause it for up to a second: each phase's delays
// are counted from a couple of seconds after the probe before it, so they are not in the figures.
// The load: each stream watches one rollout, each rollout is evaluated once a second, so every
// stream gets 1 update/s and the server sends `streams` updates/s (8,000/s to readers at the
// defaults), all in the same evaluation round (every rollout is due at once), one rollout's
// streams after another's. Server and clients' CPU use per phase is reported (/proc), to show which side is busy.
//
// Flags: --streams 10000 --connections 4 --rollouts 20 --seconds 30 --keepalive 5
//        --heap-growth 0.1 --json --no-write --no-build --cpu-prof <dir>
//        --baseline <file>: the --json output of a run of another build in the same minutes (on a
//        shared machine only such a pair compares), shown beside this one in SOAK-STREAMS.md
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchDir, pinnedCommand } from "./lib/util.mjs";
import {
  build,
  CLIENT_CORE,
  createRollout,
  machine,
  MB,
  parseDuration,
  parseFlags,
  pinSelf,
  roundsBetween,
  sampleServer,
  sleep,
  startServer,
  stopServer,
} from "./soak/harness.mjs";

const flags = parseFlags(process.argv.slice(2));
const total = Number(flags.streams ?? 10_000);
const connections = Number(flags.connections ?? 4);
const rollouts = Number(flags.rollouts ?? 20);
const seconds = parseDuration(flags.seconds ?? "30s");
const keepalive = parseDuration(flags.keepalive ?? "5s");
const heapLimit = Number(flags["heap-growth"] ?? 0.1);
const log = (s) => process.stderr.write(`${s}\n`);

/** Starts one client group; resolves once every stream is subscribed. */
function startGroup(opts) {
  const [cmd, args] = pinnedCommand(CLIENT_CORE, process.execPath, [join(benchDir, "soak", "streams-client.mjs"), JSON.stringify(opts)]);
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (s) => (stderr = (stderr + s).slice(-4000)));
  const waiting = [];
  let subscribed;
  let exited;
  const ready = new Promise((resolve, reject) => {
    subscribed = resolve;
    child.once("exit", (code, signal) => {
      // A group that dies fails the run (its pending reports too) rather than hanging it.
      exited = new Error(`${opts.mode} group exited ${code ?? signal}: ${stderr}`);
      reject(exited);
      for (const w of waiting.splice(0)) w.reject(exited);
    });
  });
  ready.catch(() => undefined);
  createInterface({ input: child.stdout }).on("line", (line) => {
    const m = JSON.parse(line);
    if (m.event === "subscribed") subscribed();
    else waiting.shift()?.resolve(m);
  });
  const ask = (signal) =>
    new Promise((resolve, reject) => {
      if (exited !== undefined) return reject(exited);
      waiting.push({ resolve, reject });
      child.kill(signal);
    });
  return {
    child,
    ready,
    /** Asks for the figures since the last report. */
    report: () => ask("SIGUSR2"),
    finish: () => ask("SIGTERM"),
  };
}

/** Returns a process's CPU time (user + system) in seconds, from /proc; NaN when it is gone. */
function cpuSeconds(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Returns a function that, called, gives the CPU share (of one core) of each pid since the previous call. */
function cpuMeter(pids) {
  let t = performance.now();
  let last = pids.map(cpuSeconds);
  return () => {
    const now = performance.now();
    const cur = pids.map(cpuSeconds);
    const share = cur.map((c, i) => (c - last[i]) / ((now - t) / 1000));
    t = now;
    last = cur;
    return share;
  };
}

/** The server's GC time between two samples, in seconds: all, and major (mark-compact) alone. */
const gcBetween = (a, b) => ({ seconds: b.gcSeconds - a.gcSeconds, majorSeconds: b.gcMajorSeconds - a.gcMajorSeconds });

/** Takes the server's memory after a full GC (it pauses the server), then lets delivery catch up. */
async function probeAndSettle(server) {
  const m = await server.probe();
  await sleep(2000);
  return m;
}

/** Waits until the server's health subscriber count is `n` (or `ms` pass); returns [count, seconds waited]. */
async function subscribersReach(port, n, ms) {
  const t = Date.now();
  let s;
  do {
    // A scrape may time out on an overloaded server: try again until the deadline.
    s = await sampleServer(port).catch(() => s);
    if (s?.subscribers.health === n) break;
    await sleep(250);
  } while (Date.now() - t < ms);
  return [s?.subscribers.health ?? NaN, (Date.now() - t) / 1000];
}

pinSelf();
build(flags["no-build"] === true);
const before = machine();
const dir = mkdtempSync(join(tmpdir(), "rollgate-streams-"));
// --cpu-prof <dir>: the server writes a V8 CPU profile there when it stops.
const nodeArgs = typeof flags["cpu-prof"] === "string" ? ["--cpu-prof", "--cpu-prof-dir", flags["cpu-prof"]] : [];
const server = await startServer({ db: join(dir, "rollgate.db"), env: { ROLLGATE_HTTP2_KEEPALIVE: `${keepalive}s` }, nodeArgs });
const port = server.port;
for (let i = 0; i < rollouts; i++) await createRollout(port, `w-${i}`, { gates: false });
const idleProbe = await server.probe();
const noread = Math.round(total / 10);
const vanish = Math.round(total / 10);
const readers = total - noread - vanish;
log(`streams: ${readers} readers over ${connections} connections, ${noread} never reading, ${vanish} vanishing; ${rollouts} rollouts; keep-alive ${keepalive} s`);
const base = { port, prefix: "w-", rollouts };
const groups = {
  readers: startGroup({ ...base, streams: readers, connections, mode: "read" }),
  noread: startGroup({ ...base, streams: noread, connections: 1, mode: "noread" }),
  vanish: startGroup({ ...base, streams: vanish, connections: 1, mode: "read" }),
};
await Promise.all(Object.values(groups).map((g) => g.ready));
const [subscribedCount] = await subscribersReach(port, total, 30_000);
log(`subscribed: the server counts ${subscribedCount} WatchHealth subscribers`);
// Let the never-reading streams' windows fill (a few updates each) before measuring.
await sleep(5000);
const heapSubscribed = await probeAndSettle(server);
const pids = [server.pid, groups.readers.child.pid, groups.noread.child.pid, groups.vanish.child.pid];
const cpu = cpuMeter(pids);
await groups.readers.report();
const s0 = await sampleServer(port);

// Phase 1: every group live.
await sleep(seconds * 1000);
const p1 = await groups.readers.report();
const cpu1 = cpu();
const s1 = await sampleServer(port);
const rounds1 = roundsBetween(s0, s1);
const live1 = await probeAndSettle(server);
log(`phase 1: readers p99 ${p1.delays.p99Ms?.toFixed(1)} ms over ${p1.delays.n} deliveries; server cpu ${(cpu1[0] * 100).toFixed(0)}%, readers' ${(cpu1[1] * 100).toFixed(0)}%; rss ${(s1.rss / MB).toFixed(1)} MB, live heap ${(live1.heapUsed / MB).toFixed(1)} MB`);

// Phase 2: the vanish group stops (SIGSTOP), the others go on.
const vanishReport = await groups.vanish.report();
await groups.readers.report();
cpu();
const s1b = await sampleServer(port);
groups.vanish.child.kill("SIGSTOP");
const stoppedAt = Date.now();
const [afterVanish, cleanupSeconds] = await subscribersReach(port, readers + noread, Math.max(seconds, keepalive * 4) * 1000);
log(`vanished: subscribers ${afterVanish} (expected ${readers + noread}) after ${cleanupSeconds.toFixed(1)} s`);
await sleep(Math.max(0, seconds * 1000 - (Date.now() - stoppedAt)));
const p2 = await groups.readers.report();
const cpu2 = cpu();
const s2 = await sampleServer(port);
const rounds2 = roundsBetween(s1b, s2);
const live2 = await server.probe();
log(`phase 2: readers p99 ${p2.delays.p99Ms?.toFixed(1)} ms over ${p2.delays.n} deliveries; server cpu ${(cpu2[0] * 100).toFixed(0)}%; rss ${(s2.rss / MB).toFixed(1)} MB, live heap ${(live2.heapUsed / MB).toFixed(1)} MB`);

groups.vanish.child.kill("SIGKILL");
const readersFinal = await groups.readers.finish();
const noreadFinal = await groups.noread.finish();
const [afterAll] = await subscribersReach(port, 0, 20_000);
await stopServer(server);
rmSync(dir, { recursive: true, force: true });

// Every reader gets one update per evaluation of its rollout: (readers / rollouts) streams per
// rollout, one evaluation per second; the count is checked loosely (late evaluations on a busy
// core), the loss of whole updates is what it catches.
const phaseSeconds = (Date.now() - stoppedAt) / 1000;
const cpuOf = (c) => ({ server: c[0], readers: c[1], noread: c[2], vanish: c[3] });
const result = {
  ...before,
  command: `npm run soak:streams -- --streams ${total} --connections ${connections} --rollouts ${rollouts} --seconds ${seconds} --keepalive ${keepalive}`,
  streams: { total, readers, noread, vanish, connections, rollouts },
  subscribed: subscribedCount,
  phase1: { delays: p1.delays, rss: s1.rss, liveHeap: live1.heapUsed, lagP99Ms: s1.lagP99Ms, cpu: cpuOf(cpu1), rounds: rounds1, gc: gcBetween(s0, s1), readerLag: p1.lag },
  phase2: { delays: p2.delays, rss: s2.rss, liveHeap: live2.heapUsed, lagP99Ms: s2.lagP99Ms, cpu: cpuOf(cpu2), rounds: rounds2, gc: gcBetween(s1b, s2), readerLag: p2.lag },
  rss: { idle: idleProbe.rss, subscribed: heapSubscribed.rss, end: live2.rss, growth: live2.rss / heapSubscribed.rss - 1 },
  memory: {
    idle: { rss: idleProbe.rss, heap: idleProbe.heapUsed },
    subscribed: { rss: heapSubscribed.rss, heap: heapSubscribed.heapUsed, external: heapSubscribed.external },
    phase1: { rss: live1.rss, heap: live1.heapUsed, external: live1.external },
    phase2: { rss: live2.rss, heap: live2.heapUsed, external: live2.external },
    heapGrowth: live1.heapUsed / heapSubscribed.heapUsed - 1,
  },
  cleanup: { subscribersAfterVanish: afterVanish, expected: readers + noread, seconds: cleanupSeconds, afterAllClosed: afterAll },
  readers: { messages: readersFinal.messages, gaps: readersFinal.gaps, skipped: readersFinal.skipped, errors: readersFinal.errors, closed: readersFinal.closed },
  vanishBeforeStop: { messages: vanishReport.messages },
  noread: { errors: noreadFinal.errors, closed: noreadFinal.closed },
  phaseSeconds,
  loadavgAfter: machine().loadavg,
};
result.pass = {
  delivery: (p1.delays.p99Ms ?? Infinity) <= 100 && (p2.delays.p99Ms ?? Infinity) <= 100,
  cleanup: afterVanish === readers + noread && afterAll === 0,
  memory: result.memory.heapGrowth <= heapLimit && live2.heapUsed <= live1.heapUsed * (1 + heapLimit),
  readers: readersFinal.errors === 0 && readersFinal.closed === 0 && readersFinal.gaps === 0 && p1.delays.n > 0 && p2.delays.n > 0,
};
result.passed = Object.values(result.pass).every(Boolean);

/** In SOAK-STREAMS.md, the line after which notes written by hand begin (kept by every run). */
const KEPT_MARKER = "<!-- Notes below are written by hand and kept by every run. -->";

/** Returns the SOAK-STREAMS.md section that sets a baseline run beside this one. */
function comparison(b, r) {
  const row = (name, f) => `| ${name} | ${f(b)} | ${f(r)} |\n`;
  const perMsg = (x, p) => (x[p].cpu.server * seconds * 1e6) / x[p].delays.n;
  return `
## Beside a run of the previous build, in the same minutes

Baseline: commit ${b.commit}, ${b.date}, load average ${b.loadavg.join(", ")}; this run: commit ${r.commit}, ${r.date}, load average ${r.loadavg.join(", ")}. Same command and machine; server CPU per reader delivery is the server's whole CPU time in the phase (evaluation, keep-alive, every stream) over the readers' deliveries.

| | baseline | this run |
|---|---|---|
${row("readers' delay p50 / p99, phase 1", (x) => `${f1(x.phase1.delays.p50Ms)} / ${f1(x.phase1.delays.p99Ms)} ms`)}${row("readers' delay p50 / p99, phase 2", (x) => `${f1(x.phase2.delays.p50Ms)} / ${f1(x.phase2.delays.p99Ms)} ms`)}${row("readers' deliveries, phase 1 / 2", (x) => `${x.phase1.delays.n} / ${x.phase2.delays.n}`)}${row("server CPU, phase 1 / 2", (x) => `${pct(x.phase1.cpu.server)} / ${pct(x.phase2.cpu.server)}`)}${row("server CPU per reader delivery, phase 1 / 2", (x) => `${f1(perMsg(x, "phase1"))} / ${f1(perMsg(x, "phase2"))} µs`)}${row("event-loop delay p99, phase 1 / 2", (x) => `${f1(x.phase1.lagP99Ms)} / ${f1(x.phase2.lagP99Ms)} ms`)}${row("live heap after GC: subscribed / phase 1 / phase 2", (x) => `${f1(x.memory.subscribed.heap / MB)} / ${f1(x.memory.phase1.heap / MB)} / ${f1(x.memory.phase2.heap / MB)} MiB`)}${row("RSS: subscribed / phase 1 / phase 2", (x) => `${f1(x.memory.subscribed.rss / MB)} / ${f1(x.memory.phase1.rss / MB)} / ${f1(x.memory.phase2.rss / MB)} MiB`)}${row("updates skipped (readers)", (x) => `${x.readers.skipped ?? "n/a"}`)}${row("verdict", (x) => (x.passed ? "PASS" : "FAIL"))}`;
}

const f1 = (x) => (x === null || !Number.isFinite(x) ? "n/a" : x.toFixed(1));
const ms = (x) => (x === null ? "n/a" : (x * 1000).toFixed(x < 0.01 ? 1 : 0));
const pct = (x) => (Number.isFinite(x) ? `${(x * 100).toFixed(0)}%` : "n/a");
if (flags["no-write"] !== true) {
  const md = `# Streams under pressure — last recorded run

\`npm run soak:streams\` (\`bench/soak-streams.mjs\`, clients \`bench/soak/streams-client.mjs\`); phases and pass rules are in the script's header.
Short version in \`npm test\`: \`test/reliability/soak-streams.test.ts\` (2,000 streams).

| | |
|---|---|
| date | ${result.date} |
| commit | ${result.commit} |
| command | \`${result.command}\` |
| load average before / after | ${result.loadavg.join(", ")} / ${result.loadavgAfter.join(", ")} (2 cores shared with other work) |
| streams | ${total} WatchHealth: ${readers} readers over ${connections} HTTP/2 connections, ${noread} never reading (1 connection), ${vanish} vanishing (1 connection, SIGSTOP); ${rollouts} rollouts evaluated every 1 s |
| verdict | **${result.passed ? "PASS" : "FAIL"}** |

| | phase 1 (all live, ${seconds} s) | phase 2 (${vanish} vanished, ${seconds} s) | limit |
|---|---|---|---|
| readers' delivery delay p50 / p99 / max | ${f1(p1.delays.p50Ms)} / ${f1(p1.delays.p99Ms)} / ${f1(p1.delays.maxMs)} ms (${p1.delays.n} deliveries) | ${f1(p2.delays.p50Ms)} / ${f1(p2.delays.p99Ms)} / ${f1(p2.delays.maxMs)} ms (${p2.delays.n}) | p99 ≤ 100 ms |
| server CPU (of one core) / reader process CPU | ${pct(cpu1[0])} / ${pct(cpu1[1])} | ${pct(cpu2[0])} / ${pct(cpu2[1])} | |
| server live heap after GC / RSS | ${f1(live1.heapUsed / MB)} / ${f1(live1.rss / MB)} MiB | ${f1(live2.heapUsed / MB)} / ${f1(live2.rss / MB)} MiB | |
| event-loop delay p99 (last scrape interval) | ${f1(s1.lagP99Ms)} ms | ${f1(s2.lagP99Ms)} ms | |
| reader process's own event-loop delay p99 / max | ${f1(p1.lag?.p99Ms)} / ${f1(p1.lag?.maxMs)} ms | ${f1(p2.lag?.p99Ms)} / ${f1(p2.lag?.maxMs)} ms | |
| server GC, all / major (of the phase) | ${f1(result.phase1.gc.seconds * 1000)} / ${f1(result.phase1.gc.majorSeconds * 1000)} ms | ${f1(result.phase2.gc.seconds * 1000)} / ${f1(result.phase2.gc.majorSeconds * 1000)} ms | |
| evaluator rounds: count, mean, p99 (histogram bucket bound) | ${rounds1.count}, ${ms(rounds1.meanSeconds)}, ≤ ${ms(rounds1.p99Seconds)} ms | ${rounds2.count}, ${ms(rounds2.meanSeconds)}, ≤ ${ms(rounds2.p99Seconds)} ms | |

Delay: the reader's \`Date.now()\` when a message's 'data' event runs minus the health's \`evaluated_at\` (the server's \`Date.now()\` when it judged that rollout: each rollout in a round is judged at its own moment, after the fan-out of those before it; same machine, same clock): it covers that rollout's evaluation, its fan-out, both HTTP/2 stacks and the client's own queueing. How long a whole round took (round start to its last rollout's health published) is the evaluator-rounds row, from \`rollgate_evaluation_round_seconds\`. Load: every stream watches one of the ${rollouts} rollouts, each evaluated once a second, so each stream gets 1 update/s and the server sends ${total} updates/s (${readers}/s to readers), all due in the same moment of each round.
Memory (after a full GC; RSS beside it): idle ${f1(idleProbe.heapUsed / MB)} MiB heap / ${f1(idleProbe.rss / MB)} MiB RSS; after the warm-up with every stream open ${f1(heapSubscribed.heapUsed / MB)} / ${f1(heapSubscribed.rss / MB)} MiB; end of phase 1 ${f1(live1.heapUsed / MB)} / ${f1(live1.rss / MB)} MiB (heap ${(result.memory.heapGrowth * 100).toFixed(1)}%, limit ${heapLimit * 100}%); end of phase 2 ${f1(live2.heapUsed / MB)} / ${f1(live2.rss / MB)} MiB. RSS is not judged: it keeps the allocator's high-water mark (V8 and malloc keep freed pages mapped), which a leak would not explain without the heap after GC growing too.
A stream whose reader does not keep up never has more than one write in flight in the server: the fast path writes each update in the publisher's turn and, while a write is in flight, the health fan-out keeps only the latest health per rollout for it (src/service/fan-out.ts, backlog "latest"), sent in one write when the previous one completes (src/server/grpc-fast-path.ts): a slow reader skips intermediate states.
Cleanup: with the vanishing process stopped, the server's WatchHealth subscribers fell to ${afterVanish} (expected ${readers + noread}) after ${f1(cleanupSeconds)} s (HTTP/2 keep-alive PING every ${keepalive} s, connection closed when one is not answered within ${keepalive} s); ${afterAll} left after every client closed.
Readers: ${readersFinal.messages} messages, ${readersFinal.gaps} seq gaps, ${readersFinal.skipped} updates skipped (estimated from evaluated_at: the stream was behind and got only the latest), ${readersFinal.errors} errors, ${readersFinal.closed} streams closed by the server.
`;
  // Notes written by hand below the marker (profiles, findings) are kept from run to run.
  const file = join(benchDir, "SOAK-STREAMS.md");
  let kept = "";
  try {
    const old = readFileSync(file, "utf8");
    const at = old.indexOf(KEPT_MARKER);
    if (at >= 0) kept = `\n${old.slice(at)}`;
  } catch {
    /* first run */
  }
  writeFileSync(file, md + (typeof flags.baseline === "string" ? comparison(JSON.parse(readFileSync(flags.baseline, "utf8")), result) : "") + kept);
  log("wrote bench/SOAK-STREAMS.md");
}
log(`streams ${result.passed ? "PASS" : "FAIL"}: ${JSON.stringify(result.pass)}`);
if (flags.json === true) process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(result.passed ? 0 : 1);
