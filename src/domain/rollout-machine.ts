import type { EventType } from "./audit-chain.js";
import { isLive } from "./decision.js";
import { DomainError, invalidArgument, notAllowed } from "./errors.js";
import { fingerprintOf } from "./fingerprint.js";
import { FULL_WEIGHT_BP, stepWeight, type Rollout, type RolloutSpec, type Stage, type Variant } from "./rollout.js";
import { LIMITS } from "./validation.js";

/**
 * The rollout state machine (docs/design.md §3). Every function is pure: it takes a rollout and
 * returns the changed copy with the audit event type and a summary in words, or throws a
 * DomainError. Nothing here knows about storage, time sources or the wire.
 */

/** Who changes a rollout, and when. */
export interface Actor {
  readonly name: string;
  readonly now: number;
}

/** A transition's result: the new rollout and what the audit log records. */
export interface Transition {
  readonly rollout: Rollout;
  readonly type: EventType;
  /** The change in words, e.g. "step 1 → 2 (weight 500 → 2500 bp)". */
  readonly summary: string;
  /** True when the rollout did not change (no version bump, no event). */
  readonly unchanged?: boolean;
}

/** Where Promote moves a rollout. */
export type PromoteTarget = "next_step" | "staging" | "production";

const DAY_MS = 24 * 3_600_000;

const STAGE_NAMES: Record<Stage, string> = {
  canary: "CANARY",
  staging: "STAGING",
  production: "PRODUCTION",
  rolled_back: "ROLLED_BACK",
  halted: "HALTED",
};

/** Stage transitions allowed from each stage, in words, for FAILED_PRECONDITION messages. */
const ALLOWED: Record<Stage, readonly string[]> = {
  canary: ["CANARY (next step)", "STAGING", "PRODUCTION", "ROLLED_BACK", "HALTED"],
  staging: ["PRODUCTION", "ROLLED_BACK", "HALTED"],
  production: ["CANARY (UpdateRollout with a new canary_version)"],
  rolled_back: ["CANARY (Resume after the cooldown, or a new canary_version)", "HALTED"],
  halted: ["CANARY (Resume with a reason)", "ROLLED_BACK"],
};

/** Returns the upper-case name of a stage as the API spells it, without the STAGE_ prefix. */
export function stageName(stage: Stage): string {
  return STAGE_NAMES[stage];
}

function refuse(r: Rollout, to: string): DomainError {
  return notAllowed(`rollout "${r.name}" is ${STAGE_NAMES[r.stage]}: cannot move to ${to}`, ALLOWED[r.stage]);
}

function bump(r: Rollout, actor: Actor, changes: Partial<Rollout>): Rollout {
  return { ...r, ...changes, version: r.version + 1, updatedBy: actor.name, updatedAt: actor.now };
}

function withSpec(r: Rollout, spec: RolloutSpec): Rollout {
  return { ...r, ...spec, fingerprint: fingerprintOf(spec) };
}

/** Returns a new rollout at its first step. */
export function createRollout(spec: RolloutSpec, actor: Actor): Rollout {
  return {
    ...spec,
    stage: "canary",
    currentStep: 0,
    weightBp: stepWeight(spec, 0),
    paused: false,
    overrides: new Map(),
    version: 1,
    fingerprint: fingerprintOf(spec),
    createdBy: actor.name,
    createdAt: actor.now,
    updatedBy: actor.name,
    updatedAt: actor.now,
    stepStartedAt: actor.now,
    autoRollbacks: [],
  };
}

/** Returns the configuration part of a rollout. */
export function specOf(r: Rollout): RolloutSpec {
  return {
    name: r.name,
    stableVersion: r.stableVersion,
    canaryVersion: r.canaryVersion,
    steps: r.steps,
    features: r.features,
    salt: r.salt,
    gates: r.gates,
    analysis: r.analysis,
  };
}

/**
 * Replaces a rollout's configuration.
 *
 * A new canary_version starts a new rollout at the first step (from CANARY, STAGING,
 * PRODUCTION or ROLLED_BACK); a HALTED rollout stays halted, reset to the first step, until an
 * operator resumes it. Changed steps keep the current step index, clamped to the new ramp.
 */
export function updateSpec(r: Rollout, spec: RolloutSpec, actor: Actor): Transition {
  if (spec.name !== r.name) throw invalidArgument("rollout.name", "cannot be changed");
  const changed = changedFields(specOf(r), spec);
  if (changed.length === 0) return { rollout: r, type: "updated", summary: "no change", unchanged: true };
  let next = withSpec(r, spec);
  const restart = spec.canaryVersion !== r.canaryVersion;
  if (restart && r.stage !== "halted") {
    next = { ...next, stage: "canary", currentStep: 0, weightBp: stepWeight(spec, 0), paused: false, stepStartedAt: actor.now };
  } else if (restart) {
    next = { ...next, currentStep: 0 };
  } else if (r.stage === "canary" && !sameSteps(r, spec)) {
    const step = Math.min(r.currentStep, spec.steps.length - 1);
    next = { ...next, currentStep: step, weightBp: stepWeight(spec, step) };
  }
  const summary = `changed ${changed.join(", ")}` + (restart ? ` (canary ${r.canaryVersion} → ${spec.canaryVersion})` : "");
  return { rollout: bump(next, actor, {}), type: "updated", summary };
}

function sameSteps(a: RolloutSpec, b: RolloutSpec): boolean {
  return JSON.stringify(a.steps) === JSON.stringify(b.steps);
}

/** Returns the names (as the API spells them) of configuration fields that differ. */
export function changedFields(a: RolloutSpec, b: RolloutSpec): string[] {
  const out: string[] = [];
  if (a.stableVersion !== b.stableVersion) out.push("stable_version");
  if (a.canaryVersion !== b.canaryVersion) out.push("canary_version");
  if (!sameSteps(a, b)) out.push("steps");
  if (JSON.stringify([...a.features].sort()) !== JSON.stringify([...b.features].sort())) out.push("features");
  if (a.salt !== b.salt) out.push("salt");
  if (JSON.stringify(a.gates) !== JSON.stringify(b.gates)) out.push("gates");
  if (JSON.stringify(a.analysis) !== JSON.stringify(b.analysis)) out.push("analysis");
  return out;
}

/**
 * Promotes a rollout: to the next step (from the last step, to PRODUCTION), to STAGING, or to
 * PRODUCTION, where the canary version becomes the stable version at weight 0.
 */
export function promote(r: Rollout, target: PromoteTarget, actor: Actor): Transition {
  if (target === "next_step") {
    if (r.stage === "staging") return promote(r, "production", actor);
    if (r.stage !== "canary") throw refuse(r, "the next step");
    const last = r.steps.length - 1;
    if (r.currentStep >= last) return promote(r, "production", actor);
    const step = r.currentStep + 1;
    const weightBp = stepWeight(r, step);
    return {
      rollout: bump(r, actor, { currentStep: step, weightBp, stepStartedAt: actor.now }),
      type: "step_changed",
      summary: `step ${r.currentStep + 1} → ${step + 1} of ${r.steps.length} (weight ${r.weightBp} → ${weightBp} bp)`,
    };
  }
  if (target === "staging") {
    if (r.stage !== "canary") throw refuse(r, "STAGING");
    return {
      rollout: bump(r, actor, { stage: "staging", weightBp: FULL_WEIGHT_BP, stepStartedAt: actor.now }),
      type: "promoted",
      summary: `promoted ${r.canaryVersion} to STAGING (all traffic, all features)`,
    };
  }
  if (!isLive(r.stage)) throw refuse(r, "PRODUCTION");
  return {
    rollout: bump(r, actor, {
      stage: "production",
      stableVersion: r.canaryVersion,
      weightBp: 0,
      paused: false,
      stepStartedAt: actor.now,
      fingerprint: fingerprintOf({ ...specOf(r), stableVersion: r.canaryVersion }),
    }),
    type: "promoted",
    summary: `promoted ${r.canaryVersion} to PRODUCTION (was stable: ${r.stableVersion})`,
  };
}

/**
 * Rolls a rollout back: weight 0, features off for everyone, the canary abandoned.
 * An automatic rollback is remembered for 24 h against max_auto_rollbacks_per_day.
 */
export function rollback(r: Rollout, actor: Actor, automatic = false): Transition {
  if (!isLive(r.stage) && r.stage !== "halted") throw refuse(r, "ROLLED_BACK");
  const autoRollbacks = automatic ? [...recentAutoRollbacks(r, actor.now), actor.now] : recentAutoRollbacks(r, actor.now);
  return {
    rollout: bump(r, actor, { stage: "rolled_back", weightBp: 0, paused: false, rolledBackAt: actor.now, stepStartedAt: actor.now, autoRollbacks }),
    type: "rolled_back",
    summary: `rolled back ${r.canaryVersion} from ${STAGE_NAMES[r.stage]} at ${r.weightBp} bp`,
  };
}

/** Returns the instants of automatic rollbacks within the last 24 h. */
export function recentAutoRollbacks(r: Rollout, now: number): number[] {
  return r.autoRollbacks.filter((t) => t > now - DAY_MS);
}

/** Halts a rollout (the kill switch): weight 0, features off, automatic actions suspended. */
export function halt(r: Rollout, actor: Actor): Transition {
  if (r.stage === "halted") return { rollout: r, type: "halted", summary: "already halted", unchanged: true };
  if (r.stage === "production") throw refuse(r, "HALTED");
  return {
    rollout: bump(r, actor, { stage: "halted", weightBp: 0, paused: false, stepStartedAt: actor.now }),
    type: "halted",
    summary: `halted at ${STAGE_NAMES[r.stage]} (weight ${r.weightBp} → 0 bp)`,
  };
}

/**
 * Resumes a rollout: unpauses it, restarts a HALTED one at its current step (a reason is
 * required), or restarts a ROLLED_BACK one at its first step once the cooldown has passed.
 */
export function resume(r: Rollout, actor: Actor, reason: string): Transition {
  if (r.stage === "halted") {
    if (reason === "") throw invalidArgument("reason", "is required to resume a halted rollout");
    const weightBp = stepWeight(r, r.currentStep);
    return {
      rollout: bump(r, actor, { stage: "canary", weightBp, paused: false, stepStartedAt: actor.now }),
      type: "resumed",
      summary: `resumed from HALTED at step ${r.currentStep + 1} (weight ${weightBp} bp)`,
    };
  }
  if (r.stage === "rolled_back") {
    const readyAt = (r.rolledBackAt ?? 0) + r.analysis.cooldownMs;
    if (actor.now < readyAt) {
      throw new DomainError(
        "failed_precondition",
        `rollout "${r.name}" is ROLLED_BACK and in its cooldown until ${new Date(readyAt).toISOString()} (${Math.ceil((readyAt - actor.now) / 60_000)} min from now): ` +
          "resume it then, or start over now by setting a new canary_version; until then the only stage change allowed: HALTED",
        { allowed: ["HALTED"] },
      );
    }
    const weightBp = stepWeight(r, 0);
    return {
      rollout: bump(r, actor, { stage: "canary", currentStep: 0, weightBp, paused: false, stepStartedAt: actor.now }),
      type: "resumed",
      summary: `restarted ${r.canaryVersion} at step 1 (weight ${weightBp} bp) after rollback`,
    };
  }
  if (r.paused) {
    return { rollout: bump(r, actor, { paused: false }), type: "resumed", summary: "unpaused" };
  }
  throw new DomainError(
    "failed_precondition",
    `rollout "${r.name}" is ${STAGE_NAMES[r.stage]} and not paused: nothing to resume`,
    { allowed: [] },
  );
}

/** Pauses a rollout at its current weight: no automatic step changes, rollback still allowed. */
export function pause(r: Rollout, actor: Actor): Transition {
  if (!isLive(r.stage)) {
    throw notAllowed(`rollout "${r.name}" is ${STAGE_NAMES[r.stage]}: only CANARY or STAGING can be paused`, ALLOWED[r.stage]);
  }
  if (r.paused) return { rollout: r, type: "paused", summary: "already paused", unchanged: true };
  return { rollout: bump(r, actor, { paused: true }), type: "paused", summary: `paused at ${r.weightBp} bp` };
}

/** Sets the canary weight by hand (CANARY only), 0..10000 bp. */
export function setWeight(r: Rollout, weightBp: number, actor: Actor): Transition {
  if (r.stage !== "canary") {
    throw notAllowed(`rollout "${r.name}" is ${STAGE_NAMES[r.stage]}: the weight can only be set in CANARY`, ALLOWED[r.stage]);
  }
  if (weightBp === r.weightBp) return { rollout: r, type: "weight_changed", summary: "no change", unchanged: true };
  return {
    rollout: bump(r, actor, { weightBp }),
    type: "weight_changed",
    summary: `weight ${r.weightBp} → ${weightBp} bp`,
  };
}

/** Moves an unpaused CANARY rollout back to its first step. */
export function stepBack(r: Rollout, actor: Actor): Transition {
  if (r.stage !== "canary") throw refuse(r, "the first step");
  const weightBp = stepWeight(r, 0);
  return {
    rollout: bump(r, actor, { currentStep: 0, weightBp, stepStartedAt: actor.now }),
    type: "step_changed",
    summary: `stepped back to step 1 (weight ${r.weightBp} → ${weightBp} bp)`,
  };
}

/** Halves the canary weight, not below the first step's weight. */
export function scaleDown(r: Rollout, actor: Actor): Transition {
  if (r.stage !== "canary") throw refuse(r, "a lower weight");
  const floor = stepWeight(r, 0);
  const weightBp = Math.max(floor, Math.floor(r.weightBp / 2));
  // The step becomes the highest one whose weight is not above the new weight.
  let step = 0;
  r.steps.forEach((s, i) => {
    if (s.weightBp <= weightBp) step = i;
  });
  return {
    rollout: bump(r, actor, { weightBp, currentStep: step, stepStartedAt: actor.now }),
    type: "weight_changed",
    summary: `scaled down ${r.weightBp} → ${weightBp} bp`,
  };
}

/** Turns a feature on or off; disabling reverts everyone at once. */
export function setFeature(r: Rollout, feature: string, enabled: boolean, actor: Actor): Transition {
  if (r.features.get(feature) === enabled) {
    return { rollout: r, type: "feature_changed", summary: "no change", unchanged: true };
  }
  if (!r.features.has(feature) && r.features.size >= LIMITS.features) {
    throw invalidArgument("feature", `a rollout holds at most ${LIMITS.features} features`);
  }
  const features = new Map(r.features).set(feature, enabled);
  const next = withSpec(r, { ...specOf(r), features });
  return { rollout: bump(next, actor, {}), type: "feature_changed", summary: `feature ${feature} ${enabled ? "on" : "off"}` };
}

/** Pins a key to a variant, or clears its pin when `variant` is undefined. */
export function setOverride(r: Rollout, key: string, variant: Variant | undefined, actor: Actor): Transition {
  if (r.overrides.get(key) === variant) {
    return { rollout: r, type: "override_changed", summary: "no change", unchanged: true };
  }
  const overrides = new Map(r.overrides);
  if (variant === undefined) overrides.delete(key);
  else {
    if (!overrides.has(key) && overrides.size >= LIMITS.overrides) {
      throw invalidArgument("key", `a rollout holds at most ${LIMITS.overrides} overrides`);
    }
    overrides.set(key, variant);
  }
  return {
    rollout: bump(r, actor, { overrides }),
    type: "override_changed",
    summary: variant === undefined ? `override for key ${quoteKey(key)} cleared` : `key ${quoteKey(key)} pinned to ${variant}`,
  };
}

/** Quotes a key for a summary, shortened so a 1 KiB key doesn't swamp the audit log. */
function quoteKey(key: string): string {
  return JSON.stringify(key.length > 64 ? `${key.slice(0, 61)}...` : key);
}
