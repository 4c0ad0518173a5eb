import type { EventType, NewEvent } from "../../domain/audit-chain.js";
import { roundValue as round, type RolloutHealth } from "../../domain/health.js";
import type { Rollout } from "../../domain/rollout.js";
import type { SequentialEvidence } from "../../domain/sequential-gate.js";
import type { Caller } from "../engine.js";

/**
 * The audit events the engine appends: each keeps a snapshot of the rollout's state and every
 * gate's values at that moment, so the log says why without the windows that are long gone.
 */

/** Returns the snapshot an event keeps: the rollout's state and every gate's values. */
export function snapshotOf(r: Rollout, summary: string, h: RolloutHealth, detail?: Readonly<Record<string, string>>): string {
  return JSON.stringify({
    summary,
    stage: r.stage,
    current_step: r.currentStep,
    weight_bp: r.weightBp,
    paused: r.paused,
    version: r.version,
    stable_version: r.stableVersion,
    canary_version: r.canaryVersion,
    score: round(h.score),
    samples: h.samples,
    gates: h.gates.map((g) => ({
      name: g.name,
      kind: g.kind,
      verdict: g.verdict,
      observed: round(g.observed),
      threshold: round(g.threshold),
      ...(g.baseline === undefined ? {} : { baseline: round(g.baseline) }),
      samples: g.samples,
      consecutive_breaches: g.consecutiveBreaches,
      ...(g.sequential === undefined ? {} : { sequential: sequentialSnapshot(g.sequential) }),
    })),
    ...(detail === undefined ? {} : { detail }),
  });
}

/**
 * Returns a sequential gate's evidence as the snapshot keeps it (docs/judgement.md): which look
 * (and whether it crossed), the statistic against the boundary at that look, the p-value (the
 * probability at the bound of reaching this look with at least this many errors), the error
 * budget and how much of it is spent, and the rate variation the test was widened by.
 */
function sequentialSnapshot(s: SequentialEvidence) {
  // Probabilities to 6 significant digits (1 − 0.99 is 0.010000000000000009 in binary).
  const sig = (x: number) => Number(x.toPrecision(6));
  return {
    bound: s.bound,
    look: s.look,
    planned_looks: s.plannedLooks,
    crossed: s.crossed,
    statistic: s.statistic,
    boundary: s.boundary,
    expected: round(s.expected),
    p_value: sig(s.pValue),
    alpha: sig(s.alpha),
    alpha_spent: sig(s.alphaSpent),
    spent_share: round(s.spentShare),
    rate_variation: round(s.rateVariation),
  };
}

/**
 * Returns an event about `r` at `nowMs`, by `caller` (its reason, or the summary when it gave
 * none), with the snapshot of `r` and `health` (and the caller's `detail`, when it gives one).
 */
export function auditEvent(r: Rollout, type: EventType, caller: Caller, summary: string, health: RolloutHealth, nowMs: number): NewEvent {
  return {
    timeNs: BigInt(nowMs) * 1_000_000n,
    rollout: r.name,
    type,
    actor: caller.actor,
    reason: caller.reason === "" ? summary : caller.reason,
    fingerprint: r.fingerprint,
    snapshot: snapshotOf(r, summary, health, caller.detail),
  };
}
