// Durable changes without the network: the engine's SetWeight (validate, transition, audit event
// with its health snapshot, synchronous FULL commit, apply, log line) with `callers` concurrent
// callers in one process, beside the bare SQLite floor in the same process — what group commit
// buys when the callers are not the limit. `dist` picks the build (another tree's for an A/B).
// Usage: node engine-commits.mjs <dist dir> <db dir> <callers> <seconds>
// Prints {"perSec", "calls", "floorPerSec"}; the engine's log lines go to stderr (a pipe, as stdout is in production).
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import { pino } from "pino";

const [dist, dbDir, callersArg, secondsArg] = process.argv.slice(2);
const load = (p) => import(pathToFileURL(join(dist, p)).href);
const { createEngine } = await load("src/service/engine.js");
const { openSqliteStore } = await load("src/store/sqlite-store.js");
const { setWeight } = await load("src/domain/rollout-machine.js");
const { systemClock } = await load("src/domain/clock.js");
const { analysisWithDefaults, DEFAULT_STEP_WEIGHTS_BP } = await load("src/domain/rollout.js");
let logDest;
try {
  const { createLogDestination } = await load("src/server/log-destination.js");
  logDest = createLogDestination(2);
} catch {
  logDest = pino.destination({ dest: 2, sync: true }); // the build before: pino's synchronous stdout
}
const logger = pino({ level: "info", base: { service: "rollgate" } }, logDest);
const seconds = Number(secondsArg);
const callers = Number(callersArg);

const store = openSqliteStore(join(dbDir, "engine.db"));
const engine = createEngine({ store, clock: systemClock, logger, ...(logDest.flushSync ? { flushLog: () => logDest.flushSync() } : {}) });
await engine.load();
const caller = { actor: "bench", reason: "bench" };
await engine.create(
  {
    name: "s-0",
    stableVersion: "v1",
    canaryVersion: "v2",
    steps: DEFAULT_STEP_WEIGHTS_BP.map((weightBp) => ({ weightBp, minDurationMs: 0, minSamples: 0 })),
    features: new Map(),
    salt: "s-0",
    gates: [],
    analysis: analysisWithDefaults({}),
  },
  caller,
);
let n = 0;
let calls = 0;
const end = performance.now() + seconds * 1000;
const t0 = performance.now();
await Promise.all(
  Array.from({ length: callers }, async () => {
    while (performance.now() < end) {
      const bp = 600 + (n++ % 1000);
      await engine.change("s-0", caller, (r, actor) => setWeight(r, bp, actor));
      calls++;
    }
  }),
);
const perSec = calls / ((performance.now() - t0) / 1000);
await store.close();

// The floor, same process, same disk (as bench/clients/sqlite-floor.mjs).
const db = new Database(join(dbDir, "floor.db"));
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
db.exec("CREATE TABLE IF NOT EXISTS r (name TEXT PRIMARY KEY, data TEXT); CREATE TABLE IF NOT EXISTS e (seq INTEGER PRIMARY KEY, data TEXT)");
const put = db.prepare("INSERT INTO r (name, data) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET data = excluded.data");
const ev = db.prepare("INSERT INTO e (data) VALUES (?)");
const tx = db.transaction((i) => {
  put.run(`r-${i % 100}`, "x".repeat(1500));
  ev.run("y".repeat(800));
});
const fEnd = performance.now() + seconds * 1000;
const f0 = performance.now();
let f = 0;
while (performance.now() < fEnd) tx(f++);
const floorPerSec = f / ((performance.now() - f0) / 1000);
db.close();
process.stdout.write(JSON.stringify({ perSec, calls, floorPerSec }) + "\n");
