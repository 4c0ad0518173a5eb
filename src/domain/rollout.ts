/**
 * The rollout as the domain sees it: plain values, no proto types. Durations are milliseconds,
 * instants are milliseconds since the Unix epoch.
 */

/**
 * Rollout and gate names: `[a-z0-9][a-z0-9._-]{0,62}` (NAME_RULE). Here, beside the types,
 * so that validation.ts and gates.ts both read it without importing each other.
 */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** What NAME_PATTERN requires, as error messages say it. */
export const NAME_RULE = "must match [a-z0-9][a-z0-9._-]{0,62}";

/** The side of a rollout a key is routed to. */
export type Variant = "stable" | "canary";

/** Where a rollout is in its lifecycle (docs/design.md §3). */
export type Stage = "canary" | "staging" | "production" | "rolled_back" | "halted";

/** What a gate breach does. */
export type Action = "rollback" | "halt" | "step_back" | "scale_down" | "hold" | "notify";

/** One stage of the traffic ramp. */
export interface Step {
  readonly weightBp: number;
  readonly minDurationMs: number;
  readonly minSamples: number;
}

/** The check a gate performs; exactly one kind per gate. */
export type GateCheck =
  | {
      readonly kind: "error_rate";
      readonly max?: number;
      readonly maxRatio?: number;
      readonly confidence?: number;
    }
  | {
      readonly kind: "latency";
      readonly quantile: number;
      readonly maxMs?: number;
      readonly maxRatio?: number;
    }
  | { readonly kind: "success_rate"; readonly min: number }
  | {
      readonly kind: "metric";
      readonly metric: string;
      readonly aggregation: "mean" | "max";
      readonly max?: number;
      readonly maxDelta?: number;
    }
  | { readonly kind: "invariant"; readonly max: number };

/** The kind names of gate checks. */
export type GateKind = GateCheck["kind"];

/** One SLO gate of a rollout, defaults applied. */
export interface Gate {
  readonly name: string;
  readonly minSamples: number;
  readonly onBreach: Action;
  readonly check: GateCheck;
}

/** Analysis settings, defaults applied. */
export interface Analysis {
  readonly windowMs: number;
  readonly intervalMs: number;
  readonly consecutiveBreaches: number;
  readonly gracePeriodMs: number;
  readonly maxBreachRate?: number;
  readonly autoPromote: boolean;
  readonly autoRollback: boolean;
  readonly noDataTimeoutMs: number;
  readonly onNoData: "hold" | "rollback";
  readonly cooldownMs: number;
  readonly maxAutoRollbacksPerDay: number;
  readonly dryRun: boolean;
}

/** The configuration of a rollout: what an operator declares (and what the fingerprint covers). */
export interface RolloutSpec {
  readonly name: string;
  readonly stableVersion: string;
  readonly canaryVersion: string;
  readonly steps: readonly Step[];
  readonly features: ReadonlyMap<string, boolean>;
  readonly salt: string;
  readonly gates: readonly Gate[];
  readonly analysis: Analysis;
}

/** A rollout: its configuration plus its runtime state. Never mutated; transitions return a copy. */
export interface Rollout extends RolloutSpec {
  readonly stage: Stage;
  readonly currentStep: number;
  readonly weightBp: number;
  readonly paused: boolean;
  readonly overrides: ReadonlyMap<string, Variant>;
  readonly version: number;
  readonly fingerprint: string;
  readonly createdBy: string;
  readonly createdAt: number;
  readonly updatedBy: string;
  readonly updatedAt: number;
  readonly stepStartedAt: number;
  readonly rolledBackAt?: number;
  /** Instants of automatic rollbacks, kept for 24 h, for max_auto_rollbacks_per_day. */
  readonly autoRollbacks: readonly number[];
}

/** Full weight in basis points: everyone. */
export const FULL_WEIGHT_BP = 10_000;

/** The default traffic ramp: 5% → 25% → 50% → 100%. */
export const DEFAULT_STEP_WEIGHTS_BP: readonly number[] = [500, 2500, 5000, 10_000];

/** Defaults applied to analysis settings left unset (docs/design.md §5). */
export const ANALYSIS_DEFAULTS = {
  windowMs: 5 * 60_000,
  intervalMs: 10_000,
  consecutiveBreaches: 2,
  autoRollback: true,
  cooldownMs: 30 * 60_000,
  maxAutoRollbacksPerDay: 5,
} as const;

/** Default minimum samples of a gate whose min_samples is unset. */
export const DEFAULT_GATE_MIN_SAMPLES = 100;

/** What a gate whose on_breach is unset does. */
export const DEFAULT_GATE_ACTION: Action = "rollback";

/** Returns the analysis settings with every unset field defaulted. */
export function analysisWithDefaults(partial: Partial<Analysis>): Analysis {
  const intervalMs = partial.intervalMs || ANALYSIS_DEFAULTS.intervalMs;
  const analysis: Analysis = {
    windowMs: partial.windowMs || ANALYSIS_DEFAULTS.windowMs,
    intervalMs,
    consecutiveBreaches: partial.consecutiveBreaches || ANALYSIS_DEFAULTS.consecutiveBreaches,
    gracePeriodMs: partial.gracePeriodMs || intervalMs,
    autoPromote: partial.autoPromote ?? false,
    autoRollback: partial.autoRollback ?? ANALYSIS_DEFAULTS.autoRollback,
    noDataTimeoutMs: partial.noDataTimeoutMs ?? 0,
    onNoData: partial.onNoData ?? "hold",
    cooldownMs: partial.cooldownMs || ANALYSIS_DEFAULTS.cooldownMs,
    maxAutoRollbacksPerDay: partial.maxAutoRollbacksPerDay ?? ANALYSIS_DEFAULTS.maxAutoRollbacksPerDay,
    dryRun: partial.dryRun ?? false,
  };
  return partial.maxBreachRate === undefined ? analysis : { ...analysis, maxBreachRate: partial.maxBreachRate };
}

/** Returns the weight the canary gets at a step of a rollout. */
export function stepWeight(spec: RolloutSpec, step: number): number {
  const s = spec.steps[Math.min(step, spec.steps.length - 1)];
  return s === undefined ? 0 : s.weightBp;
}
