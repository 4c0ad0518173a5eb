import { keyProblem } from "./bucketing.js";
import { invalidArgument } from "./errors.js";
import type { Variant } from "./rollout.js";

/**
 * Outcomes as the domain sees them, and the checks a RecordOutcome batch passes (docs/design.md §8)
 * before any of it reaches a window: a batch with one bad outcome is rejected whole.
 */

/** One reported request outcome, validated: what a sliding window records. */
export interface OutcomeSample {
  readonly variant: Variant;
  readonly success: boolean;
  /** Finite and >= 0. */
  readonly latencyMs: number;
  /** Custom metrics by name, every value finite; at most 64. */
  readonly metrics: ReadonlyMap<string, number>;
  /** A non-negative integer. */
  readonly invariantViolations: number;
  /** The routing key, or "" when the caller sent none. */
  readonly key: string;
  /** When the outcome happened, in ms since the epoch; unset means "now". */
  readonly timeMs?: number;
}

/** One outcome as the service layer converts it from the wire, before validation. */
export interface RawOutcome {
  /** Undefined for VARIANT_UNSPECIFIED. */
  readonly variant: Variant | undefined;
  readonly success: boolean;
  readonly latencyMs: number;
  /** The proto map as protobuf-es gives it (a plain object), or a Map. */
  readonly metrics: Readonly<Record<string, number>> | ReadonlyMap<string, number>;
  readonly invariantViolations: number;
  /** "" when unset. */
  readonly key: string;
  /** Unset (or undefined) when the outcome carries no time. */
  readonly timeMs?: number | undefined;
}

/** Limits on a RecordOutcome batch (docs/design.md §8). */
export const OUTCOME_LIMITS = {
  /** Outcomes per call (and per StreamOutcomes message). */
  maxBatch: 10_000,
  /** Metrics per outcome. */
  maxMetrics: 64,
} as const;

/**
 * Metric names: 1..63 characters, a letter or `_` first, then letters, digits and `_.:-`.
 *
 * This is the Prometheus metric-name alphabet plus `.` and `-`, so that names such as
 * `cart.value` or `db-time_ms` pass unchanged while a name stays safe in a label value, a
 * field path and a log line.
 */
export const METRIC_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.:-]{0,62}$/;

/** The metric-name rule in words, as error messages state it. */
export const METRIC_NAME_RULE = "must match [A-Za-z_][A-Za-z0-9_.:-]{0,62}";

const NO_METRICS: ReadonlyMap<string, number> = new Map();

/**
 * Returns the batch as validated samples, or throws INVALID_ARGUMENT naming the first bad
 * outcome's field, e.g. `outcomes[3].latency_ms: must be finite and >= 0`.
 *
 * Nothing is returned for a batch with a bad outcome, so the caller records all or nothing.
 * `field` is the path of the list in the request (`outcomes` by default).
 */
export function validateOutcomes(outcomes: readonly RawOutcome[], field = "outcomes"): OutcomeSample[] {
  if (outcomes.length === 0 || outcomes.length > OUTCOME_LIMITS.maxBatch) {
    throw invalidArgument(field, `must hold 1..${OUTCOME_LIMITS.maxBatch} outcomes`);
  }
  const samples = new Array<OutcomeSample>(outcomes.length);
  for (let i = 0; i < outcomes.length; i++) samples[i] = validateOutcome(outcomes[i] as RawOutcome, field, i);
  return samples;
}

/**
 * Returns outcome `i` of the list `field` as a validated sample, or throws INVALID_ARGUMENT
 * naming its bad field. The field path is built only for a bad outcome: a batch holds up to
 * 10,000 of them.
 */
function validateOutcome(o: RawOutcome, field: string, i: number): OutcomeSample {
  const at = (sub: string) => `${field}[${i}].${sub}`;
  if (o.variant !== "stable" && o.variant !== "canary") {
    throw invalidArgument(at("variant"), "must be VARIANT_STABLE or VARIANT_CANARY");
  }
  if (!Number.isFinite(o.latencyMs) || o.latencyMs < 0) {
    throw invalidArgument(at("latency_ms"), "must be finite and >= 0");
  }
  if (!Number.isSafeInteger(o.invariantViolations) || o.invariantViolations < 0) {
    throw invalidArgument(at("invariant_violations"), "must be an integer >= 0");
  }
  // The key is optional here (empty is fine), but otherwise held to a routing key's rules.
  const keyTrouble = o.key === "" ? undefined : keyProblem(o.key);
  if (keyTrouble !== undefined) throw invalidArgument(at("key"), keyTrouble);
  if (o.timeMs !== undefined && !(Number.isFinite(o.timeMs) && o.timeMs >= 0)) {
    throw invalidArgument(at("time"), "must be a valid timestamp after 1970-01-01");
  }
  const sample: { -readonly [K in keyof OutcomeSample]: OutcomeSample[K] } = {
    variant: o.variant,
    success: o.success,
    latencyMs: o.latencyMs,
    metrics: validateMetrics(o.metrics, at),
    invariantViolations: o.invariantViolations,
    key: o.key,
  };
  if (o.timeMs !== undefined) sample.timeMs = o.timeMs;
  return sample;
}

/** True when a proto map (a plain object) has no entries, without listing them. */
function isEmptyRecord(r: object): boolean {
  for (const _ in r) return false;
  return true;
}

function validateMetrics(raw: RawOutcome["metrics"], at: (sub: string) => string): ReadonlyMap<string, number> {
  const isMap = raw instanceof Map;
  if (isMap ? raw.size === 0 : isEmptyRecord(raw)) return NO_METRICS;
  const entries: [string, number][] = isMap ? [...(raw as ReadonlyMap<string, number>)] : Object.entries(raw);
  if (entries.length > OUTCOME_LIMITS.maxMetrics) {
    throw invalidArgument(at("metrics"), `must hold at most ${OUTCOME_LIMITS.maxMetrics} metrics`);
  }
  for (const [name, value] of entries) {
    if (!METRIC_NAME_PATTERN.test(name)) throw invalidArgument(at(`metrics[${quoteName(name)}]`), `name ${METRIC_NAME_RULE}`);
    if (typeof value !== "number" || !Number.isFinite(value)) throw invalidArgument(at(`metrics[${quoteName(name)}]`), "must be finite");
  }
  return isMap ? (raw as ReadonlyMap<string, number>) : new Map(entries);
}

/** Quotes a metric name for a field path; a hostile name is cut so that the error stays short. */
function quoteName(name: string): string {
  return JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
}
