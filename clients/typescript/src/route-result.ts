import { RouteReason, type RouteResponse } from "./gen/rollgate/v1/decision_service_pb.js";
import { Variant } from "./gen/rollgate/v1/rollout_pb.js";

/** The side of a rollout a key goes to. */
export type VariantName = "stable" | "canary";

/**
 * Why a key went where it did. "fallback" only comes from local mode: it had no state for the
 * rollout (not ready yet, or a rollout it does not know) or the key was invalid, and answered
 * the configured fallback variant instead (see LocalStats.fallbacks).
 */
export type RouteReasonName = "weight" | "override" | "stage" | "rolled_back" | "halted" | "unspecified" | "fallback";

/** Where a key goes, in plain values. */
export interface RouteResult {
  readonly variant: VariantName;
  /** The version string of that variant. */
  readonly version: string;
  /** The key's bucket 0..9999 under bucketing spec v1. */
  readonly bucket: number;
  /** The rollout's effective canary weight in basis points. */
  readonly weightBp: number;
  /** Features enabled for this key. */
  readonly features: readonly string[];
  readonly reason: RouteReasonName;
  readonly rolloutVersion: bigint;
}

const REASONS: Record<RouteReason, RouteReasonName> = {
  [RouteReason.UNSPECIFIED]: "unspecified",
  [RouteReason.WEIGHT]: "weight",
  [RouteReason.OVERRIDE]: "override",
  [RouteReason.STAGE]: "stage",
  [RouteReason.ROLLED_BACK]: "rolled_back",
  [RouteReason.HALTED]: "halted",
};

/** Returns the plain form of a RouteResponse. */
export function routeResultOf(r: RouteResponse): RouteResult {
  return {
    variant: r.variant === Variant.CANARY ? "canary" : "stable",
    version: r.version,
    bucket: r.bucket,
    weightBp: r.weightBp,
    features: r.features,
    reason: REASONS[r.reason] ?? "unspecified",
    rolloutVersion: r.rolloutVersion,
  };
}

/** Returns the wire enum of a variant name (enum values pass through). */
export function variantToProto(v: VariantName | Variant): Variant {
  if (v === "stable") return Variant.STABLE;
  if (v === "canary") return Variant.CANARY;
  return v;
}
