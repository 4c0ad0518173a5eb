// Issue 18: the per-evaluation cost of a sequential error-rate gate and the size of the state it
// carries between evaluations (persisted with the analysis state), printed, no target. Each
// figure is the best of `rounds` rounds of 20,000 evaluations at 1× traffic (4,000 at 10×, 1,000
// at 100× and 1,000×; a fresh test every 20 looks, the size a canary's test has), beside a reference in the same run: 612 bare multiply-adds in a
// Float64Array, the convolution the test does at 1× traffic, so that a loaded machine's figures
// can be read as ratios. From 10× on the per-interval kernels are wider than 48 counts and the
// test runs on its coarse lattice (docs/judgement.md, "Cost"): at most 128 × 48 multiply-adds a
// look and 128 numbers of state, whatever the traffic. Steady traffic (the binomial kernel) and bursty traffic (the stable's
// errors alternating ±50%, so that the rate variation is estimated and the bursty kernel used).
// Needs `npx tsc -b` (it imports the built domain code).
import { runSequentialGates } from "../../dist/src/domain/sequential-gate.js";
import { createSketch } from "../../dist/src/domain/latency-sketch.js";
import { createRollout } from "../../dist/src/domain/rollout-machine.js";
import { analysisWithDefaults } from "../../dist/src/domain/rollout.js";

const N = 20_000;

function rolloutOf() {
  return createRollout(
    {
      name: "bench", stableVersion: "v1", canaryVersion: "v2", steps: [{ weightBp: 500, minDurationMs: 0, minSamples: 0 }], features: new Map(), salt: "bench",
      gates: [{ name: "errors", minSamples: 100, onBreach: "rollback", check: { kind: "error_rate", maxRatio: 1, confidence: 0.99 } }],
      analysis: analysisWithDefaults({}),
    },
    { name: "bench", now: 0 },
  );
}

/** Returns [µs per evaluation, largest state in JSON bytes] of one gate at `scale`× the 100 + 1,900 requests per interval. */
function gate(rollout, scale, bursty, rounds) {
  const sketch = createSketch();
  const evals = scale >= 100 ? N / 20 : scale >= 10 ? N / 5 : N;
  let bytes = 0;
  const us = Math.min(
    ...Array.from({ length: rounds }, () => {
      let state;
      const t0 = performance.now();
      for (let e = 0; e < evals; e++) {
        const from = e * 10_000;
        const agg = (n, errors) => ({ count: n, errors, invariantViolations: 0, latency: sketch, metrics: new Map(), buckets: [{ startMs: from, endMs: from + 10_000, count: n, errors }] });
        // Steady: stable errors 18, 19, 20 (within binomial noise); bursty: 10 / 29 alternating.
        const stableErrors = bursty ? (e % 2 === 0 ? 10 : 29) : 19 + (e % 3) - 1;
        state = runSequentialGates(rollout, agg(100 * scale, scale), agg(1900 * scale, stableErrors * scale), e % 20 === 0 ? undefined : state, from + 10_000, true).state;
        if (e % 20 === 19) bytes = Math.max(bytes, JSON.stringify(state).length);
      }
      return (1000 * (performance.now() - t0)) / evals;
    }),
  );
  return [us, bytes];
}

function reference(rounds) {
  const f = Array.from({ length: 36 }, (_, i) => 1 / (i + 1));
  const k = Array.from({ length: 17 }, (_, i) => 1 / (i + 2));
  let acc = 0;
  const us = Math.min(
    ...Array.from({ length: rounds }, () => {
      const t0 = performance.now();
      for (let n = 0; n < N; n++) {
        const out = new Float64Array(52);
        for (let i = 0; i < 36; i++) for (let j = 0; j < 17; j++) out[i + j] += f[i] * k[j];
        acc += out[10];
      }
      return (1000 * (performance.now() - t0)) / N;
    }),
  );
  return acc > 0 ? us : us;
}

export async function sequentialCase({ rounds = 5, log = console.log } = {}) {
  const rollout = rolloutOf();
  const ref = reference(rounds);
  log(`  reference: 612 multiply-adds ${ref.toFixed(2)} µs`);
  const rows = [];
  for (const bursty of [false, true]) {
    for (const scale of [1, 10, 100, 1000]) {
      const [us, stateBytes] = gate(rollout, scale, bursty, rounds);
      rows.push({ traffic: `${100 * scale} canary + ${1900 * scale} stable per interval`, bursty, us, stateBytes, ratio: us / ref });
      log(`  sequential gate, ${100 * scale} canary + ${1900 * scale} stable per interval${bursty ? ", bursty" : ""}: ${us.toFixed(1)} µs per evaluation (${(us / ref).toFixed(1)}× the reference), state ≤ ${stateBytes} bytes of JSON`);
    }
  }
  return { referenceUs: ref, rows, command: "node bench/run.mjs --only=sequential" };
}
