import { WARN_MARGIN, type GateResult } from "./gates.js";
import type { Stage } from "./rollout.js";

/**
 * A rollout's health (docs/design.md §5 RolloutHealth): a score in 0..1 from its gates' verdicts, the
 * recommendation that score falls in, and what the evaluator will do next.
 *
 * The score is the lowest of the gates' scores (1.0 without gates):
 * - PASS: 1.0.
 * - WARN: 0.80..0.89, lower the closer the gate is to its threshold.
 * - INCONCLUSIVE: 0.85 (INCONCLUSIVE_SCORE). No data is not good news: a rollout whose gates
 *   lack samples shows MONITOR, never HEALTHY, but never the ROLLBACK band either, because
 *   INCONCLUSIVE holds and never fails.
 * - FAIL: 0.79 / (1 + excess), where excess is how far beyond the threshold the gate is, in
 *   units of the threshold (of the error budget 1 − min for success_rate; 1 for a threshold
 *   of 0): 0.79 just past it, ~0.4 at twice it, towards 0 beyond.
 * Hence: 1.0 exactly while every gate passes clearly, below 0.8 exactly when some gate fails,
 * and in [0.8, 0.9) when none fails and some gate warns or lacks samples.
 */

/** What the evaluator decides, or will decide next (docs/design.md §5 decision types). */
export type DecisionType = "continue" | "promote" | "hold" | "step_back" | "scale_down" | "rollback" | "emergency_stop";

/** The band a health score falls in: HEALTHY >= 0.9, MONITOR 0.8..0.9, ROLLBACK < 0.8. */
export type Recommendation = "healthy" | "monitor" | "rollback";

/** A gate's result with the number of failed evaluations in a row behind it. */
export interface GateHealth extends GateResult {
  readonly consecutiveBreaches: number;
}

/** A rollout's judgement, explained. */
export interface RolloutHealth {
  /** The rollout's name. */
  readonly rollout: string;
  readonly score: number;
  readonly recommendation: Recommendation;
  readonly gates: readonly GateHealth[];
  /** The largest consecutive-breach count over the gates. */
  readonly consecutiveBreaches: number;
  /** Outcomes in each variant's window. */
  readonly samples: { readonly stable: number; readonly canary: number };
  readonly stage: Stage;
  readonly weightBp: number;
  readonly currentStep: number;
  readonly paused: boolean;
  /** What the evaluator will do next ("continue" when nothing is due). */
  readonly nextAction: DecisionType;
  /** When nextAction is due, in ms since the epoch, if known. */
  readonly nextActionAt?: number;
  readonly evaluatedAt: number;
  /** The rollout version this health was computed for. */
  readonly rolloutVersion: number;
  /** The state of things in words. */
  readonly message: string;
}

/** The score of a gate without enough samples: in the MONITOR band. */
export const INCONCLUSIVE_SCORE = 0.85;

/** Lowest score of the HEALTHY band. */
export const HEALTHY_SCORE = 0.9;

/** Lowest score of the MONITOR band; below it is ROLLBACK. */
export const MONITOR_SCORE = 0.8;

const clamp01 = (v: number): number => (v < 0 ? 0 : v > 1 ? 1 : v);

/** Returns one gate's score (see the module comment). */
export function gateScore(g: GateResult): number {
  switch (g.verdict) {
    case "pass":
      return 1;
    case "inconclusive":
      return INCONCLUSIVE_SCORE;
    case "warn":
    case "fail": {
      // Measure against the size of the bound: for success_rate, its error budget.
      const lower = g.kind === "success_rate";
      const size = lower ? 1 - g.threshold : Math.abs(g.threshold);
      const over = lower ? g.threshold - g.observed : g.observed - g.threshold;
      if (g.verdict === "warn") {
        // `over` is in [−10% of the size, 0] for a warning (> 0 when a confidence test held a fail back).
        const closeness = size === 0 ? 1 : clamp01(1 + over / (WARN_MARGIN * size));
        return 0.89 - 0.09 * closeness;
      }
      const excess = size === 0 ? 1 : Math.max(0, over / size);
      return 0.79 / (1 + excess);
    }
  }
}

/** Returns a rollout's health score from its gates' results: the lowest gate score, 1.0 without gates. */
export function healthScore(gates: readonly GateResult[]): number {
  let score = 1;
  for (const g of gates) score = Math.min(score, gateScore(g));
  return score;
}

/** Returns the recommendation of a score: HEALTHY >= 0.9, MONITOR 0.8..0.9, ROLLBACK < 0.8. */
export function recommendationOf(score: number): Recommendation {
  if (score >= HEALTHY_SCORE) return "healthy";
  return score >= MONITOR_SCORE ? "monitor" : "rollback";
}

/** Returns a measured value rounded to 6 decimals, as messages and audit snapshots show it (non-finite values as they are). */
export function roundValue(v: number): number {
  return Number.isFinite(v) ? Math.round(v * 1e6) / 1e6 : v;
}
