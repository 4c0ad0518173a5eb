// Per-evaluation cost of a sequential error-rate gate (issue 18), printed, not asserted:
// `node bench/sequential-gate.mjs` after `npx tsc -b`. Each figure is the best of 5 rounds of
// 20,000 evaluations (a fresh test every 20 looks, the size a canary's test has), beside a
// reference in the same run: 612 bare multiply-adds in a Float64Array, the convolution the
// test does at 1× traffic, so that a loaded machine's figures can be read as ratios.
import { runSequentialGates } from "../dist/src/domain/sequential-gate.js";
import { createSketch } from "../dist/src/domain/latency-sketch.js";
import { createRollout } from "../dist/src/domain/rollout-machine.js";
import { analysisWithDefaults } from "../dist/src/domain/rollout.js";

const rollout = createRollout(
  {
    name: "bench", stableVersion: "v1", canaryVersion: "v2", steps: [{ weightBp: 500, minDurationMs: 0, minSamples: 0 }], features: new Map(), salt: "bench",
    gates: [{ name: "errors", minSamples: 100, onBreach: "rollback", check: { kind: "error_rate", maxRatio: 1, confidence: 0.99 } }],
    analysis: analysisWithDefaults({}),
  },
  { name: "bench", now: 0 },
);
const sketch = createSketch();
const N = 20_000;
const best = (f) => Math.min(...Array.from({ length: 5 }, f));

function gate(scale) {
  return best(() => {
    let state;
    const t0 = performance.now();
    for (let e = 0; e < N; e++) {
      const from = e * 10_000;
      const agg = (n, errors) => ({ count: n, errors, invariantViolations: 0, latency: sketch, metrics: new Map(), buckets: [{ startMs: from, endMs: from + 10_000, count: n, errors }] });
      // Stable errors vary a little, as real ones do, so that the dispersion estimate is exercised.
      state = runSequentialGates(rollout, agg(100 * scale, scale), agg(1900 * scale, (19 + (e % 3) - 1) * scale), e % 20 === 0 ? undefined : state, from + 10_000, true).state;
    }
    return (1000 * (performance.now() - t0)) / N;
  });
}

function reference() {
  const f = Array.from({ length: 36 }, (_, i) => 1 / (i + 1));
  const k = Array.from({ length: 17 }, (_, i) => 1 / (i + 2));
  let acc = 0;
  const us = best(() => {
    const t0 = performance.now();
    for (let n = 0; n < N; n++) {
      const out = new Float64Array(52);
      for (let i = 0; i < 36; i++) for (let j = 0; j < 17; j++) out[i + j] += f[i] * k[j];
      acc += out[10];
    }
    return (1000 * (performance.now() - t0)) / N;
  });
  return acc > 0 ? us : us;
}

const ref = reference();
console.log(`reference: 612 multiply-adds ${ref.toFixed(2)} µs`);
for (const scale of [1, 10, 100]) {
  const us = gate(scale);
  console.log(`sequential gate, ${100 * scale} canary + ${1900 * scale} stable per interval: ${us.toFixed(1)} µs per evaluation (${(us / ref).toFixed(1)}× the reference)`);
}
