import { describe, expect, it } from "vitest";
import { createSketch } from "../../src/domain/latency-sketch.js";
import { runSequentialGates, type SequentialAnalysisState } from "../../src/domain/sequential-gate.js";
import { binomialUpperTail } from "../../src/domain/statistics.js";
import { T0 } from "./fixtures.js";
import { INTERVAL_MS, sequentialRollout, simulate, type Figures, type Scenario } from "./sequential-simulation.js";

/**
 * Judgement quality of sequential error-rate gates (issue 18, docs/judgement.md): a seeded
 * simulation of 100 canary samples per evaluation, n_s stable ones, 20 evaluations, the stable
 * failing 1% of requests (unknown to the test), judged by `error_rate { max_ratio: 1,
 * confidence: 0.99 }` (min_samples 100), a new canary version whose stable has run for 11 intervals before it (a new rollout's first canary, without that history, is a stress row), beside today's rule (`max_ratio 1.2`, confidence 0.995,
 * a 12-interval window, 2 failures in a row) and the best single look.
 *
 * The cells the assertions rest on run SEQUENTIAL_RUNS times (default 2,000: the Monte-Carlo
 * standard error of a 1% rate is then 0.22 points, printed beside it, and each assertion leaves
 * two of them); the others an eighth as often (at least 200). `SEQUENTIAL_RUNS=40000 npx vitest run
 * test/domain/sequential-quality.test.ts` prints the figures docs/judgement.md records. The seeds
 * here (18_001…) are not the ones the constants were calibrated on (91_000…, docs/judgement.md).
 */

const RUNS = Number(process.env.SEQUENTIAL_RUNS ?? 2000);
const OTHER_RUNS = Math.max(200, Math.round(RUNS / 8));
/** Larger runs (SEQUENTIAL_RUNS) take proportionally longer. */
const TIMEOUT = 120_000 * Math.max(1, RUNS / 2000);
/** A new canary version of a running rollout: the stable's window (12 intervals) holds 11 intervals of history when it starts. */
const base = { canaryN: 100, stableN: 1900, stableRate: 0.01, ratio: 1, evaluations: 20, history: 11 } satisfies Scenario;

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const row = (label: string, f: Figures, fixed?: Figures) =>
  [label, `${pct(f.rolledBack)} ± ${(100 * f.se).toFixed(2)}`, pct(f.within3), pct(f.within6), pct(f.within10), pct(f.within20), Number.isNaN(f.meanEvaluations) ? "-" : f.meanEvaluations.toFixed(2), fixed === undefined ? "" : pct(fixed.within6)];

/** The best single test at evaluation 6 with the stable rate known (Neyman–Pearson): its power at `ratio`. */
function npBound(ratio: number): number {
  const n = 6 * base.canaryN;
  let t = 0;
  while (binomialUpperTail(t, n, base.stableRate) > 0.01) t++;
  return binomialUpperTail(t, n, ratio * base.stableRate);
}

function table(title: string, rows: string[][]): string {
  const head = ["", "rolled back (20 evals)", "≤ 3", "≤ 6", "≤ 10", "≤ 20", "mean evals", "fixed test at 6"];
  const all = [head, ...rows];
  const width = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
  return `${title}\n${all.map((r) => r.map((c, i) => c.padEnd(width[i] ?? 0)).join(" | ")).join("\n")}`;
}

describe("sequential judgement quality (seeded simulation)", () => {
  it("n_s 1,900: ≤ 1% false rollbacks over 20 evaluations; 3× canaries caught within 6 and fast on average", { timeout: TIMEOUT }, () => {
    const healthy = simulate(base, RUNS, 18_001);
    const bad = simulate({ ...base, ratio: 3 }, RUNS, 18_002);
    const rows = [
      row("sequential, healthy (1×)", healthy.sequential),
      row("today's rule, healthy", healthy.today),
      row("sequential, 3×", bad.sequential, bad.fixed6),
      row("today's rule, 3×", bad.today),
    ];
    console.log(`${table(`sequential judgement, ${RUNS} rollouts per cell, 100 canary + 1,900 stable per evaluation`, rows)}\nNeyman–Pearson bound at 6 (stable rate known): ${pct(npBound(3))}`);

    // The promise: ≤ 1% of healthy canaries ever rolled back (exact up to the Bernoulli/Poisson difference, which is conservative).
    expect(healthy.sequential.rolledBack).toBeLessThanOrEqual(0.01 + 2 * healthy.sequential.se);
    const s = bad.sequential;
    const se6 = Math.sqrt((s.within6 * (1 - s.within6)) / s.runs);
    // Issue 18's targets: ≥ 85% within 6 and a mean ≤ 4.5 (measured on other seeds, docs/judgement.md).
    expect(s.within6).toBeGreaterThanOrEqual(0.85 - 2 * se6);
    expect(s.meanEvaluations).toBeLessThanOrEqual(4.5 + 2 * s.meanSe);
    expect(s.within6).toBeGreaterThanOrEqual(0.92 * 0.9); // ≥ 0.92 × the ceiling of 90.2% for a test valid whatever the stable rate
    // Far better than today's rule, at no more false rollbacks than the budget allows.
    expect(s.within6).toBeGreaterThan(bad.today.within6 + 0.2);
    expect(s.meanEvaluations).toBeLessThan(bad.today.meanEvaluations - 1);
  });

  it("bursty errors (CV 0.5): the bursty null law keeps false rollbacks ≤ 2% and still catches ≥ 65% of 3× canaries within 6", { timeout: TIMEOUT }, () => {
    const healthy = simulate({ ...base, burstCv: 0.5 }, RUNS, 18_003);
    const bad = simulate({ ...base, ratio: 3, burstCv: 0.5 }, RUNS, 18_004);
    console.log(table(`bursty errors, CV 0.5, ${RUNS} rollouts per cell`, [row("sequential, healthy", healthy.sequential), row("today's rule, healthy", healthy.today), row("sequential, 3×", bad.sequential, bad.fixed6), row("today's rule, 3×", bad.today)]));
    // Issue 18's targets: ≤ 2% and ≥ 65% (measured 1.4% and 74% on other seeds, docs/judgement.md).
    expect(healthy.sequential.rolledBack).toBeLessThanOrEqual(0.02 + 2 * healthy.sequential.se);
    expect(bad.sequential.within6).toBeGreaterThanOrEqual(0.65 - 2 * Math.sqrt(0.65 * 0.35 / RUNS));
  });

  it("prints the figures at n_s 100, 900, 1,900 for 1.5×, 2×, 3×, 5× and under stress", { timeout: 1.5 * TIMEOUT }, () => {
    const rows: string[][] = [];
    let seed = 18_100;
    const bound: string[] = [];
    for (const stableN of [100, 900, 1900]) {
      for (const ratio of [1, 1.5, 2, 3, 5]) {
        const f = simulate({ ...base, stableN, ratio }, OTHER_RUNS, seed++);
        rows.push(row(`n_s ${stableN}, ${ratio}×: sequential`, f.sequential, f.fixed6), row(`n_s ${stableN}, ${ratio}×: today's rule`, f.today));
        if (stableN === 1900 && ratio > 1) bound.push(`${ratio}×: ${pct(npBound(ratio))}`);
      }
    }
    const stress: [string, Scenario][] = [
      ["drift 1% → 1.5% (both)", { ...base, driftTo: 0.015 }],
      ["bursty CV 0.5", { ...base, burstCv: 0.5 }],
      ["bursty CV 1", { ...base, burstCv: 1 }],
      ["weight step 5% → 25% after 7", { ...base, stepAfter: 7, stepFactor: 5 }],
      ["new rollout (no stable history)", { ...base, history: 0 }],
      ["new rollout, bursty CV 0.5", { ...base, history: 0, burstCv: 0.5 }],
      ["29 intervals of history, bursty CV 0.5", { ...base, history: 29, burstCv: 0.5 }],
    ];
    const stressRows: string[][] = [];
    const healthyStress: Figures[] = [];
    for (const [label, sc] of stress) {
      const h = simulate(sc, OTHER_RUNS, seed++);
      const b = simulate({ ...sc, ratio: 3 }, OTHER_RUNS, seed++);
      healthyStress.push(h.sequential);
      stressRows.push(row(`${label}, healthy: sequential`, h.sequential), row(`${label}, healthy: today's rule`, h.today), row(`${label}, 3×: sequential`, b.sequential, b.fixed6), row(`${label}, 3×: today's rule`, b.today));
    }
    console.log(
      `${table(`sequential vs today's rule, ${OTHER_RUNS} rollouts per cell (n_s 1,900 stress cells below)`, rows)}\nNeyman–Pearson bound within 6 (stable rate known): ${bound.join(", ")}\n\n${table("stress, n_s 1,900", stressRows)}`,
    );
    // A drift shared by both variants, a weight step carried over and a new rollout's steady traffic keep the promise.
    for (const i of [0, 3, 4]) expect(healthyStress[i]!.rolledBack).toBeLessThanOrEqual(0.01 + 2.5 * healthyStress[i]!.se);
  });

  it("10× traffic (1,000 canary + 19,000 stable per evaluation, the coarse lattice): ≤ 1% false rollbacks, and 1.5× canaries caught about as fast as 3× ones at 1×", { timeout: TIMEOUT }, () => {
    const big = { ...base, canaryN: 1000, stableN: 19_000 };
    const runs = OTHER_RUNS;
    const healthy = simulate(big, runs, 18_050);
    const bad = simulate({ ...big, ratio: 1.5 }, runs, 18_051);
    console.log(table(`10× traffic, ${runs} rollouts per cell`, [row("sequential, healthy", healthy.sequential), row("today's rule, healthy", healthy.today), row("sequential, 1.5×", bad.sequential, bad.fixed6), row("today's rule, 1.5×", bad.today)]));
    expect(healthy.sequential.rolledBack).toBeLessThanOrEqual(0.01 + 2 * healthy.sequential.se);
    // The best single look at 6 (exact) is the yardstick: the sequential test catches about as many by 6, and many sooner.
    expect(bad.sequential.within6).toBeGreaterThanOrEqual(bad.fixed6.within6 - 0.05);
    expect(bad.sequential.meanEvaluations).toBeLessThan(6);
  });

  it("costs a few microseconds per evaluation (printed, not asserted)", () => {
    const r = sequentialRollout();
    const sketch = createSketch();
    for (const scale of [1, 10, 100]) {
      let state: SequentialAnalysisState | undefined;
      const evals = 2000;
      let t = 0;
      for (let e = 0; e < evals; e++) {
        const from = T0 + e * INTERVAL_MS;
        const c = 100 * scale;
        const s = 1900 * scale;
        const agg = (n: number, errors: number) => ({ count: n, errors, invariantViolations: 0, latency: sketch, metrics: new Map(), buckets: [{ startMs: from, endMs: from + INTERVAL_MS, count: n, errors }] });
        // A fresh test every 20 evaluations, so that the state stays the size a step has.
        const start = performance.now();
        const run = runSequentialGates(r, agg(c, scale), agg(s, 19 * scale), e % 20 === 0 ? undefined : state, from + INTERVAL_MS, true);
        t += performance.now() - start;
        state = run.state;
      }
      console.log(`sequential gate at ${scale}× traffic (${100 * scale} canary + ${1900 * scale} stable per interval): ${((1000 * t) / evals).toFixed(1)} µs per evaluation, state ${JSON.stringify(state).length} bytes`);
    }
  });
});
