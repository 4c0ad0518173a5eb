// The PostgreSQL durability floor: what one committed transaction costs on this server, measured
// with node-postgres alone — `callers` connections, each committing one transaction at a time
// that writes a rollout-sized row (upsert) and an event-sized row, as a rollgate change does.
// The cluster runs as the benchmark starts it (scripts/postgres-cluster.mjs: fsync off, so a
// commit is a WAL write, not a disk flush — the same for rollgate on that cluster).
// Usage: node pg-floor.mjs <url> <callers> <seconds>
// Prints {"commitsPerSec", "commits", "seconds", "callers"}.
import pg from "pg";

const [url, callersArg, secondsArg] = process.argv.slice(2);
const callers = Number(callersArg);
const setup = new pg.Client({ connectionString: url });
await setup.connect();
await setup.query("CREATE TABLE IF NOT EXISTS floor_r (name TEXT PRIMARY KEY, data TEXT); CREATE TABLE IF NOT EXISTS floor_e (seq BIGSERIAL PRIMARY KEY, data TEXT)");
await setup.end();
const rollout = "x".repeat(1500);
const event = "y".repeat(800);
const end = performance.now() + Number(secondsArg) * 1000;
const t0 = performance.now();
let n = 0;
await Promise.all(
  Array.from({ length: callers }, async (_, c) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    while (performance.now() < end) {
      await client.query("BEGIN");
      await client.query({ name: "put", text: "INSERT INTO floor_r (name, data) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET data = excluded.data", values: [`r-${c}`, rollout] });
      await client.query({ name: "ev", text: "INSERT INTO floor_e (data) VALUES ($1)", values: [event] });
      await client.query("COMMIT");
      n++;
    }
    await client.end();
  }),
);
const seconds = (performance.now() - t0) / 1000;
process.stdout.write(JSON.stringify({ commitsPerSec: n / seconds, commits: n, seconds, callers }) + "\n");
