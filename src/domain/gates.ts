import { invalidArgument } from "./errors.js";
import { sketchQuantile } from "./latency-sketch.js";
import { METRIC_NAME_PATTERN, METRIC_NAME_RULE } from "./outcome.js";
import { NAME_PATTERN, NAME_RULE, type Action, type Gate, type GateCheck, type GateKind } from "./rollout.js";
import type { SequentialEvidence } from "./sequential-gate.js";
import type { MetricStats, WindowAggregate } from "./sliding-window.js";
import { rateExceedsPValue, ratioExceedsPValue } from "./statistics.js";

/**
 * SLO gates (docs/design.md §5): each gate holds the canary's window against a bound, absolute or
 * relative to the stable's window, and gives PASS, WARN, FAIL or INCONCLUSIVE.
 */

/** A gate's verdict at one evaluation. */
export type Verdict = "pass" | "warn" | "fail" | "inconclusive";

/** One gate's evaluation: what was measured against what, and the verdict. */
export interface GateResult {
  readonly name: string;
  readonly kind: GateKind;
  /** The canary's measured value (0 when there is nothing to measure yet). */
  readonly observed: number;
  /** The effective bound the observed value is held against (the tighter one, when two apply). */
  readonly threshold: number;
  /** The stable's value of the same measure, when the gate compares against it. */
  readonly baseline?: number;
  /** Canary samples the verdict rests on (outcomes; for a metric gate, outcomes carrying it). */
  readonly samples: number;
  readonly minSamples: number;
  readonly verdict: Verdict;
  /** The verdict in words, e.g. "canary error rate 0.31 > max 0.05". */
  readonly message: string;
  readonly onBreach: Action;
  /** A sequential gate's evidence against its boundary (error_rate with confidence, judged by the evaluator). */
  readonly sequential?: SequentialEvidence;
}

/** A gate WARNs when it passes within this share of its threshold. */
export const WARN_MARGIN = 0.1;

/** Most gates a rollout may have: more would only repeat each other and slow every evaluation. */
export const MAX_GATES = 32;

/** Latency quantiles a gate may bound. */
export const LATENCY_QUANTILES: readonly number[] = [0.5, 0.9, 0.95, 0.99];

/** Most min_samples a gate may ask for. */
export const MAX_GATE_MIN_SAMPLES = 1_000_000_000;

/**
 * Returns the verdict of `observed` against an upper bound: FAIL above it, WARN at or above
 * the bound less 10% of its size, PASS below. A bound of 0 has no warning band, so that
 * "0 violations, max 0" is a clear pass.
 */
export function upperVerdict(observed: number, threshold: number): Verdict {
  if (observed > threshold) return "fail";
  const margin = WARN_MARGIN * Math.abs(threshold);
  return margin > 0 && observed >= threshold - margin ? "warn" : "pass";
}

/** Formats a measured value for a message: at most 3 significant digits, no exponent noise. */
export function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(3)));
}

const pct = (c: number) => `${String(Number((c * 100).toPrecision(4)))}%`;

/** One bound of a gate, judged; the worst of a gate's bounds becomes its result. */
interface Bound {
  readonly observed: number;
  readonly threshold: number;
  readonly verdict: Verdict;
  readonly message: string;
}

const RANK: Record<Verdict, number> = { pass: 0, inconclusive: 1, warn: 2, fail: 3 };

/** Returns the bound with the worst verdict; among equals, the tighter threshold. */
function worst(bounds: readonly Bound[]): Bound {
  return bounds.reduce((a, b) => (RANK[b.verdict] > RANK[a.verdict] || (RANK[b.verdict] === RANK[a.verdict] && b.threshold < a.threshold) ? b : a));
}

/**
 * Evaluates one gate against the canary's and the stable's windows (docs/design.md §5).
 *
 * - Fewer than min_samples canary samples (at least 1) is INCONCLUSIVE, which holds and never
 *   fails; except that an invariant gate FAILs on a violation whatever the sample count: a
 *   broken invariant is not noise.
 * - A bound relative to the stable version (max_ratio, max_delta) also needs min_samples on
 *   the stable side. Without them that bound is skipped and the gate is judged on its absolute
 *   bound alone, so a thin stable side never hides an absolute breach; a gate with only a
 *   relative bound is then INCONCLUSIVE. (At 100% canary weight the stable side empties, so
 *   ratio-only gates hold there; give such gates an absolute bound too.)
 * - error_rate with `confidence` FAILs only when an exact one-sided test says the canary is
 *   worse than the bound with that confidence (see statistics.ts); an excess that noise could
 *   explain is a WARN.
 * - WARN: passes, but within 10% of the threshold (success_rate: 90% of its error budget
 *   1 − min is spent).
 */
export function evaluateGate(gate: Gate, canary: WindowAggregate, stable: WindowAggregate): GateResult {
  const need = Math.max(1, gate.minSamples);
  const c = gate.check;
  const result = (observed: number, threshold: number, verdict: Verdict, message: string, samples: number, baseline?: number): GateResult => {
    const r: GateResult = { name: gate.name, kind: c.kind, observed, threshold, samples, minSamples: gate.minSamples, verdict, message, onBreach: gate.onBreach };
    return baseline === undefined || !Number.isFinite(baseline) ? r : { ...r, baseline };
  };
  const tooFew = (what: string, samples: number, observed: number, threshold: number, baseline?: number) =>
    result(observed, threshold, "inconclusive", `${what}: ${samples} of ${need} samples needed`, samples, baseline);

  switch (c.kind) {
    case "error_rate": {
      const rate = canary.count === 0 ? 0 : canary.errors / canary.count;
      const stableOk = stable.count >= need;
      const stableRate = stable.count === 0 ? undefined : stable.errors / stable.count;
      const nominal = Math.min(c.max ?? Infinity, c.maxRatio !== undefined && stableRate !== undefined ? stableRate * c.maxRatio : Infinity);
      if (canary.count < need) return tooFew("canary error rate", canary.count, rate, Number.isFinite(nominal) ? nominal : 0, stableRate);
      const bounds: Bound[] = [];
      if (c.max !== undefined) {
        const p = c.confidence === undefined ? undefined : rateExceedsPValue(canary.errors, canary.count, c.max);
        bounds.push(errorBound(rate, c.max, `max ${fmt(c.max)}`, c.confidence, p));
      }
      if (c.maxRatio !== undefined && stableOk && stableRate !== undefined) {
        const threshold = stableRate * c.maxRatio;
        const p = c.confidence === undefined ? undefined : ratioExceedsPValue(canary.errors, canary.count, stable.errors, stable.count, c.maxRatio);
        bounds.push(errorBound(rate, threshold, `stable ${fmt(stableRate)} × ${fmt(c.maxRatio)} = ${fmt(threshold)}`, c.confidence, p));
      }
      if (bounds.length === 0) {
        return result(rate, 0, "inconclusive", `canary error rate ${fmt(rate)}: stable has ${stable.count} of ${need} samples needed for max_ratio`, canary.count, stableRate);
      }
      const b = worst(bounds);
      const note = c.maxRatio !== undefined && !stableOk && c.max !== undefined ? ` (max_ratio not judged: stable has ${stable.count} of ${need} samples)` : "";
      return result(b.observed, Math.min(...bounds.map((x) => x.threshold)), b.verdict, b.message + note, canary.count, stableRate);
    }

    case "latency": {
      const label = `p${fmt(c.quantile * 100)}`;
      const q = canary.count === 0 ? 0 : sketchQuantile(canary.latency, c.quantile);
      const stableOk = stable.count >= need;
      const sq = stableOk ? sketchQuantile(stable.latency, c.quantile) : undefined;
      if (canary.count < need) return tooFew(`canary ${label} latency`, canary.count, q, c.maxMs ?? 0, sq);
      const bounds: Bound[] = [];
      if (c.maxMs !== undefined) {
        bounds.push(plainBound(`canary ${label} latency`, q, c.maxMs, `max ${fmt(c.maxMs)} ms`, " ms"));
      }
      if (c.maxRatio !== undefined && sq !== undefined) {
        const threshold = sq * c.maxRatio;
        bounds.push(plainBound(`canary ${label} latency`, q, threshold, `stable ${fmt(sq)} ms × ${fmt(c.maxRatio)} = ${fmt(threshold)} ms`, " ms"));
      }
      if (bounds.length === 0) {
        return result(q, 0, "inconclusive", `canary ${label} latency ${fmt(q)} ms: stable has ${stable.count} of ${need} samples needed for max_ratio`, canary.count);
      }
      const b = worst(bounds);
      const note = c.maxRatio !== undefined && sq === undefined ? ` (max_ratio not judged: stable has ${stable.count} of ${need} samples)` : "";
      return result(b.observed, b.threshold, b.verdict, b.message + note, canary.count, sq);
    }

    case "success_rate": {
      const rate = canary.count === 0 ? 0 : 1 - canary.errors / canary.count;
      if (canary.count < need) return tooFew("canary success rate", canary.count, rate, c.min);
      // Judged on the error budget 1 − min: 0.995 warns once 90% of its 0.5% is spent.
      const verdict = upperVerdict(1 - rate, 1 - c.min);
      const cmp = verdict === "fail" ? "<" : ">=";
      const near = verdict === "warn" ? " (90% of the error budget spent)" : "";
      return result(rate, c.min, verdict, `canary success rate ${fmt(rate)} ${cmp} min ${fmt(c.min)}${near}`, canary.count);
    }

    case "metric": {
      const label = `canary ${c.metric} ${c.aggregation}`;
      const m = canary.metrics.get(c.metric);
      const samples = m?.count ?? 0;
      const value = metricValue(m, c.aggregation);
      const sm = stable.metrics.get(c.metric);
      const stableValue = sm !== undefined && sm.count >= need ? metricValue(sm, c.aggregation) : undefined;
      if (samples < need) return tooFew(label, samples, value, c.max ?? c.maxDelta ?? 0, stableValue);
      const bounds: Bound[] = [];
      if (c.max !== undefined) bounds.push(plainBound(label, value, c.max, `max ${fmt(c.max)}`, ""));
      if (c.maxDelta !== undefined && stableValue !== undefined) {
        const delta = Math.abs(value - stableValue);
        const verdict = upperVerdict(delta, c.maxDelta);
        const cmp = verdict === "fail" ? ">" : "<=";
        bounds.push({
          observed: delta,
          threshold: c.maxDelta,
          verdict,
          message: `|${label} ${fmt(value)} − stable ${fmt(stableValue)}| = ${fmt(delta)} ${cmp} max_delta ${fmt(c.maxDelta)}${verdict === "warn" ? " (within 10%)" : ""}`,
        });
      }
      if (bounds.length === 0) {
        return result(value, 0, "inconclusive", `${label} ${fmt(value)}: stable has ${sm?.count ?? 0} of ${need} samples needed for max_delta`, samples);
      }
      // Two bounds measure different things (value, |delta|): report the one that decides.
      const b = worst(bounds);
      return result(b.observed, b.threshold, b.verdict, b.message, samples, stableValue);
    }

    case "invariant": {
      const v = canary.invariantViolations;
      if (v > c.max) return result(v, c.max, "fail", `canary invariant violations ${v} > max ${c.max}`, canary.count);
      if (canary.count < need) return tooFew(`canary invariant violations ${v}`, canary.count, v, c.max);
      const verdict = upperVerdict(v, c.max);
      return result(v, c.max, verdict, `canary invariant violations ${v} <= max ${c.max}${verdict === "warn" ? " (within 10%)" : ""}`, canary.count);
    }
  }
}

function metricValue(m: MetricStats | undefined, aggregation: "mean" | "max"): number {
  if (m === undefined || m.count === 0) return 0;
  return aggregation === "max" ? m.max : m.sum / m.count;
}

function plainBound(what: string, observed: number, threshold: number, bound: string, unit: string): Bound {
  const verdict = upperVerdict(observed, threshold);
  const cmp = verdict === "fail" ? ">" : "<=";
  return { observed, threshold, verdict, message: `${what} ${fmt(observed)}${unit} ${cmp} ${bound}${verdict === "warn" ? " (within 10%)" : ""}` };
}

/** Judges an error rate against one bound, with the one-sided test's p-value when confidence is set. */
function errorBound(rate: number, threshold: number, bound: string, confidence: number | undefined, p: number | undefined): Bound {
  let verdict = upperVerdict(rate, threshold);
  let message = `canary error rate ${fmt(rate)} ${verdict === "fail" ? ">" : "<="} ${bound}`;
  if (confidence !== undefined && p !== undefined && rate > threshold) {
    if (p < 1 - confidence) {
      message += ` (worse with ${pct(confidence)} confidence, p = ${p.toPrecision(2)})`;
    } else {
      // Above the bound, but noise could explain it at this sample size: watch, don't act.
      verdict = "warn";
      message = `canary error rate ${fmt(rate)} > ${bound}, not significant at ${pct(confidence)} confidence (p = ${p.toPrecision(2)})`;
    }
  } else if (verdict === "warn") {
    message += " (within 10%)";
  }
  return { observed: rate, threshold, verdict, message };
}

const finite = (v: number | undefined): boolean => v === undefined || Number.isFinite(v);

/**
 * Throws INVALID_ARGUMENT for the first bad gate parameter of a rollout, with a path under
 * `prefix`, e.g. `rollout.gates[1].latency.quantile: must be one of 0.5, 0.9, 0.95, 0.99`.
 *
 * Limits: at most 32 gates; names `[a-z0-9][a-z0-9._-]{0,62}` and unique; min_samples
 * 1..10⁹; error_rate needs max (0..1) or max_ratio (finite, >= 1), confidence 0.5..0.9999;
 * latency a quantile of 0.5, 0.9, 0.95, 0.99 and max_ms (finite, > 0) or max_ratio; success_rate
 * min 0..1; metric a metric name, max (finite) or max_delta (finite, >= 0); invariant max an
 * integer >= 0.
 */
export function validateGates(gates: readonly Gate[], prefix: string): void {
  if (gates.length > MAX_GATES) throw invalidArgument(prefix, `must hold at most ${MAX_GATES} gates`);
  const names = new Set<string>();
  gates.forEach((g, i) => {
    const at = `${prefix}[${i}]`;
    // Gate names follow the rollout-name rule.
    if (!NAME_PATTERN.test(g.name)) throw invalidArgument(`${at}.name`, NAME_RULE);
    if (names.has(g.name)) throw invalidArgument(`${at}.name`, `duplicate gate name "${g.name}"`);
    names.add(g.name);
    if (!Number.isInteger(g.minSamples) || g.minSamples < 1 || g.minSamples > MAX_GATE_MIN_SAMPLES) {
      throw invalidArgument(`${at}.min_samples`, `must be 1..${MAX_GATE_MIN_SAMPLES}`);
    }
    validateCheck(g.check, at);
  });
}

function validateCheck(c: GateCheck, at: string): void {
  const ratioOk = (v: number | undefined) => v === undefined || (Number.isFinite(v) && v >= 1);
  switch (c.kind) {
    case "error_rate": {
      const f = `${at}.error_rate`;
      if (c.max === undefined && c.maxRatio === undefined) throw invalidArgument(f, "needs max or max_ratio");
      if (c.max !== undefined && !(c.max >= 0 && c.max <= 1)) throw invalidArgument(`${f}.max`, "must be 0..1");
      if (!ratioOk(c.maxRatio)) throw invalidArgument(`${f}.max_ratio`, "must be finite and >= 1");
      if (c.confidence !== undefined && !(c.confidence >= 0.5 && c.confidence <= 0.9999)) {
        throw invalidArgument(`${f}.confidence`, "must be 0.5..0.9999");
      }
      return;
    }
    case "latency": {
      const f = `${at}.latency`;
      if (!LATENCY_QUANTILES.includes(c.quantile)) throw invalidArgument(`${f}.quantile`, `must be one of ${LATENCY_QUANTILES.join(", ")}`);
      if (c.maxMs === undefined && c.maxRatio === undefined) throw invalidArgument(f, "needs max_ms or max_ratio");
      if (c.maxMs !== undefined && !(Number.isFinite(c.maxMs) && c.maxMs > 0)) throw invalidArgument(`${f}.max_ms`, "must be finite and > 0");
      if (!ratioOk(c.maxRatio)) throw invalidArgument(`${f}.max_ratio`, "must be finite and >= 1");
      return;
    }
    case "success_rate":
      if (!(c.min >= 0 && c.min <= 1)) throw invalidArgument(`${at}.success_rate.min`, "must be 0..1");
      return;
    case "metric": {
      const f = `${at}.metric`;
      if (!METRIC_NAME_PATTERN.test(c.metric)) throw invalidArgument(`${f}.metric`, METRIC_NAME_RULE);
      if (c.aggregation !== "mean" && c.aggregation !== "max") throw invalidArgument(`${f}.aggregation`, "must be MEAN or MAX");
      if (c.max === undefined && c.maxDelta === undefined) throw invalidArgument(f, "needs max or max_delta");
      if (!finite(c.max)) throw invalidArgument(`${f}.max`, "must be finite");
      if (c.maxDelta !== undefined && !(Number.isFinite(c.maxDelta) && c.maxDelta >= 0)) throw invalidArgument(`${f}.max_delta`, "must be finite and >= 0");
      return;
    }
    case "invariant":
      if (!Number.isSafeInteger(c.max) || c.max < 0) throw invalidArgument(`${at}.invariant.max`, "must be an integer >= 0");
      return;
  }
}
