import type { EventType, NewEvent } from "../../domain/audit-chain.js";
import { roundValue as round, type RolloutHealth } from "../../domain/health.js";
import type { Rollout } from "../../domain/rollout.js";
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
    })),
    ...(detail === undefined ? {} : { detail }),
  });
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
