import type { GateResult, Verdict } from "./gates.js";
import { fmt, upperVerdict } from "./gates.js";
import type { Gate, Rollout } from "./rollout.js";
import { PLANNED_LOOKS, foldConditional, foldInterval, initialSequentialState, look, parseSequentialState, tailAt, type SequentialState } from "./sequential.js";
import type { BucketCounts, WindowAggregate } from "./sliding-window.js";

/**
 * Sequential error-rate gates (docs/judgement.md): an `error_rate` gate with `confidence` c
 * runs one group-sequential test per bound (sequential.ts) over the intervals closed since the
 * canary version started, with one false-alarm budget 1 − c for the whole canary (split in
 * two when the gate has both `max` and `max_ratio`), carried over weight steps.
 *
 * - Data: the window's buckets closed since the last evaluation (a cursor in the state), not
 *   the window's aggregate: the test accumulates everything since the canary version started,
 *   so the window's length does not matter to it.
 * - A look is an evaluation, outside the grace period, with new closed buckets holding at
 *   least one error (the only evaluations that can change the evidence), once the canary (and,
 *   for max_ratio, the stable) has min_samples in the test. Data of other evaluations are
 *   folded in without a look. Whether a look happens depends only on totals the test
 *   conditions on, so the promise is exact.
 * - Crossing a boundary FAILs the gate and acts at once (no consecutive_breaches); the gate
 *   stays FAIL for the rest of that canary version. Otherwise the gate WARNs when the canary's
 *   rate is above its bound (or within 10% of it) and PASSes below.
 * - Bursty errors: the stable's per-interval rates give an estimate of the rate variation
 *   beyond binomial noise (`rateVariation`), including the intervals its window held before the
 *   canary version started (so that the first looks are protected too), and each interval's
 *   kernel becomes the null law of bursty traffic with that variation (`foldBound`). With few
 *   stable intervals (a brand-new rollout) the estimate's upper confidence bound is used, and no
 *   look can cross before two pairs of them (MIN_PAIRS).
 */

/** Per-interval counts of both variants. */
export interface IntervalCounts {
  readonly canaryN: number;
  readonly canaryErrors: number;
  readonly stableN: number;
  readonly stableErrors: number;
}

/** Running sums for the rate-variation estimate from the stable's per-interval rates. */
export interface DispersionState {
  /** Pairs of successive intervals. */
  readonly pairs: number;
  /** Σ (r_j − r_{j−1})² over the pairs. */
  readonly sumSq: number;
  /** Σ (1/n_j + 1/n_{j−1}) over the pairs: the binomial part of the differences' variance, per unit p(1 − p). */
  readonly sumInv: number;
  readonly prevRate: number;
  readonly prevN: number;
  /** The stable's outcomes and errors over every interval, for the pooled rate. */
  readonly n: number;
  readonly errors: number;
}

/** The evidence of a sequential gate, for Health and the audit log. */
export interface SequentialEvidence {
  /** Which bound this is: "max_ratio" or "max". */
  readonly bound: "max_ratio" | "max";
  /** Looks taken so far (the last one is the current look). */
  readonly look: number;
  readonly plannedLooks: number;
  /** The canary's errors in the test (S). */
  readonly statistic: number;
  /** The boundary S had to reach at the last look (-1 before any look or when unreachable). */
  readonly boundary: number;
  /** S expected if the canary were exactly at the bound. */
  readonly expected: number;
  /** The share of this bound's false-alarm budget spent, 0..1. */
  readonly spentShare: number;
  /** This bound's false-alarm budget. */
  readonly alpha: number;
  /** P0(reaching the last look with at least S errors): below the look's budget is a crossing. */
  readonly pValue: number;
  /** The share of the budget spent, as a probability (spentShare × alpha). */
  readonly alphaSpent: number;
  /**
   * The rate variation the newest interval's kernel used: the estimated squared coefficient of
   * variation of per-interval error rates beyond binomial noise (0: none, the binomial kernel).
   */
  readonly rateVariation: number;
  readonly crossed: boolean;
}

/** One bound's test. */
interface BoundTest {
  readonly bound: "max_ratio" | "max";
  readonly test: SequentialState;
}

/** A sequential gate's memory. */
export interface SequentialGateState {
  readonly name: string;
  /** The gate's check as JSON: a changed bound or confidence starts a fresh test. */
  readonly check: string;
  readonly canaryN: number;
  readonly canaryErrors: number;
  readonly stableN: number;
  readonly stableErrors: number;
  readonly tests: readonly BoundTest[];
}

/** What the sequential gates of a rollout carry between evaluations. */
export interface SequentialAnalysisState {
  /** The canary version the tests belong to: a new one starts them afresh. */
  readonly canaryVersion: string;
  /** Buckets ending at or before this instant have been folded in. */
  readonly cursor: number;
  readonly dispersion: DispersionState;
  /** The rate variation the newest interval folded in was judged with (absent: 0). */
  readonly kappa?: number;
  readonly gates: readonly SequentialGateState[];
}

const NO_DISPERSION: DispersionState = { pairs: 0, sumSq: 0, sumInv: 0, prevRate: 0, prevN: 0, n: 0, errors: 0 };

/** Returns true when a gate is judged sequentially: an error_rate gate with confidence. */
export function isSequential(g: Gate): boolean {
  return g.check.kind === "error_rate" && g.check.confidence !== undefined;
}

/** Returns the dispersion sums with one stable interval added. */
export function foldDispersion(d: DispersionState, errors: number, n: number): DispersionState {
  if (n <= 0) return d;
  const rate = errors / n;
  const paired = d.prevN > 0;
  return {
    pairs: d.pairs + (paired ? 1 : 0),
    sumSq: d.sumSq + (paired ? (rate - d.prevRate) ** 2 : 0),
    sumInv: d.sumInv + (paired ? 1 / n + 1 / d.prevN : 0),
    prevRate: rate,
    prevN: n,
    n: d.n + n,
    errors: d.errors + errors,
  };
}

/**
 * How much evidence of variation beyond binomial noise the stable's successive differences must
 * show before κ is used: their sum of squares, over its binomial expectation, must exceed the
 * chi-square (df = pairs) quantile at this normal quantile, by the Wilson–Hilferty approximation
 * (1.75: from ~10 pairs on the same threshold as the earlier mean + 2 standard errors of the
 * normal approximation, 1 + 2·√(2/pairs); at a brand-new rollout's first 1–5 pairs, where that
 * approximation let ~5% of steady services pay for a correction they do not need at every look,
 * a little stricter: 4.1 instead of 3.8 at 1 pair, 3.2 instead of 3.0 at 2). Measured in
 * docs/judgement.md ("A brand-new rollout"): steady detection kept, while a CV of 0.5
 * (differences ~5× binomial) is still seen within a few intervals.
 */
export const DISPERSION_EVIDENCE = 1.75;

/**
 * Below this many pairs of stable intervals (a brand-new rollout's first looks: its stable has
 * no history) the estimate is thin and most often low exactly when errors are bursty, so its
 * upper confidence bound is used instead of the point estimate (docs/judgement.md, "Bursty errors").
 */
export const FEW_PAIRS = 10;
/** The one-sided normal quantile of that upper confidence bound (0.84: 80%), the sum of squares taken as a chi-square with df = pairs. */
export const FEW_PAIRS_Z = 0.84;
/** No boundary can be crossed before the estimate rests on this many pairs (such looks spend nothing: their budget carries to the next look). */
export const MIN_PAIRS = 2;

/**
 * Returns κ, the estimated squared coefficient of variation of the per-interval error rate
 * beyond binomial noise: from successive differences of the stable's per-interval rates
 * (so that a slow drift shared by both variants is not mistaken for it), E[(r_j − r_{j−1})²]
 * = p(1 − p)(1/n_j + 1/n_{j−1}) + 2κp²; 0 until the stable has shown two intervals and while
 * the differences are within the DISPERSION_EVIDENCE chi-square quantile of binomial noise (so that a
 * steady service loses little power to a correction it does not need). With fewer than
 * FEW_PAIRS pairs, the upper confidence bound (FEW_PAIRS_Z) of the differences' expected square
 * (Wilson–Hilferty quantile of a chi-square with df = pairs) instead of the point estimate,
 * capped at 1.
 */
export function rateVariation(d: DispersionState): number {
  const p = d.n > 0 ? d.errors / d.n : 0;
  if (p <= 0 || d.pairs === 0) return 0;
  const binomialPart = p * (1 - p) * d.sumInv;
  // Only variation the binomial noise cannot explain: the observed sum of squares above the chi-square quantile of the binomial one (DISPERSION_EVIDENCE).
  const df = d.pairs;
  if (d.sumSq / binomialPart <= (1 - 2 / (9 * df) + DISPERSION_EVIDENCE * Math.sqrt(2 / (9 * df))) ** 3) return 0;
  if (d.pairs >= FEW_PAIRS) return Math.max(0, (d.sumSq - binomialPart) / (2 * p * p * d.pairs));
  const lower = df * (1 - 2 / (9 * df) - FEW_PAIRS_Z * Math.sqrt(2 / (9 * df))) ** 3;
  const upper = (d.sumSq * df) / Math.max(lower, 1e-3 * df);
  return Math.min(1, Math.max(0, (upper - binomialPart) / (2 * p * p * d.pairs)));
}

/** Returns the intervals of the buckets of both windows that ended by `now` and after `cursor`, oldest first, and the new cursor. */
export function closedIntervals(canary: WindowAggregate, stable: WindowAggregate, cursor: number, now: number): { intervals: IntervalCounts[]; cursor: number } {
  const byStart = new Map<number, { end: number; c?: BucketCounts; s?: BucketCounts }>();
  let next = cursor;
  const add = (side: "c" | "s", list: readonly BucketCounts[] | undefined) => {
    for (const b of list ?? []) {
      // A bucket is folded in once it has closed, and only if it starts after what was folded (a resized window may straddle the cursor: skipped).
      if (b.endMs > now || b.startMs < cursor) continue;
      const e = byStart.get(b.startMs) ?? { end: b.endMs };
      e[side] = b;
      byStart.set(b.startMs, e);
      if (b.endMs > next) next = b.endMs;
    }
  };
  add("c", canary.buckets);
  add("s", stable.buckets);
  const intervals = [...byStart.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([, e]) => ({ canaryN: e.c?.count ?? 0, canaryErrors: e.c?.errors ?? 0, stableN: e.s?.count ?? 0, stableErrors: e.s?.errors ?? 0 }));
  return { intervals, cursor: next };
}

/** Returns the error budget (α) of each of a gate's bounds. */
function boundsOf(g: Gate): { bound: "max_ratio" | "max"; value: number; alpha: number }[] {
  if (g.check.kind !== "error_rate" || g.check.confidence === undefined) return [];
  const c = g.check;
  const out: { bound: "max_ratio" | "max"; value: number; alpha: number }[] = [];
  if (c.maxRatio !== undefined) out.push({ bound: "max_ratio", value: c.maxRatio, alpha: 0 });
  if (c.max !== undefined) out.push({ bound: "max", value: c.max, alpha: 0 });
  const alpha = (1 - (c.confidence as number)) / out.length;
  return out.map((b) => ({ ...b, alpha }));
}

/**
 * Folds one interval into one bound's test. `kappa` is the rate variation estimated from the
 * stable's intervals up to this one, `rate` the stable's pooled error rate over them. With variation,
 * a relative bound's kernel is the law of the canary's errors given the interval's total when
 * both variants' rates vary independently (gamma, squared CV κ) around r0 × the same mean
 * (`conditionalKernel`): the null model of bursty traffic, not a widened binomial.
 */
function foldBound(test: SequentialState, bound: "max_ratio" | "max", value: number, i: IntervalCounts, kappa: number, rate: number): SequentialState {
  if (bound === "max_ratio") {
    const t = i.canaryErrors + i.stableErrors;
    if (t === 0 || i.canaryN === 0) return test;
    const theta = (value * i.canaryN) / (value * i.canaryN + i.stableN);
    if (kappa <= 0) return foldInterval(test, i.canaryErrors, t, theta);
    return foldConditional(test, i.canaryErrors, t, theta, 1 / kappa, rate * (value * i.canaryN + i.stableN));
  }
  if (i.canaryN === 0) return test;
  return foldInterval(test, i.canaryErrors, i.canaryN, value, value < 1 ? (kappa * value) / (1 - value) : 0);
}

/** What `runSequentialGates` returns. */
export interface SequentialRun {
  readonly state: SequentialAnalysisState;
  /** The result of each sequential gate, by name. */
  readonly results: ReadonlyMap<string, GateResult>;
  /** Gates whose test crossed its boundary at this look. */
  readonly crossedNow: ReadonlySet<string>;
}

/**
 * Folds the intervals closed since the last evaluation into every sequential gate of a rollout
 * and, when `looking` (an active stage, out of the grace period), takes a look; returns the
 * new state and each gate's result. Pure: a preview may discard the state.
 */
export function runSequentialGates(r: Rollout, canary: WindowAggregate, stable: WindowAggregate, prev: SequentialAnalysisState | undefined, now: number, looking: boolean): SequentialRun {
  const fresh = prev === undefined || prev.canaryVersion !== r.canaryVersion;
  const base: SequentialAnalysisState = fresh ? { canaryVersion: r.canaryVersion, cursor: 0, dispersion: NO_DISPERSION, gates: [] } : prev;
  const { intervals, cursor } = closedIntervals(canary, stable, base.cursor, now);
  let dispersion = base.dispersion;
  const before = new Map(base.gates.map((g) => [g.name, g]));
  const gates: SequentialGateState[] = [];
  const results = new Map<string, GateResult>();
  const kappas: number[] = [];
  const rates: number[] = [];
  const crossedNow = new Set<string>();
  for (const i of intervals) {
    // The stable's counts of the interval itself count in the estimate its kernel uses (one pair more at every look: at the first looks that is most of the evidence).
    dispersion = foldDispersion(dispersion, i.stableErrors, i.stableN);
    kappas.push(rateVariation(dispersion));
    rates.push(dispersion.n > 0 ? dispersion.errors / dispersion.n : 0);
  }
  const kappa = kappas.length > 0 ? (kappas.at(-1) as number) : fresh ? 0 : (base.kappa ?? 0);
  for (const g of r.gates) {
    if (!isSequential(g)) continue;
    const check = JSON.stringify(g.check);
    const bounds = boundsOf(g);
    const old = before.get(g.name);
    let s: SequentialGateState =
      old !== undefined && old.check === check
        ? old
        : { name: g.name, check, canaryN: 0, canaryErrors: 0, stableN: 0, stableErrors: 0, tests: bounds.map((b) => ({ bound: b.bound, test: initialSequentialState() })) };
    let newErrors = 0;
    let tests = s.tests.map((t) => t.test);
    intervals.forEach((i, k) => {
      // Each interval's kernel uses the variation estimated from the stable's intervals up to it (its own included, never the canary's).
      tests = tests.map((t, j) => foldBound(t, bounds[j]!.bound, bounds[j]!.value, i, kappas[k] ?? 0, rates[k] ?? 0));
      // The stable's intervals from before the canary had traffic (its window's history) feed the rate-variation estimate only.
      if (i.canaryN === 0) return;
      newErrors += i.canaryErrors + i.stableErrors;
      s = { ...s, canaryN: s.canaryN + i.canaryN, canaryErrors: s.canaryErrors + i.canaryErrors, stableN: s.stableN + i.stableN, stableErrors: s.stableErrors + i.stableErrors };
    });
    const need = Math.max(1, g.minSamples);
    const enough = (b: { bound: string }) => s.canaryN >= need && (b.bound === "max" || s.stableN >= need);
    // Before MIN_PAIRS pairs of stable intervals (a brand-new rollout's first looks) a look cannot cross: its budget carries over.
    // A look whose intervals hold no stable traffic (100% canary weight: only an absolute `max` can judge) is not held: waiting would not bring the pairs.
    const canStop = dispersion.pairs >= MIN_PAIRS || intervals.every((i) => i.stableN === 0);
    tests = tests.map((t, j) => {
      const b = bounds[j]!;
      return looking && !t.crossed && newErrors > 0 && enough(b) ? look(t, b.alpha, canStop) : t;
    });
    if (tests.some((t, j) => t.crossed && s.tests[j]?.test.crossed !== true)) crossedNow.add(g.name);
    s = { ...s, tests: tests.map((t, j) => ({ bound: bounds[j]!.bound, test: t })) };
    gates.push(s);
    results.set(g.name, resultOf(g, s, bounds, kappa, enough));
  }
  return { state: { canaryVersion: r.canaryVersion, cursor, dispersion, ...(kappa > 0 ? { kappa } : {}), gates }, results, crossedNow };
}

const pct = (x: number) => `${String(Number((x * 100).toPrecision(3)))}%`;

/** Returns a sequential gate's result from its state. */
function resultOf(g: Gate, s: SequentialGateState, bounds: ReturnType<typeof boundsOf>, kappa: number, enough: (b: { bound: string }) => boolean): GateResult {
  const rate = s.canaryN === 0 ? 0 : s.canaryErrors / s.canaryN;
  const stableRate = s.stableN === 0 ? undefined : s.stableErrors / s.stableN;
  const judged = bounds.map((b, j) => {
    const t = s.tests[j]!.test;
    const threshold = b.bound === "max" ? b.value : stableRate === undefined ? Infinity : stableRate * b.value;
    const evidence: SequentialEvidence = {
      bound: b.bound,
      look: t.looks,
      plannedLooks: PLANNED_LOOKS,
      statistic: t.sum,
      boundary: t.boundary,
      expected: t.expected,
      spentShare: b.alpha > 0 ? Math.min(1, t.spent / b.alpha) : 0,
      alpha: b.alpha,
      alphaSpent: Math.min(b.alpha, t.spent),
      pValue: t.looks === 0 ? 1 : (t.pValue ?? tailAt(t)),
      rateVariation: kappa,
      crossed: t.crossed,
    };
    let verdict: Verdict;
    if (t.crossed) verdict = "fail";
    else if (!enough(b) || !Number.isFinite(threshold)) verdict = "inconclusive";
    else verdict = rate > threshold ? "warn" : upperVerdict(rate, threshold);
    const what = b.bound === "max" ? `max ${fmt(b.value)}` : `stable ${fmt(stableRate ?? 0)} × ${fmt(b.value)} = ${fmt(threshold)}`;
    const test =
      t.looks === 0
        ? "sequential test: no look yet"
        : `sequential test look ${t.looks} of ${PLANNED_LOOKS}: canary errors ${t.sum} ${t.crossed ? ">=" : "<"} boundary ${t.boundary < 0 ? "none" : t.boundary} (${fmt(t.expected)} expected at the bound), ${pct(evidence.spentShare)} of the ${pct(b.alpha)} error budget spent${kappa > 0 ? `, bursty errors (rate variation ${fmt(kappa)})` : ""}`;
    const cmp = rate > threshold ? ">" : "<=";
    const since = `over ${s.canaryN} canary outcomes since the canary started`;
    let message: string;
    if (verdict === "inconclusive") message = `canary error rate ${fmt(rate)} ${since}: ${s.canaryN} of ${Math.max(1, g.minSamples)} canary${b.bound === "max_ratio" ? ` and ${s.stableN} of ${Math.max(1, g.minSamples)} stable` : ""} samples needed`;
    else if (t.crossed) message = `canary error rate ${fmt(rate)} > ${what} ${since}, worse with ${pct(1 - b.alpha * bounds.length)} confidence: ${test}`;
    else message = `canary error rate ${fmt(rate)} ${cmp} ${what} ${since}, not significant yet: ${test}`;
    return { verdict, threshold: Number.isFinite(threshold) ? threshold : 0, message, evidence };
  });
  const rank: Record<Verdict, number> = { pass: 0, inconclusive: 1, warn: 2, fail: 3 };
  const w = judged.reduce((a, b) => (rank[b.verdict] > rank[a.verdict] || (rank[b.verdict] === rank[a.verdict] && b.threshold < a.threshold) ? b : a));
  const r: GateResult = {
    name: g.name,
    kind: "error_rate",
    observed: rate,
    threshold: w.threshold,
    samples: s.canaryN,
    minSamples: g.minSamples,
    verdict: w.verdict,
    message: w.message,
    onBreach: g.onBreach,
    sequential: w.evidence,
  };
  return stableRate === undefined ? r : { ...r, baseline: stableRate };
}

/** Returns the sequential state read back from JSON, or undefined when it is not well-formed (the tests then start afresh). */
export function parseSequentialAnalysis(v: unknown): SequentialAnalysisState | undefined {
  if (v === null || typeof v !== "object") return undefined;
  const s = v as Record<string, unknown>;
  const num = (x: unknown) => typeof x === "number" && Number.isFinite(x);
  if (typeof s.canaryVersion !== "string" || !num(s.cursor) || !Array.isArray(s.gates)) return undefined;
  const d = s.dispersion as Record<string, unknown> | null;
  if (d === null || typeof d !== "object" || !["pairs", "sumSq", "sumInv", "prevRate", "prevN", "n", "errors"].every((k) => num(d[k]))) return undefined;
  const gates: SequentialGateState[] = [];
  for (const x of s.gates as unknown[]) {
    const g = x as Record<string, unknown> | null;
    if (g === null || typeof g !== "object" || typeof g.name !== "string" || typeof g.check !== "string" || !Array.isArray(g.tests)) return undefined;
    if (!["canaryN", "canaryErrors", "stableN", "stableErrors"].every((k) => num(g[k]))) return undefined;
    const tests: BoundTest[] = [];
    for (const t of g.tests as unknown[]) {
      const b = t as Record<string, unknown> | null;
      const test = b === null || typeof b !== "object" ? undefined : parseSequentialState(b.test);
      if (test === undefined || (b!.bound !== "max" && b!.bound !== "max_ratio")) return undefined;
      tests.push({ bound: b!.bound, test });
    }
    gates.push({ name: g.name, check: g.check, canaryN: g.canaryN as number, canaryErrors: g.canaryErrors as number, stableN: g.stableN as number, stableErrors: g.stableErrors as number, tests });
  }
  const kappa = num(s.kappa) && (s.kappa as number) > 0 ? { kappa: s.kappa as number } : {};
  return { canaryVersion: s.canaryVersion, cursor: s.cursor as number, dispersion: d as unknown as DispersionState, ...kappa, gates };
}
