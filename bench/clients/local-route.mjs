// Local evaluation in one process on one core: the TypeScript client's local `route` (state from
// a live WatchRoutes stream), the same client's remote `route` (1 and 16 calls in flight), and
// @openfeature/flagd-core's in-process fractional evaluation, over the same distinct keys,
// interleaved round by round after a warm-up. Local answers are checked against remote ones first.
// Usage: node local-route.mjs <port> <rollout> <rounds> <local calls per round> <remote seconds per round>
// Prints {"rounds": {"local": [ns...], "flagd": [ns...], "remote1": [ns...], "remote16": [ns...]}, ...}: wall
// time per decision; "cpuRounds" (same keys): this process's CPU time per decision.
import { FlagdCore } from "@openfeature/flagd-core";
import { createLocalRollgateClient } from "../../clients/typescript/dist/index.js";

const [port, rollout, roundsArg, callsArg, remoteSecondsArg] = process.argv.slice(2);
const rounds = Number(roundsArg);
const calls = Number(callsArg);
const remoteSeconds = Number(remoteSecondsArg);
const KEYS = 100_000;
const keys = Array.from({ length: KEYS }, (_, i) => `user-${(i * 2654435761) >>> 0}`);

const client = createLocalRollgateClient({ baseUrl: `http://127.0.0.1:${port}`, local: { logger: { warn: () => {} } } });
if (!(await client.ready(10_000))) throw new Error("local mode got no state within 10 s");

// Correctness first: 2,000 keys routed both ways must agree field by field.
for (const k of keys.slice(0, 2000)) {
  const l = client.route(rollout, k);
  const r = await client.remote.route(rollout, k);
  if (l.variant !== r.variant || l.bucket !== r.bucket || l.version !== r.version || l.reason !== r.reason || l.rolloutVersion !== r.rolloutVersion) {
    throw new Error(`local and remote disagree on ${k}: ${JSON.stringify({ ...l, rolloutVersion: String(l.rolloutVersion) })}`);
  }
}

const flagd = new FlagdCore();
flagd.setConfigurations(
  JSON.stringify({
    flags: {
      [rollout]: { state: "ENABLED", variants: { stable: "v1", canary: "v2" }, defaultVariant: "stable", targeting: { fractional: [["canary", 5], ["stable", 95]] } },
    },
  }),
);

let sink = 0;
/** CPU time of this process (user + system) in ns: unlike wall time, not inflated when a busy machine preempts it. */
const cpuNs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
};
const cpu = { local: [], flagd: [], remote1: [], remote16: [] };
const timed = {
  local(n) {
    const c0 = cpuNs();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink += client.route(rollout, keys[i % KEYS]).bucket;
    const wall = Number(process.hrtime.bigint() - t0) / n;
    cpu.local.push((cpuNs() - c0) / n);
    return wall;
  },
  flagd(n) {
    const c0 = cpuNs();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink += flagd.resolveStringEvaluation(rollout, "v1", { targetingKey: keys[i % KEYS] }).value.length;
    const wall = Number(process.hrtime.bigint() - t0) / n;
    cpu.flagd.push((cpuNs() - c0) / n);
    return wall;
  },
};
/** Remote route with `inFlight` calls outstanding for `seconds`; ns per decision (wall time). */
async function remote(inFlight, seconds) {
  let done = 0;
  const end = performance.now() + seconds * 1000;
  const c0 = cpuNs();
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: inFlight }, async (_, w) => {
      let i = w;
      while (performance.now() < end) {
        sink += (await client.remote.route(rollout, keys[i % KEYS])).bucket;
        i += inFlight;
        done++;
      }
    }),
  );
  const wall = Number(process.hrtime.bigint() - t0) / done;
  cpu[`remote${inFlight}`]?.push((cpuNs() - c0) / done);
  return wall;
}

timed.local(Math.min(calls, 300_000));
timed.flagd(Math.min(calls, 300_000));
await remote(16, 0.5);
for (const v of Object.values(cpu)) v.length = 0;
const result = { local: [], flagd: [], remote1: [], remote16: [] };
for (let r = 0; r < rounds; r++) {
  result.local.push(timed.local(calls));
  result.flagd.push(timed.flagd(calls));
  result.remote1.push(await remote(1, remoteSeconds));
  result.remote16.push(await remote(16, remoteSeconds));
}
const stats = client.stats();
await client.close();
process.stdout.write(JSON.stringify({ rounds: result, cpuRounds: cpu, calls, keys: KEYS, checked: 2000, fallbacks: stats.fallbacks, decisions: stats.decisions, sink: sink % 7 }) + "\n");
process.exit(0);
