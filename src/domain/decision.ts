import type { Evaluation } from "./analysis.js";
import { promotionBlocked } from "./errors.js";
import type { GateResult } from "./gates.js";
import type { DecisionType } from "./health.js";
import * as machine from "./rollout-machine.js";
import type { Action, Rollout, Stage } from "./rollout.js";

/**
 * What a decision means (docs/design.md §5): the one place that says what happens when a gate fails,
 * and who applies it. Pure, like the rest of the domain.
 *
 * When a gate fails:
 * 1. `evaluate` (analysis.ts) counts the failure. The gate *acts* once its count reaches
 *    consecutive_breaches (or max_breach_rate trips; an invariant gate acts at its first
 *    failure, even in the grace period).
 * 2. The gate's on_breach asks for a decision (`ACTION_DECISION`); of several, the most
 *    severe wins (`SEVERITY`); the no-data timeout asks beside them.
 * 3. `policy` turns that wish into what the rollout's settings allow, in this order:
 *    auto_rollback off → "hold" instead of rollback, halt, step back or scale down (without
 *    pausing: the failing gate already blocks promotion); STAGING has no smaller step →
 *    "rollback" instead of step back or scale down; paused → "hold" instead of step back or
 *    scale down (rollback and halt still act); an automatic "rollback" when the last 24 h
 *    already hold max_auto_rollbacks_per_day of them → "emergency_stop".
 * 4. `consequence` turns the evaluation into what it causes: a state-machine transition
 *    (rollback, halt, step back, scale down, promote, pause), an audit-only "decision" event
 *    (a dry run, a NOTIFY gate, a breach held by the settings), or nothing.
 * 5. The engine's evaluator (src/service/engine/evaluator.ts) applies it: it commits the
 *    transition with its gate_breach and decision events in one store transaction, resets the
 *    evidence when `startsAfresh` says so, and publishes the new health. Nothing else changes a
 *    rollout without an operator.
 */

/** Returns true for the stages that take canary traffic and are judged: CANARY and STAGING. */
export function isLive(stage: Stage): boolean {
  return stage === "canary" || stage === "staging";
}

/** Severity of decisions: when several are asked for, the most severe wins. */
export const SEVERITY: Readonly<Record<DecisionType, number>> = {
  continue: 0,
  promote: 1,
  hold: 2,
  scale_down: 3,
  step_back: 4,
  rollback: 5,
  emergency_stop: 6,
};

/** What a gate breach asks for; undefined for NOTIFY (record only). */
export const ACTION_DECISION: Readonly<Record<Action, DecisionType | undefined>> = {
  rollback: "rollback",
  halt: "emergency_stop",
  step_back: "step_back",
  scale_down: "scale_down",
  hold: "hold",
  notify: undefined,
};

/** The decisions that take traffic away from the canary, which auto_rollback off forbids. */
const TAKES_TRAFFIC_AWAY: ReadonlySet<DecisionType> = new Set(["rollback", "emergency_stop", "step_back", "scale_down"]);

/** A decision after the rollout's settings have had their say, with the reason extended to say why. */
export interface PolicyResult {
  readonly decision: DecisionType;
  readonly reason: string;
}

/**
 * Returns what an automatic action asking for `want` becomes under the rollout's settings (see
 * the module comment, step 3), with `reason` extended to say why when it changed. Used both for
 * the decision an evaluation takes and for the next action Health announces, so they agree.
 */
export function policy(r: Rollout, want: DecisionType, now: number, reason = ""): PolicyResult {
  const a = r.analysis;
  let decision = want;
  let why = reason;
  if (!a.autoRollback && TAKES_TRAFFIC_AWAY.has(decision)) {
    return { decision: "hold", reason: `auto_rollback is off, holding instead of ${want}: ${why}` };
  }
  if (decision === "step_back" || decision === "scale_down") {
    if (r.stage === "staging") {
      decision = "rollback";
      why = `STAGING has no smaller step, rolling back instead of ${want}: ${why}`;
    } else if (r.paused) {
      decision = "hold";
      why = `paused, holding instead of ${want}: ${why}`;
    }
  }
  if (decision === "rollback") {
    const recent = machine.recentAutoRollbacks(r, now).length;
    if (recent >= a.maxAutoRollbacksPerDay) {
      decision = "emergency_stop";
      why = `${why}; ${recent} automatic rollbacks in the last 24 h already (max_auto_rollbacks_per_day ${a.maxAutoRollbacksPerDay}): halting instead`;
    }
  }
  return { decision, reason: why };
}

/**
 * Returns true when an evaluation acts: its decision changes the rollout (or, in dry run,
 * would). "continue" never acts; "hold" acts only when it also pauses.
 */
export function acts(ev: Pick<Evaluation, "decision" | "pause">): boolean {
  return (ev.decision !== "continue" && ev.decision !== "hold") || ev.pause;
}

/** What one evaluation causes; the engine's evaluator applies it. */
export interface Consequence {
  /** The transition to commit; undefined when the rollout stays as it is. */
  readonly transition?: machine.Transition;
  /**
   * The reason of a "decision" event to audit although the rollout does not change: a dry-run
   * action ("dry run: would …"), or a gate that acted without changing anything (NOTIFY, or a
   * breach held by the settings). Undefined when there is nothing to audit beyond gate breaches.
   */
  readonly audit?: string;
  /** True when the evaluation decided something worth counting (metrics), dry run included. */
  readonly decided: boolean;
}

/** Returns the transition a decision causes to a rollout, made by `actor`; undefined for none. */
export function transitionOf(r: Rollout, decision: DecisionType, pause: boolean, actor: machine.Actor): machine.Transition | undefined {
  switch (decision) {
    case "promote":
      return machine.promote(r, "next_step", actor);
    case "rollback":
      return machine.rollback(r, actor, true);
    case "emergency_stop":
      return machine.halt(r, actor);
    case "step_back":
      return machine.stepBack(r, actor);
    case "scale_down":
      return machine.scaleDown(r, actor);
    case "hold":
      return pause ? machine.pause(r, actor) : undefined;
    case "continue":
      return undefined;
  }
}

/**
 * Returns what an evaluation of `r` at `now` causes (see the module comment, step 4): the
 * transition made by `actor` (the evaluator), unless in dry run, and what to audit when the
 * rollout does not change.
 */
export function consequence(r: Rollout, ev: Evaluation, actor: machine.Actor): Consequence {
  const acting = acts(ev);
  const t = !ev.dryRun && acting ? transitionOf(r, ev.decision, ev.pause, actor) : undefined;
  const triggered = ev.triggeredBy.length > 0;
  let audit: string | undefined;
  if (ev.dryRun && acting) audit = `dry run: would ${ev.decision}: ${ev.reason}`;
  else if (triggered && t === undefined) audit = ev.reason;
  const decided = acting || triggered;
  const changed = t !== undefined && t.unchanged !== true;
  return { ...(changed ? { transition: t } : {}), ...(audit === undefined ? {} : { audit }), decided };
}

/**
 * Returns true when a change from `prev` to `next` makes the canary's evidence worthless: a
 * rollback or a new canary version empties the canary's window and restarts the evaluator's
 * counts.
 */
export function startsAfresh(prev: Rollout, next: Rollout): boolean {
  return (next.stage === "rolled_back" && prev.stage !== "rolled_back") || next.canaryVersion !== prev.canaryVersion;
}

/**
 * Throws FAILED_PRECONDITION when a promotion of `r` without force must be refused: some gate
 * fails or lacks samples. The message and details name each such gate with its values. Only a
 * live rollout has gates to answer to; the state machine refuses the other stages.
 */
export function checkPromotion(r: Rollout, gates: readonly GateResult[]): void {
  if (!isLive(r.stage)) return;
  const blocking = gates.filter((g) => g.verdict === "fail" || g.verdict === "inconclusive");
  if (blocking.length === 0) return;
  throw promotionBlocked(r.name, blocking);
}
