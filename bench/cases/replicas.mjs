// Several replicas on PostgreSQL (issue 12), against a PostgreSQL this case starts itself
// (scripts/postgres-cluster.mjs): control-plane commits/s on PostgreSQL beside SQLite's and
// beside each database's bare commit rate; a change's propagation from the replica that commits
// it to WatchRoutes streams on another; Route throughput of two replicas (one per core) against
// one; and how long the evaluator's failover takes after a kill -9.
//
// The machine has two cores: the servers are pinned as each part says, PostgreSQL's own
// processes are not pinned, and in the two-replica Route run the load generators share the two
// cores with the replicas (there is no third core) — read that ratio as "what a second replica
// adds on this machine", not as scaling past it.
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startPostgres } from "../../scripts/postgres-cluster.mjs";
import { h2load, h2loadArgs, h2loadCommand } from "../lib/h2load.mjs";
import { routeFrame, writeBody } from "../lib/bodies.mjs";
import { createRollout, rollgateCommand, startRollgate } from "../lib/rollgate.mjs";
import { benchDir, CLIENT_CORE, commandText, connectJson, runClient, runPinned, SERVER_CORE, sleep } from "../lib/util.mjs";

const ROUTE = "/rollgate.v1.DecisionService/Route";
const PROPAGATION_ROLLOUTS = 100;
const PROPAGATION_STREAMS = 100;

/** Waits until a server knows a rollout (another replica created it). */
async function until(port, name, timeoutMs = 30_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    try {
      await connectJson(port, "rollgate.v1.RolloutService/GetRollout", { name });
      return;
    } catch {
      await sleep(50); // NOT_FOUND until the replica has read the change
    }
  }
  throw new Error(`replica on port ${port} never saw rollout ${name}`);
}

/** Control-plane commits/s: SetWeight on PostgreSQL and on SQLite, 1 and 8 callers, beside each floor. */
async function commits({ cluster, rounds, seconds, log }) {
  const url = await cluster.createDatabase("bench_commits");
  const floorUrl = await cluster.createDatabase("bench_floor");
  const onSqlite = await startRollgate({});
  const onPg = await startRollgate({ dbUrl: url, extra: ["--replica-id", "bench-1"] });
  const out = { sqlite: { 1: [], 8: [] }, postgres: { 1: [], 8: [] }, sqliteFloor: [], pgFloor: { 1: [], 8: [] } };
  try {
    for (const rg of [onSqlite, onPg]) await createRollout(rg.port, "w", { interval: "60s", gates: false });
    const floorDb = join(tmpdir(), `rollgate-bench-floor-${process.pid}.db`);
    for (let round = 0; round < rounds; round++) {
      for (const c of [1, 8]) {
        for (const [id, rg] of [["sqlite", onSqlite], ["postgres", onPg]]) {
          const r = await runClient("set-weight.mjs", [rg.port, "w", c, seconds]);
          if (r.errors > 0) throw new Error(`SetWeight on ${id}: ${r.errors} calls failed (HTTP ${r.lastError})`);
          out[id][c].push(r.perSec);
        }
        const f = JSON.parse((await runPinned(CLIENT_CORE, process.execPath, [join(benchDir, "clients", "pg-floor.mjs"), floorUrl, String(c), String(seconds)])).trim());
        out.pgFloor[c].push(f.commitsPerSec);
      }
      const f = JSON.parse((await runPinned(SERVER_CORE, process.execPath, [join(benchDir, "clients", "sqlite-floor.mjs"), floorDb, String(seconds)])).trim());
      out.sqliteFloor.push(f.commitsPerSec);
      for (const suffix of ["", "-wal", "-shm"]) rmSync(floorDb + suffix, { force: true });
      log(
        `  commits round ${round + 1}/${rounds}: SetWeight/s 1 caller sqlite ${Math.round(out.sqlite[1].at(-1))} postgres ${Math.round(out.postgres[1].at(-1))}; ` +
          `8 callers sqlite ${Math.round(out.sqlite[8].at(-1))} postgres ${Math.round(out.postgres[8].at(-1))}; ` +
          `floors: sqlite ${Math.round(out.sqliteFloor.at(-1))}, postgres 1 conn ${Math.round(out.pgFloor[1].at(-1))}, 8 conns ${Math.round(out.pgFloor[8].at(-1))} commits/s`,
      );
    }
  } finally {
    await onSqlite.stop();
    await onPg.stop();
  }
  return out;
}

/** SetWeight committed on replica A, arrival on WatchRoutes streams served by replica B. */
async function propagation({ cluster, seconds, log }) {
  const url = await cluster.createDatabase("bench_propagation");
  const a = await startRollgate({ dbUrl: url, core: SERVER_CORE, extra: ["--replica-id", "a"] });
  const b = await startRollgate({ dbUrl: url, core: SERVER_CORE, extra: ["--replica-id", "b"] });
  try {
    for (let i = 0; i < PROPAGATION_ROLLOUTS; i++) await createRollout(a.port, `p-${i}`, { interval: "60s", gates: false });
    await until(b.port, `p-${PROPAGATION_ROLLOUTS - 1}`);
    const args = ["watch-routes.mjs", b.port, "p-", PROPAGATION_ROLLOUTS, PROPAGATION_STREAMS, 4, seconds, 1, 5, a.port];
    const res = await runClient(args[0], args.slice(1), { timeoutMs: (seconds + 120) * 1000 });
    if (res.subscribed < PROPAGATION_STREAMS || res.errors > 0) throw new Error(`propagation: ${res.subscribed}/${PROPAGATION_STREAMS} subscribed, ${res.errors} errors`);
    log(`  propagation A → B: ${res.changes} changes × ${res.subscribed} streams = ${res.all.arrivals} arrivals (${res.missing} missing), from commit p50 ${res.all.p50Ms.toFixed(1)} ms, p99 ${res.all.p99Ms.toFixed(1)} ms, max ${res.all.maxMs.toFixed(1)} ms; from the SetWeight call p99 ${res.fromCall.p99Ms.toFixed(1)} ms`);
    return { ...res, command: commandText(CLIENT_CORE, "node", ["bench/clients/watch-routes.mjs", "<port B>", "p-", PROPAGATION_ROLLOUTS, PROPAGATION_STREAMS, 4, seconds, 1, 5, "<port A>"].map(String)) };
  } finally {
    await a.stop();
    await b.stop();
  }
}

/** Route calls/s: one replica (core 0, h2load on core 1) against two (core 0 and 1, an h2load at each). */
async function route({ cluster, dir, seconds, rounds, log }) {
  const url = await cluster.createDatabase("bench_route");
  const a = await startRollgate({ dbUrl: url, core: SERVER_CORE, extra: ["--replica-id", "a"] });
  const b = await startRollgate({ dbUrl: url, core: CLIENT_CORE, extra: ["--replica-id", "b"] });
  const body = writeBody(dir, "replicas-route.bin", routeFrame("checkout", "user-12345"));
  const opts = (port) => ({ port, path: ROUTE, body, clients: 4, inFlight: 16, seconds, warmup: 0 });
  const parse = (out) => Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out)?.[1] ?? NaN);
  const out = { one: [], two: [], twoEach: [] };
  try {
    await createRollout(a.port, "checkout", { interval: "10s", window: "300s" });
    await until(b.port, "checkout");
    for (const port of [a.port, b.port]) await h2load({ ...opts(port), seconds: undefined, requests: 20000 });
    for (let round = 0; round < rounds; round++) {
      out.one.push((await h2load(opts(a.port))).rps);
      // Two replicas, each driven by its own h2load pinned to the other replica's core.
      const [ra, rb] = await Promise.all([
        runPinned(CLIENT_CORE, "h2load", h2loadArgs(opts(a.port)), { timeoutMs: (seconds + 30) * 1000 }),
        runPinned(SERVER_CORE, "h2load", h2loadArgs(opts(b.port)), { timeoutMs: (seconds + 30) * 1000 }),
      ]);
      out.twoEach.push([parse(ra), parse(rb)]);
      out.two.push(parse(ra) + parse(rb));
      log(`  route round ${round + 1}/${rounds}: one replica ${Math.round(out.one.at(-1))} calls/s, two replicas ${Math.round(out.two.at(-1))} calls/s (${out.twoEach.at(-1).map(Math.round).join(" + ")})`);
    }
  } finally {
    await a.stop();
    await b.stop();
  }
  return {
    ...out,
    commands: [
      rollgateCommand({ dbUrl: "postgres://…", core: SERVER_CORE, extra: ["--replica-id", "a"] }),
      rollgateCommand({ dbUrl: "postgres://…", core: CLIENT_CORE, extra: ["--replica-id", "b"] }),
      h2loadCommand(opts("<port A>")) + "   # one replica; with two, the same at each replica at once, pinned to the other replica's core",
    ],
  };
}

/** Milliseconds from a kill -9 of the evaluator to another replica's "became the evaluator" log line. */
async function failover({ cluster, rounds, log }) {
  const url = await cluster.createDatabase("bench_failover");
  const start = (id) => startRollgate({ dbUrl: url, core: SERVER_CORE, extra: ["--replica-id", id] });
  const leads = (r) => r.logs.some((l) => l.msg === "became the evaluator");
  const replicas = [await start("f0"), await start("f1"), await start("f2")];
  let n = 3;
  const times = [];
  try {
    let leader;
    for (let i = 0; i < 100 && leader === undefined; i++) {
      leader = replicas.find(leads);
      if (leader === undefined) await sleep(50);
    }
    if (leader === undefined) throw new Error("no replica became the evaluator");
    for (let round = 0; round < rounds; round++) {
      // Let the others settle into their once-a-second campaign (a kill right after start measures start-up).
      await sleep(1000 + Math.random() * 1000);
      const killedAt = Date.now();
      leader.child.kill("SIGKILL");
      const others = replicas.filter((r) => r !== leader);
      let next;
      for (let i = 0; i < 400 && next === undefined; i++) {
        next = others.find((r) => r.logs.some((l) => l.msg === "became the evaluator" && l.time >= killedAt));
        if (next === undefined) await sleep(25);
      }
      if (next === undefined) throw new Error("no replica took over within 10 s");
      const took = next.logs.find((l) => l.msg === "became the evaluator" && l.time >= killedAt).time - killedAt;
      times.push(took);
      log(`  failover round ${round + 1}/${rounds}: ${took} ms`);
      // Back to three replicas.
      replicas.splice(replicas.indexOf(leader), 1, await start(`f${n++}`));
      leader = next;
    }
  } finally {
    for (const r of replicas) await r.stop().catch(() => undefined);
  }
  return { times, command: "3 replicas on one database; kill -9 the one that logged \"became the evaluator\"; time to the next such line (pino `time`)" };
}

/** Runs every part; returns raw per-round figures and the commands. */
export async function replicasCase({ dir, seconds, rounds, log }) {
  const cluster = await startPostgres();
  try {
    const c = await commits({ cluster, rounds, seconds: Math.max(2, seconds * 2), log });
    const p = await propagation({ cluster, seconds: Math.max(10, seconds * 10), log });
    const r = await route({ cluster, dir, seconds: Math.max(2, seconds * 2), rounds, log });
    const f = await failover({ cluster, rounds: Math.max(5, rounds), log });
    return {
      commits: c,
      propagation: p,
      route: r,
      failover: f,
      commands: [
        rollgateCommand({}) + "   # SQLite",
        rollgateCommand({ dbUrl: "postgres://…", extra: ["--replica-id", "bench-1"] }) + "   # PostgreSQL (started by the bench: fsync off)",
        commandText(CLIENT_CORE, "node", ["bench/clients/set-weight.mjs", "<port>", "w", "1", "2"]) + "   # and 8 callers",
        commandText(CLIENT_CORE, "node", ["bench/clients/pg-floor.mjs", "<url>", "1", "2"]) + "   # and 8 connections",
        commandText(SERVER_CORE, "node", ["bench/clients/sqlite-floor.mjs", "<tmp>/floor.db", "2"]),
        p.command,
        ...r.commands,
        f.command,
      ],
    };
  } finally {
    cluster.stop();
  }
}
