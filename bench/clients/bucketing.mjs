// Bucketing in process: rollgate's bucketOf(salt, key) and a full route(compileRoutes(rollout),
// key), beside @openfeature/flagd-core's fractional evaluation of a 2-variant flag, all in this
// one process over the same distinct keys, interleaved round by round after a warm-up.
// bucketOf is checked against the reference vectors before it is timed.
// Usage: node bucketing.mjs <rounds> <calls per round>
// Prints {"rounds": {"bucketOf": [ns...], "route": [ns...], "flagd": [ns...], ...}, ...}.
import { readFileSync } from "node:fs";
import { FlagdCore } from "@openfeature/flagd-core";
import { bucketOf } from "../../dist/src/domain/bucketing.js";
import { analysisWithDefaults, DEFAULT_STEP_WEIGHTS_BP } from "../../dist/src/domain/rollout.js";
import { createRollout } from "../../dist/src/domain/rollout-machine.js";
import { compileRoutes, route } from "../../dist/src/domain/routing.js";

const rounds = Number(process.argv[2] ?? 5);
const calls = Number(process.argv[3] ?? 500_000);
const KEYS = 100_000;
const keys = Array.from({ length: KEYS }, (_, i) => `user-${(i * 2654435761) >>> 0}`);

const rollout = createRollout(
  {
    name: "checkout",
    stableVersion: "v1",
    canaryVersion: "v2",
    steps: DEFAULT_STEP_WEIGHTS_BP.map((weightBp) => ({ weightBp, minDurationMs: 0, minSamples: 0 })),
    features: new Map([["new-checkout", true]]),
    salt: "checkout",
    gates: [],
    analysis: analysisWithDefaults({}),
  },
  { name: "bench", now: Date.now() },
);
const table = compileRoutes(rollout);

const vectors = JSON.parse(readFileSync(new URL("../../vectors/reference/bucketing-v1-vectors.json", import.meta.url), "utf8")).vectors;
for (const v of vectors) {
  if (bucketOf(v.salt, v.key) !== v.bucket) {
    throw new Error(`reference vector ${JSON.stringify(v.key).slice(0, 40)}: bucketOf ${bucketOf(v.salt, v.key)}, want ${v.bucket}`);
  }
}

// The same 5% / 95% split as a flagd flag: fractional over the targeting key (flagd hashes
// flagKey + targetingKey with murmur3 into a percentage).
const flagd = new FlagdCore();
flagd.setConfigurations(
  JSON.stringify({
    flags: {
      checkout: {
        state: "ENABLED",
        variants: { stable: "v1", canary: "v2" },
        defaultVariant: "stable",
        targeting: { fractional: [["canary", 5], ["stable", 95]] },
      },
    },
  }),
);

let sink = 0;
const cases = {
  bucketOf(n) {
    for (let i = 0; i < n; i++) sink += bucketOf("checkout", keys[i % KEYS]);
  },
  route(n) {
    for (let i = 0; i < n; i++) sink += route(table, keys[i % KEYS]).bucket;
  },
  flagd(n) {
    for (let i = 0; i < n; i++) sink += flagd.resolveStringEvaluation("checkout", "v1", { targetingKey: keys[i % KEYS] }).value.length;
  },
};

// Both split about 5% to the canary: a check that each really evaluates what it claims.
let rgCanary = 0;
let fdCanary = 0;
for (const k of keys.slice(0, 20_000)) {
  if (route(table, k).variant === "canary") rgCanary++;
  if (flagd.resolveStringEvaluation("checkout", "v1", { targetingKey: k }).value === "v2") fdCanary++;
}

for (const f of Object.values(cases)) f(Math.min(calls, 200_000)); // warm-up: let the JIT settle
const result = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (let r = 0; r < rounds; r++) {
  for (const [name, f] of Object.entries(cases)) {
    const t0 = process.hrtime.bigint();
    f(calls);
    result[name].push(Number(process.hrtime.bigint() - t0) / calls);
  }
}
process.stdout.write(
  JSON.stringify({ rounds: result, calls, keys: KEYS, vectorsChecked: vectors.length, canaryShare: { rollgate: rgCanary / 20_000, flagd: fdCanary / 20_000 }, sink: sink % 7 }) + "\n",
);
