// The durability floor: what one synchronous FULL commit costs on this disk, measured with
// better-sqlite3 alone — WAL journal, synchronous = FULL (as rollgate's store opens it), one
// transaction per change writing a rollout-sized row and an event-sized row.
// Usage: node sqlite-floor.mjs <db file> <seconds>
// Prints {"commitsPerSec", "commits", "seconds"}.
import Database from "better-sqlite3";

const [path, secondsArg] = process.argv.slice(2);
const db = new Database(path);
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
db.exec("CREATE TABLE IF NOT EXISTS r (name TEXT PRIMARY KEY, data TEXT); CREATE TABLE IF NOT EXISTS e (seq INTEGER PRIMARY KEY, data TEXT)");
const put = db.prepare("INSERT INTO r (name, data) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET data = excluded.data");
const ev = db.prepare("INSERT INTO e (data) VALUES (?)");
const rollout = "x".repeat(1500);
const event = "y".repeat(800);
const tx = db.transaction((i) => {
  put.run(`r-${i % 100}`, rollout);
  ev.run(event);
});
const end = performance.now() + Number(secondsArg) * 1000;
const t0 = performance.now();
let n = 0;
while (performance.now() < end) tx(n++);
const seconds = (performance.now() - t0) / 1000;
db.close();
process.stdout.write(JSON.stringify({ commitsPerSec: n / seconds, commits: n, seconds }) + "\n");
