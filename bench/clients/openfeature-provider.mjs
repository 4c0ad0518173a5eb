// The in-process OpenFeature provider through @openfeature/server-sdk beside the same local
// client's plain `route`, over the same distinct keys, interleaved round by round after a
// warm-up. Provider answers are checked against `route` first.
// Usage: node openfeature-provider.mjs <port> <rollout> <rounds> <calls per round>
// Prints {"wallNs": {"route": [...], "provider": [...]}, "cpuNs": {...}}: ns per evaluation.
import { OpenFeature } from "@openfeature/server-sdk";
import { createLocalRollgateClient } from "../../clients/typescript/dist/index.js";
import { createRollgateProvider } from "../../clients/typescript/dist/openfeature-provider.js";

const [port, rollout, roundsArg, callsArg] = process.argv.slice(2);
const rounds = Number(roundsArg);
const calls = Number(callsArg);
const KEYS = 100_000;
const keys = Array.from({ length: KEYS }, (_, i) => `user-${(i * 2654435761) >>> 0}`);
const contexts = keys.map((targetingKey) => ({ targetingKey }));

const local = createLocalRollgateClient({ baseUrl: `http://127.0.0.1:${port}`, local: { logger: { warn: () => {} } } });
await OpenFeature.setProviderAndWait(createRollgateProvider(local));
const client = OpenFeature.getClient();

for (let i = 0; i < 2000; i++) {
  const want = local.route(rollout, keys[i]);
  const got = await client.getStringDetails(rollout, "none", contexts[i]);
  if (got.value !== want.version || got.variant !== want.variant) throw new Error(`provider and route disagree on ${keys[i]}`);
}

let sink = 0;
const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
};
const wallNs = { route: [], provider: [] };
const cpuNs = { route: [], provider: [] };
const run = {
  async route(n) {
    for (let i = 0; i < n; i++) sink += local.route(rollout, keys[i % KEYS]).bucket;
  },
  async provider(n) {
    for (let i = 0; i < n; i++) sink += (await client.getStringValue(rollout, "none", contexts[i % KEYS])).length;
  },
};
await run.route(calls / 10);
await run.provider(calls / 10);
for (let r = 0; r < rounds; r++) {
  for (const [k, f] of Object.entries(run)) {
    const c0 = cpuNow();
    const t0 = process.hrtime.bigint();
    await f(calls);
    wallNs[k].push(Number(process.hrtime.bigint() - t0) / calls);
    cpuNs[k].push((cpuNow() - c0) / calls);
  }
}
await OpenFeature.close();
console.log(JSON.stringify({ wallNs, cpuNs, sink: sink > 0 }));
