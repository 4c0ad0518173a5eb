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
// Pass: the readers' delivery p99 <= 100 ms in both phases; the vanished streams cleaned up
// while their process is still stopped (the server's rollgate_stream_subscribers{feed="health"}
// falls back to readers + non-readers, through the HTTP/2 keep-alive: a PING unanswered within
// --http2-keepalive closes the connection); the server's memory bounded: RSS with every stream
// open, before and after the vanish phase, grows by at most `--rss-growth` (default 10%) while
// the never-reading streams stay blocked; readers lose no update; no reader stream fails.
//
// Flags: --streams 10000 --connections 4 --rollouts 20 --seconds 30 --keepalive 5
//        --json --no-write --no-build
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
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
const rssLimit = Number(flags["rss-growth"] ?? 0.1);
const log = (s) => process.stderr.write(`${s}\n`);

/** Starts one client group; resolves once every stream is subscribed. */
function startGroup(opts) {
  const [cmd, args] = pinnedCommand(CLIENT_CORE, process.execPath, [join(benchDir, "soak", "streams-client.mjs"), JSON.stringify(opts)]);
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (s) => (stderr = (stderr + s).slice(-4000)));
  const waiting = [];
  let subscribed;
  const ready = new Promise((resolve, reject) => {
    subscribed = resolve;
    child.once("exit", (code, signal) => reject(new Error(`${opts.mode} group exited ${code ?? signal}: ${stderr}`)));
  });
  createInterface({ input: child.stdout }).on("line", (line) => {
    const m = JSON.parse(line);
    if (m.event === "subscribed") subscribed();
    else waiting.shift()?.(m);
  });
  return {
    child,
    ready,
    /** Asks for the figures since the last report. */
    report: () =>
      new Promise((resolve) => {
        waiting.push(resolve);
        child.kill("SIGUSR2");
      }),
    finish: () =>
      new Promise((resolve) => {
        waiting.push(resolve);
        child.kill("SIGTERM");
      }),
  };
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
const server = await startServer({ db: join(dir, "rollgate.db"), env: { ROLLGATE_HTTP2_KEEPALIVE: `${keepalive}s` } });
const port = server.port;
for (let i = 0; i < rollouts; i++) await createRollout(port, `w-${i}`, { gates: false });
const idle = await sampleServer(port);
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
await groups.readers.report();
const rssSubscribed = (await server.probe()).rss;

// Phase 1: every group live.
await sleep(seconds * 1000);
const p1 = await groups.readers.report();
const s1 = await sampleServer(port);
const live1 = await server.probe();
log(`phase 1: readers p99 ${p1.delays.p99Ms?.toFixed(1)} ms over ${p1.delays.n} deliveries; rss ${(s1.rss / MB).toFixed(1)} MB, live heap ${(live1.heapUsed / MB).toFixed(1)} MB`);

// Phase 2: the vanish group stops (SIGSTOP), the others go on.
const vanishReport = await groups.vanish.report();
groups.vanish.child.kill("SIGSTOP");
const stoppedAt = Date.now();
const [afterVanish, cleanupSeconds] = await subscribersReach(port, readers + noread, Math.max(seconds, keepalive * 4) * 1000);
log(`vanished: subscribers ${afterVanish} (expected ${readers + noread}) after ${cleanupSeconds.toFixed(1)} s`);
await sleep(Math.max(0, seconds * 1000 - (Date.now() - stoppedAt)));
const p2 = await groups.readers.report();
const s2 = await sampleServer(port);
const live2 = await server.probe();
log(`phase 2: readers p99 ${p2.delays.p99Ms?.toFixed(1)} ms over ${p2.delays.n} deliveries; rss ${(s2.rss / MB).toFixed(1)} MB`);

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
const result = {
  ...before,
  command: `npm run soak:streams -- --streams ${total} --connections ${connections} --rollouts ${rollouts} --seconds ${seconds} --keepalive ${keepalive}`,
  streams: { total, readers, noread, vanish, connections, rollouts },
  subscribed: subscribedCount,
  phase1: { delays: p1.delays, rss: s1.rss, liveHeap: live1.heapUsed, lagP99Ms: s1.lagP99Ms },
  phase2: { delays: p2.delays, rss: s2.rss, liveHeap: live2.heapUsed, lagP99Ms: s2.lagP99Ms },
  rss: { idle: idle.rss, subscribed: rssSubscribed, end: s2.rss, growth: s2.rss / rssSubscribed - 1 },
  cleanup: { subscribersAfterVanish: afterVanish, expected: readers + noread, seconds: cleanupSeconds, afterAllClosed: afterAll },
  readers: { messages: readersFinal.messages, errors: readersFinal.errors, closed: readersFinal.closed },
  vanishBeforeStop: { messages: vanishReport.messages },
  noread: { errors: noreadFinal.errors, closed: noreadFinal.closed },
  phaseSeconds,
  loadavgAfter: machine().loadavg,
};
result.pass = {
  delivery: (p1.delays.p99Ms ?? Infinity) <= 100 && (p2.delays.p99Ms ?? Infinity) <= 100,
  cleanup: afterVanish === readers + noread && afterAll === 0,
  memory: result.rss.growth <= rssLimit,
  readers: readersFinal.errors === 0 && readersFinal.closed === 0 && p1.delays.n > 0 && p2.delays.n > 0,
};
result.passed = Object.values(result.pass).every(Boolean);

const f1 = (x) => (x === null || !Number.isFinite(x) ? "n/a" : x.toFixed(1));
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
| server RSS / live heap | ${f1(s1.rss / MB)} / ${f1(live1.heapUsed / MB)} MiB | ${f1(s2.rss / MB)} / ${f1(live2.heapUsed / MB)} MiB | |
| event-loop delay p99 (last interval) | ${f1(s1.lagP99Ms)} ms | ${f1(s2.lagP99Ms)} ms | |

Memory: RSS ${f1(idle.rss / MB)} MiB idle, ${f1(rssSubscribed / MB)} MiB with every stream open (the never-reading ones blocked), ${f1(s2.rss / MB)} MiB at the end: ${(result.rss.growth * 100).toFixed(1)}% (limit ${rssLimit * 100}%).
A stream whose reader does not keep up never buffers more than one update per rollout in the server: the fast path writes one message and then waits for 'drain' (src/server/grpc-fast-path.ts), and the health fan-out keeps only the latest health per rollout for it (src/service/fan-out.ts, backlog "latest"): a slow reader skips intermediate states.
Cleanup: with the vanishing process stopped, the server's WatchHealth subscribers fell to ${afterVanish} (expected ${readers + noread}) after ${f1(cleanupSeconds)} s (HTTP/2 keep-alive PING every ${keepalive} s, connection closed when one is not answered within ${keepalive} s); ${afterAll} left after every client closed.
Readers: ${readersFinal.messages} messages, ${readersFinal.errors} errors, ${readersFinal.closed} streams closed by the server.
`;
  writeFileSync(join(benchDir, "SOAK-STREAMS.md"), md);
  log("wrote bench/SOAK-STREAMS.md");
}
log(`streams ${result.passed ? "PASS" : "FAIL"}: ${JSON.stringify(result.pass)}`);
if (flags.json === true) process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(result.passed ? 0 : 1);
