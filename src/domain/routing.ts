import { bucketOf, isCanaryBucket } from "./bucketing.js";
import { FULL_WEIGHT_BP, type Rollout, type Variant } from "./rollout.js";

/** Why a key went where it did. */
export type RouteReason = "weight" | "override" | "stage" | "rolled_back" | "halted";

/** The answer to "stable or canary for this key?". */
export interface RouteDecision {
  readonly variant: Variant;
  readonly version: string;
  readonly bucket: number;
  readonly weightBp: number;
  readonly features: readonly string[];
  readonly reason: RouteReason;
  readonly rolloutVersion: number;
}

/**
 * A rollout compiled for routing: everything Route needs, computed once per rollout version so
 * that a Route call does one hash and no other allocation.
 */
export interface RouteTable {
  readonly rollout: Rollout;
  /** The effective canary weight: the stage decides it outside CANARY. */
  readonly weightBp: number;
  /** Whether per-key overrides apply (CANARY and STAGING only). */
  readonly overridable: boolean;
  /** Set when the stage alone decides (STAGING, PRODUCTION, ROLLED_BACK, HALTED). */
  readonly fixed?: { readonly variant: Variant; readonly reason: RouteReason };
  /** Features answered to keys on the canary, and to keys on the stable. */
  readonly canaryFeatures: readonly string[];
  readonly stableFeatures: readonly string[];
}

const NONE: readonly string[] = Object.freeze([]);

/**
 * Returns the route table of a rollout (docs/design.md §3 stage rules, §4 bucketing).
 *
 * A halted or rolled-back rollout sends everyone to stable with no features, overrides
 * included: the kill switch beats everything. PRODUCTION sends everyone to the new stable
 * version with its enabled features. STAGING sends everyone to the canary with every feature
 * on, except keys overridden to stable.
 */
export function compileRoutes(rollout: Rollout): RouteTable {
  const enabled = Object.freeze(
    [...rollout.features].filter(([, on]) => on).map(([name]) => name).sort(),
  );
  switch (rollout.stage) {
    case "canary":
      return { rollout, weightBp: rollout.weightBp, overridable: true, canaryFeatures: enabled, stableFeatures: NONE };
    case "staging": {
      const all = Object.freeze([...rollout.features.keys()].sort());
      return { rollout, weightBp: FULL_WEIGHT_BP, overridable: true, fixed: { variant: "canary", reason: "stage" }, canaryFeatures: all, stableFeatures: NONE };
    }
    case "production":
      return { rollout, weightBp: 0, overridable: false, fixed: { variant: "stable", reason: "stage" }, canaryFeatures: enabled, stableFeatures: enabled };
    case "rolled_back":
      return { rollout, weightBp: 0, overridable: false, fixed: { variant: "stable", reason: "rolled_back" }, canaryFeatures: NONE, stableFeatures: NONE };
    case "halted":
      return { rollout, weightBp: 0, overridable: false, fixed: { variant: "stable", reason: "halted" }, canaryFeatures: NONE, stableFeatures: NONE };
  }
}

/** Returns where a key goes under a route table: overrides first, then the stage, then the weight. */
export function route(table: RouteTable, key: string): RouteDecision {
  const r = table.rollout;
  const bucket = bucketOf(r.salt, key);
  const override = table.overridable ? r.overrides.get(key) : undefined;
  let variant: Variant;
  let reason: RouteReason;
  if (override !== undefined) {
    variant = override;
    reason = "override";
  } else if (table.fixed !== undefined) {
    variant = table.fixed.variant;
    reason = table.fixed.reason;
  } else {
    variant = isCanaryBucket(bucket, table.weightBp) ? "canary" : "stable";
    reason = "weight";
  }
  const canary = variant === "canary";
  return {
    variant,
    version: canary ? r.canaryVersion : r.stableVersion,
    bucket,
    weightBp: table.weightBp,
    features: canary ? table.canaryFeatures : table.stableFeatures,
    reason,
    rolloutVersion: r.version,
  };
}
