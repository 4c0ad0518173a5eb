import { evaluateGate } from "../../src/domain/gates.js";
import { createSketch } from "../../src/domain/latency-sketch.js";
import type { Rollout } from "../../src/domain/rollout.js";
import { runSequentialGates, type SequentialAnalysisState } from "../../src/domain/sequential-gate.js";
import type { WindowAggregate } from "../../src/domain/sliding-window.js";
import { ratioExceedsPValue } from "../../src/domain/statistics.js";
import { T0, gate, mulberry32, rolloutWith } from "./fixtures.js";

/**
 * A seeded simulation of the setting of issue 18, driving the real sequential gate
 * (`runSequentialGates`) and today's fixed-sample gate (`evaluateGate`) with per-interval
 * counts drawn directly from binomials (no per-outcome work, so that tens of thousands of
 * rollouts run in seconds). Each interval is one bucket of the window, evaluated when it closes.
 */

export const INTERVAL_MS = 10_000;

/** One simulated scenario. */
export interface Scenario {
  /** Canary requests per evaluation (before a weight step). */
  readonly canaryN: number;
  /** Stable requests per evaluation. */
  readonly stableN: number;
  /** The stable's mean error rate at evaluation 1. */
  readonly stableRate: number;
  /** The canary's rate as a multiple of the stable's. */
  readonly ratio: number;
  readonly evaluations: number;
  /** The stable's (and so the canary's) mean rate at the last evaluation: a linear drift shared by both. */
  readonly driftTo?: number;
  /** Coefficient of variation of each variant's per-interval rate, drawn independently (beta). */
  readonly burstCv?: number;
  /** After this evaluation the canary's traffic is multiplied by `stepFactor` (a weight step, stable traffic shrinking to match). */
  readonly stepAfter?: number;
  readonly stepFactor?: number;
  /**
   * Stable intervals (at the full traffic, canary + stable) in the stable's window when the
   * canary version starts: a new canary version of a rollout whose stable has been running. The
   * first evaluation folds them in (the engine's first look at a canary version sees every closed
   * bucket of the stable's window). 0 (the default): a new rollout, no history.
   */
  readonly history?: number;
}

/** The evaluation (1-based) at which each policy rolled back, 0 for never. */
export interface RunResult {
  readonly sequential: number;
  /** Today's rule: fixed exact ratio test > 1.2× at 0.995 on a 12-interval window, 2 failures in a row. */
  readonly today: number;
  /** One exact conditional test at evaluation 6 only, at α 0.01 (the best single look). */
  readonly fixed6: number;
}

const EMPTY_SKETCH = createSketch();

function agg(count: number, errors: number, buckets: { startMs: number; endMs: number; count: number; errors: number }[]): WindowAggregate {
  return { count, errors, invariantViolations: 0, latency: EMPTY_SKETCH, metrics: new Map(), buckets };
}

/** Returns a Binomial(n, p) draw by inversion (O(np) steps: cheap for rare errors). */
export function binomial(n: number, p: number, rnd: () => number): number {
  if (p <= 0 || n <= 0) return 0;
  if (p >= 1) return n;
  if (n * p > 50) {
    // Normal approximation with continuity: only used for large counts, where it is fine for a simulation.
    const z = Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
    return Math.max(0, Math.min(n, Math.round(n * p + z * Math.sqrt(n * p * (1 - p)))));
  }
  const q = p / (1 - p);
  let pk = (1 - p) ** n;
  let cdf = pk;
  const u = rnd();
  let k = 0;
  while (u > cdf && k < n) {
    pk *= ((n - k) / (k + 1)) * q;
    cdf += pk;
    k++;
  }
  return k;
}

function gammaDraw(shape: number, rnd: () => number): number {
  if (shape < 1) return gammaDraw(shape + 1, rnd) * rnd() ** (1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const z = Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
    const v = (1 + c * z) ** 3;
    if (v <= 0) continue;
    if (Math.log(1 - rnd()) < 0.5 * z * z + d - d * v + d * Math.log(v)) return d * v;
  }
}

/** Returns a rate drawn from a beta with mean `mean` and coefficient of variation `cv`. */
export function burstyRate(mean: number, cv: number, rnd: () => number): number {
  if (cv <= 0) return mean;
  const total = (1 - mean) / (cv * cv * mean) - 1;
  const a = gammaDraw(mean * total, rnd);
  const b = gammaDraw((1 - mean) * total, rnd);
  return a / (a + b);
}

/** The rollout every run judges: one error_rate gate, max_ratio `r0` at `confidence`, min_samples 100. */
export function sequentialRollout(r0 = 1, confidence = 0.99): Rollout {
  return rolloutWith({
    steps: [{ weightBp: 500, minDurationMs: 0, minSamples: 0 }],
    gates: [gate("errors", { kind: "error_rate", maxRatio: r0, confidence }, { minSamples: 100 })],
    analysis: { windowMs: 12 * INTERVAL_MS, intervalMs: INTERVAL_MS, consecutiveBreaches: 2 },
  });
}

const todayGate = gate("errors", { kind: "error_rate", maxRatio: 1.2, confidence: 0.995 }, { minSamples: 100 });

/** Returns the stable's buckets before the canary started (Scenario.history), oldest first. */
function historyOf(s: Scenario, rnd: () => number): { startMs: number; endMs: number; count: number; errors: number }[] {
  const out = [];
  const n = s.canaryN + s.stableN;
  for (let h = s.history ?? 0; h >= 1; h--) {
    const startMs = T0 - h * INTERVAL_MS;
    out.push({ startMs, endMs: startMs + INTERVAL_MS, count: n, errors: binomial(n, burstyRate(s.stableRate, s.burstCv ?? 0, rnd), rnd) });
  }
  return out;
}

/** Simulates one rollout of a scenario, judged by the three policies on the same traffic. */
export function simulateRun(s: Scenario, rollout: Rollout, rnd: () => number): RunResult {
  let state: SequentialAnalysisState | undefined;
  let sequential = 0;
  let today = 0;
  let fixed6 = 0;
  let consecutive = 0;
  const window: { c: number; ce: number; s: number; se: number }[] = [];
  let cum = { c: 0, ce: 0, s: 0, se: 0 };
  for (let e = 1; e <= s.evaluations; e++) {
    const mean = s.driftTo === undefined ? s.stableRate : s.stableRate + ((s.driftTo - s.stableRate) * (e - 1)) / Math.max(1, s.evaluations - 1);
    const stepped = s.stepAfter !== undefined && e > s.stepAfter;
    const cn = stepped ? Math.round(s.canaryN * (s.stepFactor ?? 1)) : s.canaryN;
    const sn = stepped ? Math.max(0, s.stableN + s.canaryN - cn) : s.stableN;
    const cv = s.burstCv ?? 0;
    const ce = binomial(cn, burstyRate(Math.min(0.5, mean * s.ratio), cv, rnd), rnd);
    const se = binomial(sn, burstyRate(mean, cv, rnd), rnd);
    const from = T0 + (e - 1) * INTERVAL_MS;
    const now = from + INTERVAL_MS;
    if (sequential === 0) {
      const stableBuckets = [{ startMs: from, endMs: now, count: sn, errors: se }];
      if (e === 1) stableBuckets.unshift(...historyOf(s, rnd));
      const run = runSequentialGates(rollout, agg(cn, ce, [{ startMs: from, endMs: now, count: cn, errors: ce }]), agg(sn, se, stableBuckets), state, now, true);
      state = run.state;
      if (run.results.get("errors")?.verdict === "fail") sequential = e;
    }
    window.push({ c: cn, ce, s: sn, se });
    if (window.length > 12) window.shift();
    cum = { c: cum.c + cn, ce: cum.ce + ce, s: cum.s + sn, se: cum.se + se };
    if (today === 0) {
      const w = window.reduce((a, x) => ({ c: a.c + x.c, ce: a.ce + x.ce, s: a.s + x.s, se: a.se + x.se }), { c: 0, ce: 0, s: 0, se: 0 });
      const res = evaluateGate(todayGate, agg(w.c, w.ce, []), agg(w.s, w.se, []));
      if (res.verdict === "fail") consecutive++;
      else if (res.verdict !== "inconclusive") consecutive = 0;
      if (consecutive >= 2) today = e;
    }
    if (e === 6 && ratioExceedsPValue(cum.ce, cum.c, cum.se, cum.s, 1) <= 0.01) fixed6 = e;
  }
  return { sequential, today, fixed6 };
}

/** Figures of one policy over many runs. */
export interface Figures {
  readonly runs: number;
  readonly rolledBack: number;
  /** Standard error of `rolledBack`. */
  readonly se: number;
  readonly within3: number;
  readonly within6: number;
  readonly within10: number;
  readonly within20: number;
  /** Mean evaluation of rollback over the runs rolled back. */
  readonly meanEvaluations: number;
  /** Standard error of `meanEvaluations`. */
  readonly meanSe: number;
}

/** Returns the figures of a list of rollback evaluations (0 = never). */
export function figuresOf(at: readonly number[]): Figures {
  const n = at.length;
  const share = (f: (x: number) => boolean) => at.filter(f).length / n;
  const rolled = share((x) => x > 0);
  const hits = at.filter((x) => x > 0);
  const mean = hits.length === 0 ? NaN : hits.reduce((a, b) => a + b, 0) / hits.length;
  return {
    runs: n,
    rolledBack: rolled,
    se: Math.sqrt((rolled * (1 - rolled)) / n),
    within3: share((x) => x > 0 && x <= 3),
    within6: share((x) => x > 0 && x <= 6),
    within10: share((x) => x > 0 && x <= 10),
    within20: share((x) => x > 0 && x <= 20),
    meanEvaluations: mean,
    meanSe: hits.length < 2 ? NaN : Math.sqrt(hits.reduce((a, b) => a + (b - mean) ** 2, 0) / (hits.length - 1) / hits.length),
  };
}

/** Runs a scenario `runs` times from `seed` and returns the figures of each policy. */
export function simulate(s: Scenario, runs: number, seed: number, rollout = sequentialRollout()): Record<keyof RunResult, Figures> {
  const rnd = mulberry32(seed);
  const results = Array.from({ length: runs }, () => simulateRun(s, rollout, rnd));
  return {
    sequential: figuresOf(results.map((r) => r.sequential)),
    today: figuresOf(results.map((r) => r.today)),
    fixed6: figuresOf(results.map((r) => r.fixed6)),
  };
}
