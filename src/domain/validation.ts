import { keyProblem, utf8Length } from "./bucketing.js";
import { invalidArgument } from "./errors.js";
import { validateGates } from "./gates.js";
import {
  DEFAULT_GATE_ACTION,
  DEFAULT_GATE_MIN_SAMPLES,
  DEFAULT_STEP_WEIGHTS_BP,
  FULL_WEIGHT_BP,
  NAME_PATTERN,
  NAME_RULE,
  analysisWithDefaults,
  type Action,
  type Analysis,
  type Gate,
  type GateCheck,
  type RolloutSpec,
  type Step,
} from "./rollout.js";

/** Feature names may also use upper case: `[A-Za-z0-9][A-Za-z0-9._-]{0,62}`. */
export const FEATURE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Limits on a rollout's configuration (docs/design.md §8). */
export const LIMITS = {
  versionChars: 128,
  saltBytes: 256,
  steps: 100,
  features: 64,
  reasonChars: 1024,
  overrides: 10_000,
  minIntervalMs: 1000,
  maxIntervalMs: 3_600_000,
  maxWindowMs: 24 * 3_600_000,
  maxCooldownMs: 7 * 24 * 3_600_000,
  maxConsecutiveBreaches: 100,
  maxAutoRollbacksPerDay: 1000,
} as const;

/** Throws INVALID_ARGUMENT unless `value` is a valid rollout name. */
export function validateName(field: string, value: string): void {
  if (value === "") throw invalidArgument(field, "must not be empty");
  if (!NAME_PATTERN.test(value)) throw invalidArgument(field, NAME_RULE);
}

/** Throws INVALID_ARGUMENT unless `key` is 1..1024 bytes of UTF-8. */
export function validateKey(field: string, key: string): void {
  const problem = keyProblem(key);
  if (problem !== undefined) throw invalidArgument(field, problem);
}

/** Throws INVALID_ARGUMENT when a reason is too long; returns it trimmed. */
export function validateReason(field: string, reason: string): string {
  if (reason.length > LIMITS.reasonChars) throw invalidArgument(field, `must be at most ${LIMITS.reasonChars} characters`);
  return reason.trim();
}

/** Throws INVALID_ARGUMENT unless a weight is 0..10000 basis points. */
export function validateWeight(field: string, weightBp: number): void {
  if (!Number.isInteger(weightBp) || weightBp < 0 || weightBp > FULL_WEIGHT_BP) {
    throw invalidArgument(field, "must be 0..10000 basis points");
  }
}

/** Throws INVALID_ARGUMENT unless a feature name is valid. */
export function validateFeatureName(field: string, name: string): void {
  if (!FEATURE_PATTERN.test(name)) throw invalidArgument(field, "must match [A-Za-z0-9][A-Za-z0-9._-]{0,62}");
}

/**
 * A rollout configuration as it arrives from a caller, before defaults and validation: empty
 * steps mean the default ramp, an empty salt the rollout name; gates as in GateInput; unset
 * analysis members take their defaults (a zero window, grace period or cooldown counts as
 * unset; a zero interval is refused).
 */
export interface RolloutSpecInput extends Omit<RolloutSpec, "gates" | "analysis"> {
  readonly gates: readonly GateInput[];
  readonly analysis: Partial<Analysis>;
}

/** A gate as it arrives from a caller, before defaults: an empty name, a min_samples of 0 and no on_breach are unset. */
export interface GateInput {
  /** Empty means the kind's name with a dash ("error-rate", "latency", "success-rate", "metric", "invariant"). */
  readonly name: string;
  /** 0 means DEFAULT_GATE_MIN_SAMPLES. */
  readonly minSamples: number;
  /** Unset means DEFAULT_GATE_ACTION. */
  readonly onBreach?: Action;
  readonly check: GateCheck;
}

/**
 * Returns a validated rollout configuration with defaults applied, or throws INVALID_ARGUMENT
 * naming the first bad field under `prefix` (e.g. `rollout.steps[1].weight_bp`).
 */
export function normalizeSpec(input: RolloutSpecInput, prefix: string): RolloutSpec {
  const f = (field: string) => (prefix === "" ? field : `${prefix}.${field}`);
  validateName(f("name"), input.name);
  validateVersion(f("stable_version"), input.stableVersion);
  validateVersion(f("canary_version"), input.canaryVersion);
  const steps = input.steps.length === 0 ? defaultSteps() : input.steps;
  validateSteps(f("steps"), steps);
  if (input.features.size > LIMITS.features) throw invalidArgument(f("features"), `must hold at most ${LIMITS.features} features`);
  for (const name of input.features.keys()) validateFeatureName(`${f("features")}["${name}"]`, name);
  const salt = input.salt === "" ? input.name : input.salt;
  if (utf8Length(salt) > LIMITS.saltBytes) throw invalidArgument(f("salt"), `must be at most ${LIMITS.saltBytes} bytes`);
  const analysis = normalizeAnalysis(f("analysis"), input.analysis);
  const gates = input.gates.map(gateWithDefaults);
  validateGates(gates, f("gates"));
  return {
    name: input.name,
    stableVersion: input.stableVersion,
    canaryVersion: input.canaryVersion,
    steps,
    features: input.features,
    salt,
    gates,
    analysis,
  };
}

/** Returns a gate with its unset fields defaulted (see GateInput). */
function gateWithDefaults(g: GateInput): Gate {
  return {
    name: g.name === "" ? g.check.kind.replace("_", "-") : g.name,
    minSamples: g.minSamples === 0 ? DEFAULT_GATE_MIN_SAMPLES : g.minSamples,
    onBreach: g.onBreach ?? DEFAULT_GATE_ACTION,
    check: g.check,
  };
}

function defaultSteps(): Step[] {
  return DEFAULT_STEP_WEIGHTS_BP.map((weightBp) => ({ weightBp, minDurationMs: 0, minSamples: 0 }));
}

function validateVersion(field: string, v: string): void {
  if (v.trim() === "") throw invalidArgument(field, "must not be empty");
  if (v.length > LIMITS.versionChars) throw invalidArgument(field, `must be at most ${LIMITS.versionChars} characters`);
}

function validateSteps(field: string, steps: readonly Step[]): void {
  if (steps.length > LIMITS.steps) throw invalidArgument(field, `must hold at most ${LIMITS.steps} steps`);
  let prev = 0;
  steps.forEach((s, i) => {
    const at = `${field}[${i}]`;
    if (!Number.isInteger(s.weightBp) || s.weightBp < 1 || s.weightBp > FULL_WEIGHT_BP) {
      throw invalidArgument(`${at}.weight_bp`, "must be 1..10000 basis points");
    }
    if (s.weightBp <= prev) throw invalidArgument(`${at}.weight_bp`, `must be greater than the previous step's ${prev}`);
    prev = s.weightBp;
    if (!(s.minDurationMs >= 0)) throw invalidArgument(`${at}.min_duration`, "must be >= 0");
    if (!(s.minSamples >= 0)) throw invalidArgument(`${at}.min_samples`, "must be >= 0");
  });
}

function normalizeAnalysis(field: string, a: Partial<Analysis>): Analysis {
  const check = (name: string, ms: number | undefined, rule: (v: number) => boolean, text: string) => {
    if (ms !== undefined && !rule(ms)) throw invalidArgument(`${field}.${name}`, text);
  };
  // Unset (undefined) means the default; a 0 written by hand is a mistake, not "the default".
  check("interval", a.intervalMs, (v) => v >= LIMITS.minIntervalMs && v <= LIMITS.maxIntervalMs, "must be 1s..1h");
  check("window", a.windowMs, (v) => v >= 0 && v <= LIMITS.maxWindowMs, "must be at most 24h");
  check("grace_period", a.gracePeriodMs, (v) => v >= 0 && v <= LIMITS.maxWindowMs, "must be 0..24h");
  check("no_data_timeout", a.noDataTimeoutMs, (v) => v >= 0 && v <= LIMITS.maxWindowMs, "must be 0..24h");
  check("cooldown", a.cooldownMs, (v) => v >= 0 && v <= LIMITS.maxCooldownMs, "must be 0..7d");
  check(
    "consecutive_breaches",
    a.consecutiveBreaches,
    (v) => Number.isInteger(v) && v >= 0 && v <= LIMITS.maxConsecutiveBreaches,
    `must be 1..${LIMITS.maxConsecutiveBreaches}`,
  );
  check("max_breach_rate", a.maxBreachRate, (v) => v > 0 && v <= 1, "must be in (0, 1]");
  check(
    "max_auto_rollbacks_per_day",
    a.maxAutoRollbacksPerDay,
    (v) => Number.isInteger(v) && v >= 0 && v <= LIMITS.maxAutoRollbacksPerDay,
    `must be 0..${LIMITS.maxAutoRollbacksPerDay}`,
  );
  const analysis = analysisWithDefaults(a);
  if (analysis.windowMs < analysis.intervalMs) {
    throw invalidArgument(`${field}.window`, `must be at least one interval (${analysis.intervalMs / 1000}s)`);
  }
  return analysis;
}
