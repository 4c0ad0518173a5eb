import { create } from "@bufbuild/protobuf";
import { DurationSchema, TimestampSchema, timestampFromMs, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { AuditEvent, EventType as DomainEventType } from "../domain/audit-chain.js";
import { invalidArgument, type BlockingGate } from "../domain/errors.js";
import {
  type Action as DomainAction,
  type Analysis as DomainAnalysis,
  type Gate as DomainGate,
  type GateCheck,
  type Rollout as DomainRollout,
  type Stage as DomainStage,
  type Step as DomainStep,
  type Variant as DomainVariant,
} from "../domain/rollout.js";
import type { Verdict as DomainVerdict } from "../domain/gates.js";
import type { DecisionType, GateHealth, Recommendation as DomainRecommendation, RolloutHealth as DomainHealth } from "../domain/health.js";
import type { RawOutcome } from "../domain/outcome.js";
import type { RouteDecision, RouteReason as DomainRouteReason } from "../domain/routing.js";
import type { GateInput, RolloutSpecInput } from "../domain/validation.js";
import { RouteReason, RouteResponseSchema, type Outcome, type RouteResponse } from "../../gen/rollgate/v1/decision_service_pb.js";
import {
  Decision,
  GateStatusSchema,
  Recommendation,
  RolloutHealthSchema,
  Verdict,
  type GateStatus,
  type RolloutHealth,
} from "../../gen/rollgate/v1/health_pb.js";
import { EventSchema, EventType, type Event } from "../../gen/rollgate/v1/event_pb.js";
import {
  Action,
  AnalysisSchema,
  GateSchema,
  MetricAggregation,
  RolloutSchema,
  Stage,
  StepSchema,
  Variant,
  type Analysis,
  type Gate,
  type Rollout,
} from "../../gen/rollgate/v1/rollout_pb.js";
import { protoEnumConverters, type ProtoEnumConverters } from "./proto-enum.js";

/**
 * Conversions between wire messages and domain values. Proto types stop here: the domain and
 * the store only ever see the domain types.
 */

// Each enum's one table: keyed by every proto value, so a value added to the .proto fails the
// build until it is mapped here; the declared type fails it when the domain gains a value.

const VARIANTS: ProtoEnumConverters<Variant, DomainVariant> = protoEnumConverters(Variant, {
  [Variant.UNSPECIFIED]: undefined,
  [Variant.STABLE]: "stable",
  [Variant.CANARY]: "canary",
});

const STAGES: ProtoEnumConverters<Stage, DomainStage> = protoEnumConverters(Stage, {
  [Stage.UNSPECIFIED]: undefined,
  [Stage.CANARY]: "canary",
  [Stage.STAGING]: "staging",
  [Stage.PRODUCTION]: "production",
  [Stage.ROLLED_BACK]: "rolled_back",
  [Stage.HALTED]: "halted",
});

const ACTIONS: ProtoEnumConverters<Action, DomainAction> = protoEnumConverters(Action, {
  [Action.UNSPECIFIED]: undefined,
  [Action.ROLLBACK]: "rollback",
  [Action.HALT]: "halt",
  [Action.STEP_BACK]: "step_back",
  [Action.SCALE_DOWN]: "scale_down",
  [Action.HOLD]: "hold",
  [Action.NOTIFY]: "notify",
});

const AGGREGATIONS: ProtoEnumConverters<MetricAggregation, Extract<GateCheck, { kind: "metric" }>["aggregation"]> = protoEnumConverters(MetricAggregation, {
  [MetricAggregation.UNSPECIFIED]: undefined,
  [MetricAggregation.MEAN]: "mean",
  [MetricAggregation.MAX]: "max",
});

const ROUTE_REASONS: ProtoEnumConverters<RouteReason, DomainRouteReason> = protoEnumConverters(RouteReason, {
  [RouteReason.UNSPECIFIED]: undefined,
  [RouteReason.WEIGHT]: "weight",
  [RouteReason.OVERRIDE]: "override",
  [RouteReason.STAGE]: "stage",
  [RouteReason.ROLLED_BACK]: "rolled_back",
  [RouteReason.HALTED]: "halted",
});

const EVENT_TYPES: ProtoEnumConverters<EventType, DomainEventType> = protoEnumConverters(EventType, {
  [EventType.UNSPECIFIED]: undefined,
  [EventType.CREATED]: "created",
  [EventType.UPDATED]: "updated",
  [EventType.DELETED]: "deleted",
  [EventType.STEP_CHANGED]: "step_changed",
  [EventType.WEIGHT_CHANGED]: "weight_changed",
  [EventType.PROMOTED]: "promoted",
  [EventType.ROLLED_BACK]: "rolled_back",
  [EventType.HALTED]: "halted",
  [EventType.RESUMED]: "resumed",
  [EventType.PAUSED]: "paused",
  [EventType.FEATURE_CHANGED]: "feature_changed",
  [EventType.OVERRIDE_CHANGED]: "override_changed",
  [EventType.GATE_BREACH]: "gate_breach",
  [EventType.DECISION]: "decision",
});

const VERDICTS: ProtoEnumConverters<Verdict, DomainVerdict> = protoEnumConverters(Verdict, {
  [Verdict.UNSPECIFIED]: undefined,
  [Verdict.PASS]: "pass",
  [Verdict.WARN]: "warn",
  [Verdict.FAIL]: "fail",
  [Verdict.INCONCLUSIVE]: "inconclusive",
});

const RECOMMENDATIONS: ProtoEnumConverters<Recommendation, DomainRecommendation> = protoEnumConverters(Recommendation, {
  [Recommendation.UNSPECIFIED]: undefined,
  [Recommendation.HEALTHY]: "healthy",
  [Recommendation.MONITOR]: "monitor",
  [Recommendation.ROLLBACK]: "rollback",
});

const DECISIONS: ProtoEnumConverters<Decision, DecisionType> = protoEnumConverters(Decision, {
  [Decision.UNSPECIFIED]: undefined,
  [Decision.CONTINUE]: "continue",
  [Decision.PROMOTE]: "promote",
  [Decision.HOLD]: "hold",
  [Decision.STEP_BACK]: "step_back",
  [Decision.SCALE_DOWN]: "scale_down",
  [Decision.ROLLBACK]: "rollback",
  [Decision.EMERGENCY_STOP]: "emergency_stop",
});

/** Returns the wire enum of a variant. */
export const variantToProto: (v: DomainVariant) => Variant = VARIANTS.toProto;

/** Returns the domain variant of a wire enum, or undefined for VARIANT_UNSPECIFIED and unknown values. */
export const variantFromProto: (v: Variant) => DomainVariant | undefined = VARIANTS.fromProto;

/** Returns the wire enum of a stage. */
export const stageToProto: (s: DomainStage) => Stage = STAGES.toProto;

/** Returns the wire enum of a gate action. */
export const actionToProto: (a: DomainAction) => Action = ACTIONS.toProto;

/** Returns the wire enum of a gate verdict. */
export const verdictToProto: (v: DomainVerdict) => Verdict = VERDICTS.toProto;

function actionFromProto(field: string, a: Action): DomainAction {
  if (a === Action.UNSPECIFIED) return "rollback";
  const found = ACTIONS.fromProto(a);
  if (found === undefined) throw invalidArgument(field, "must be a known Action");
  return found;
}

/** Returns the wire enum of a route reason. */
export const routeReasonToProto: (r: DomainRouteReason) => RouteReason = ROUTE_REASONS.toProto;

/** Returns the domain event type of a wire enum (for clients that verify the hash chain). */
export function eventTypeFromProto(t: EventType): DomainEventType {
  const found = EVENT_TYPES.fromProto(t);
  if (found === undefined) throw new Error(`unknown event type ${t}`);
  return found;
}

/** Returns milliseconds of a Duration (unset is undefined). */
export function durationToMs(d: Duration | undefined): number | undefined {
  return d === undefined ? undefined : Number(d.seconds) * 1000 + d.nanos / 1e6;
}

/** Returns a Duration of milliseconds. */
export function durationFromMs(ms: number): Duration {
  const seconds = Math.floor(ms / 1000);
  return create(DurationSchema, { seconds: BigInt(seconds), nanos: Math.round((ms - seconds * 1000) * 1e6) });
}

/** Returns a Timestamp of nanoseconds since the epoch. */
export function timestampFromNs(ns: bigint): Timestamp {
  return create(TimestampSchema, { seconds: ns / 1_000_000_000n, nanos: Number(ns % 1_000_000_000n) });
}

/** Returns nanoseconds since the epoch of a Timestamp. */
export function timestampToNs(t: Timestamp): bigint {
  return t.seconds * 1_000_000_000n + BigInt(t.nanos);
}

/** Returns milliseconds since the epoch of a Timestamp. */
export function timestampToMs(t: Timestamp): number {
  return Number(t.seconds) * 1000 + t.nanos / 1e6;
}

/** Drops undefined members, so optional fields stay absent under exactOptionalPropertyTypes. */
function compact<T extends object>(o: { [K in keyof T]: T[K] | undefined }): T {
  const out = {} as Record<string, unknown>;
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as T;
}

/** Returns the configuration a caller sent, as domain input (validation happens in the domain). */
export function specInputFromProto(r: Rollout, prefix: string): RolloutSpecInput {
  return {
    name: r.name,
    stableVersion: r.stableVersion,
    canaryVersion: r.canaryVersion,
    steps: r.steps.map(
      (s): DomainStep => ({
        weightBp: s.weightBp,
        minDurationMs: durationToMs(s.minDuration) ?? 0,
        minSamples: Number(s.minSamples),
      }),
    ),
    features: new Map(Object.entries(r.features)),
    salt: r.salt,
    gates: r.gates.map((g, i) => gateFromProto(g, `${prefix}.gates[${i}]`)),
    analysis: analysisFromProto(r.analysis, `${prefix}.analysis`),
  };
}

function gateFromProto(g: Gate, field: string): GateInput {
  let check: GateCheck;
  const k = g.kind;
  switch (k.case) {
    case "errorRate":
      check = compact<GateCheck>({ kind: "error_rate", max: k.value.max, maxRatio: k.value.maxRatio, confidence: k.value.confidence });
      break;
    case "latency":
      check = compact<GateCheck>({ kind: "latency", quantile: k.value.quantile, maxMs: k.value.maxMs, maxRatio: k.value.maxRatio });
      break;
    case "successRate":
      check = { kind: "success_rate", min: k.value.min };
      break;
    case "metric":
      check = compact<GateCheck>({
        kind: "metric",
        metric: k.value.metric,
        aggregation: AGGREGATIONS.fromProto(k.value.aggregation) ?? "mean",
        max: k.value.max,
        maxDelta: k.value.maxDelta,
      });
      break;
    case "invariant":
      check = { kind: "invariant", max: Number(k.value.max) };
      break;
    default:
      throw invalidArgument(`${field}.kind`, "must set one of error_rate, latency, success_rate, metric, invariant");
  }
  // Unset fields stay unset here; normalizeSpec applies the defaults.
  return {
    name: g.name,
    minSamples: Number(g.minSamples),
    ...(g.onBreach === Action.UNSPECIFIED ? {} : { onBreach: actionFromProto(`${field}.on_breach`, g.onBreach) }),
    check,
  };
}

function analysisFromProto(a: Analysis | undefined, field: string): Partial<DomainAnalysis> {
  if (a === undefined) return {};
  let onNoData: DomainAnalysis["onNoData"] | undefined;
  if (a.onNoData === Action.HOLD) onNoData = "hold";
  else if (a.onNoData === Action.ROLLBACK) onNoData = "rollback";
  else if (a.onNoData !== Action.UNSPECIFIED) throw invalidArgument(`${field}.on_no_data`, "must be ACTION_HOLD or ACTION_ROLLBACK");
  return compact<Partial<DomainAnalysis>>({
    windowMs: durationToMs(a.window),
    intervalMs: durationToMs(a.interval),
    consecutiveBreaches: a.consecutiveBreaches === 0 ? undefined : a.consecutiveBreaches,
    gracePeriodMs: durationToMs(a.gracePeriod),
    maxBreachRate: a.maxBreachRate,
    autoPromote: a.autoPromote,
    autoRollback: a.autoRollback,
    noDataTimeoutMs: durationToMs(a.noDataTimeout),
    onNoData,
    cooldownMs: durationToMs(a.cooldown),
    maxAutoRollbacksPerDay: a.maxAutoRollbacksPerDay,
    dryRun: a.dryRun,
  });
}

function gateToProto(g: DomainGate): Gate {
  const c = g.check;
  let kind: Gate["kind"];
  switch (c.kind) {
    case "error_rate":
      kind = { case: "errorRate", value: { $typeName: "rollgate.v1.ErrorRateGate", ...compact({ max: c.max, maxRatio: c.maxRatio, confidence: c.confidence }) } };
      break;
    case "latency":
      kind = { case: "latency", value: { $typeName: "rollgate.v1.LatencyGate", quantile: c.quantile, ...compact({ maxMs: c.maxMs, maxRatio: c.maxRatio }) } };
      break;
    case "success_rate":
      kind = { case: "successRate", value: { $typeName: "rollgate.v1.SuccessRateGate", min: c.min } };
      break;
    case "metric":
      kind = {
        case: "metric",
        value: {
          $typeName: "rollgate.v1.MetricGate",
          metric: c.metric,
          aggregation: AGGREGATIONS.toProto(c.aggregation),
          ...compact({ max: c.max, maxDelta: c.maxDelta }),
        },
      };
      break;
    case "invariant":
      kind = { case: "invariant", value: { $typeName: "rollgate.v1.InvariantGate", max: BigInt(c.max) } };
      break;
  }
  return create(GateSchema, { name: g.name, minSamples: BigInt(g.minSamples), onBreach: actionToProto(g.onBreach), kind });
}

function analysisToProto(a: DomainAnalysis): Analysis {
  return create(AnalysisSchema, {
    window: durationFromMs(a.windowMs),
    interval: durationFromMs(a.intervalMs),
    consecutiveBreaches: a.consecutiveBreaches,
    gracePeriod: durationFromMs(a.gracePeriodMs),
    ...(a.maxBreachRate === undefined ? {} : { maxBreachRate: a.maxBreachRate }),
    autoPromote: a.autoPromote,
    autoRollback: a.autoRollback,
    noDataTimeout: durationFromMs(a.noDataTimeoutMs),
    cooldown: durationFromMs(a.cooldownMs),
    maxAutoRollbacksPerDay: a.maxAutoRollbacksPerDay,
    dryRun: a.dryRun,
    onNoData: a.onNoData === "rollback" ? Action.ROLLBACK : Action.HOLD,
  });
}

/** Returns the wire message of a rollout. */
export function rolloutToProto(r: DomainRollout): Rollout {
  return create(RolloutSchema, {
    name: r.name,
    stableVersion: r.stableVersion,
    canaryVersion: r.canaryVersion,
    steps: r.steps.map((s) =>
      create(StepSchema, { weightBp: s.weightBp, minDuration: durationFromMs(s.minDurationMs), minSamples: BigInt(s.minSamples) }),
    ),
    stage: stageToProto(r.stage),
    currentStep: r.currentStep,
    weightBp: r.weightBp,
    paused: r.paused,
    features: Object.fromEntries(r.features),
    overrides: Object.fromEntries([...r.overrides].map(([k, v]) => [k, variantToProto(v)])),
    salt: r.salt,
    gates: r.gates.map(gateToProto),
    analysis: analysisToProto(r.analysis),
    version: BigInt(r.version),
    fingerprint: r.fingerprint,
    createdBy: r.createdBy,
    createdAt: timestampFromMs(r.createdAt),
    updatedBy: r.updatedBy,
    updatedAt: timestampFromMs(r.updatedAt),
    stepStartedAt: timestampFromMs(r.stepStartedAt),
    ...(r.rolledBackAt === undefined ? {} : { rolledBackAt: timestampFromMs(r.rolledBackAt) }),
  });
}

/** Returns the wire message of an audit event. */
export function eventToProto(e: AuditEvent): Event {
  return create(EventSchema, {
    seq: BigInt(e.seq),
    time: timestampFromNs(e.timeNs),
    rollout: e.rollout,
    type: EVENT_TYPES.toProto(e.type),
    actor: e.actor,
    reason: e.reason,
    fingerprint: e.fingerprint,
    snapshot: e.snapshot,
    prevHash: e.prevHash,
    hash: e.hash,
  });
}

/** Returns the domain form of a wire event, for hash-chain verification by clients. */
export function eventFromProto(e: Event): AuditEvent {
  return {
    seq: Number(e.seq),
    timeNs: e.time === undefined ? 0n : timestampToNs(e.time),
    rollout: e.rollout,
    type: eventTypeFromProto(e.type),
    actor: e.actor,
    reason: e.reason,
    fingerprint: e.fingerprint,
    snapshot: e.snapshot,
    prevHash: e.prevHash,
    hash: e.hash,
  };
}

/** Returns the wire message of a route decision. */
export function routeToProto(d: RouteDecision): RouteResponse {
  return create(RouteResponseSchema, {
    variant: VARIANTS.toProto(d.variant),
    version: d.version,
    bucket: d.bucket,
    weightBp: d.weightBp,
    features: d.features as string[],
    reason: ROUTE_REASONS.toProto(d.reason),
    rolloutVersion: BigInt(d.rolloutVersion),
  });
}

/** Returns the domain form of a reported outcome, before validation. */
export function outcomeFromProto(o: Outcome): RawOutcome {
  return {
    variant: variantFromProto(o.variant),
    success: o.success,
    latencyMs: o.latencyMs,
    metrics: o.metrics,
    invariantViolations: o.invariantViolations,
    key: o.key,
    timeMs: o.time === undefined ? undefined : timestampToMs(o.time),
  };
}

/** Returns the wire message of a gate's status (of a health view, or of a gate that blocks a promotion). */
export function gateStatusToProto(g: BlockingGate & Partial<Pick<GateHealth, "consecutiveBreaches" | "sequential">>): GateStatus {
  return create(GateStatusSchema, {
    name: g.name,
    kind: g.kind,
    observed: g.observed,
    threshold: g.threshold,
    ...(g.baseline === undefined ? {} : { baseline: g.baseline }),
    samples: BigInt(g.samples),
    verdict: VERDICTS.toProto(g.verdict),
    consecutiveBreaches: g.consecutiveBreaches ?? 0,
    message: g.message,
    onBreach: actionToProto(g.onBreach),
    ...(g.sequential === undefined
      ? {}
      : {
          sequential: {
            bound: g.sequential.bound,
            look: g.sequential.look,
            plannedLooks: g.sequential.plannedLooks,
            statistic: BigInt(g.sequential.statistic),
            boundary: BigInt(g.sequential.boundary),
            expected: g.sequential.expected,
            spentShare: g.sequential.spentShare,
            alpha: g.sequential.alpha,
            pValue: g.sequential.pValue,
            rateVariation: g.sequential.rateVariation,
            crossed: g.sequential.crossed,
          },
        }),
  });
}

/** Returns the wire message of a rollout's health. */
export function healthToProto(h: DomainHealth): RolloutHealth {
  return create(RolloutHealthSchema, {
    rollout: h.rollout,
    score: h.score,
    recommendation: RECOMMENDATIONS.toProto(h.recommendation),
    gates: h.gates.map(gateStatusToProto),
    consecutiveBreaches: h.consecutiveBreaches,
    samples: { stable: BigInt(h.samples.stable), canary: BigInt(h.samples.canary) },
    stage: stageToProto(h.stage),
    weightBp: h.weightBp,
    currentStep: h.currentStep,
    paused: h.paused,
    nextAction: DECISIONS.toProto(h.nextAction),
    ...(h.nextActionAt === undefined ? {} : { nextActionAt: timestampFromMs(h.nextActionAt) }),
    evaluatedAt: timestampFromMs(h.evaluatedAt),
    rolloutVersion: BigInt(h.rolloutVersion),
    message: h.message,
  });
}
