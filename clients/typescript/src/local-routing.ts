import { hash } from "node:crypto";
import type { RouteState } from "./gen/rollgate/v1/decision_service_pb.js";
import { Stage, Variant } from "./gen/rollgate/v1/rollout_pb.js";
import { BUCKETS } from "./buckets.js";
import type { RouteReasonName, RouteResult, VariantName } from "./route-result.js";

/**
 * Routing spec v1 in process (vectors/README.md): the answer Route gives, computed from a
 * rollout's RouteState. A state is compiled once per rollout version into a table, so that a
 * decision is one SHA-256 and one small result object.
 */

/** A RouteState compiled for routing. */
export interface LocalTable {
  readonly rollout: string;
  readonly salt: string;
  /** `salt + "\0"`, the hash input before the key. */
  readonly prefix: string;
  /** The effective canary weight: the stage decides it outside CANARY. */
  readonly weightBp: number;
  /** Set when the stage alone decides (everything but CANARY). */
  readonly fixed: { readonly variant: VariantName; readonly reason: RouteReasonName } | undefined;
  /** Per-key overrides; empty outside CANARY and STAGING, where they do not apply. */
  readonly overrides: ReadonlyMap<string, VariantName>;
  readonly stableVersion: string;
  readonly canaryVersion: string;
  readonly canaryFeatures: readonly string[];
  readonly stableFeatures: readonly string[];
  readonly rolloutVersion: bigint;
  /** The state it was compiled from (what persistence writes). */
  readonly state: RouteState;
}

/** Thrown for a RouteState no server sends: the client keeps its last good state. */
export class MalformedStateError extends Error {}

const NONE: readonly string[] = Object.freeze([]);
const MAX_WEIGHT_BP = 10_000;
// 2^32 mod 10000: reduces the 64-bit prefix with two 32-bit halves and no BigInt.
const TWO_POW_32_MOD = 4_294_967_296 % BUCKETS;

/**
 * Returns the bucket 0..9999 of a key under a salt (bucketing spec v1), without allocating a
 * Buffer: the digest comes back as a latin1 string.
 */
export function bucketFast(salt: string, key: string): number {
  return bucketOfPrefixed(salt + "\0", key);
}

/** bucketFast with `utf8(salt) || 0x00` already joined (a table keeps it). */
function bucketOfPrefixed(prefix: string, key: string): number {
  const h = hash("sha256", prefix + key, "binary");
  const hi = ((h.charCodeAt(0) << 24) | (h.charCodeAt(1) << 16) | (h.charCodeAt(2) << 8) | h.charCodeAt(3)) >>> 0;
  const lo = ((h.charCodeAt(4) << 24) | (h.charCodeAt(5) << 16) | (h.charCodeAt(6) << 8) | h.charCodeAt(7)) >>> 0;
  return ((hi % BUCKETS) * TWO_POW_32_MOD + lo) % BUCKETS;
}

/** Returns the table of a RouteState; throws MalformedStateError for a state no server sends. */
export function compileRouteState(s: RouteState): LocalTable {
  if (s.rollout === "") throw new MalformedStateError("a route state without a rollout name");
  if (!Number.isInteger(s.weightBp) || s.weightBp < 0 || s.weightBp > MAX_WEIGHT_BP) {
    throw new MalformedStateError(`rollout "${s.rollout}": weight_bp ${s.weightBp} is not 0..10000`);
  }
  const overrides = new Map<string, VariantName>();
  for (const [key, v] of Object.entries(s.overrides)) {
    if (v !== Variant.STABLE && v !== Variant.CANARY) throw new MalformedStateError(`rollout "${s.rollout}": override of "${key}" has variant ${v}`);
    overrides.set(key, v === Variant.CANARY ? "canary" : "stable");
  }
  const names = Object.keys(s.features);
  const enabled = Object.freeze(names.filter((n) => s.features[n] === true).sort());
  const all = Object.freeze([...names].sort());
  const salt = s.salt === "" ? s.rollout : s.salt;
  const base = {
    rollout: s.rollout,
    salt,
    prefix: salt + "\0",
    stableVersion: s.stableVersion,
    canaryVersion: s.canaryVersion,
    rolloutVersion: s.rolloutVersion,
    state: s,
  };
  const none = new Map<string, VariantName>();
  switch (s.stage) {
    case Stage.CANARY:
      return { ...base, weightBp: s.weightBp, fixed: undefined, overrides, canaryFeatures: enabled, stableFeatures: NONE };
    case Stage.STAGING:
      return { ...base, weightBp: MAX_WEIGHT_BP, fixed: { variant: "canary", reason: "stage" }, overrides, canaryFeatures: all, stableFeatures: NONE };
    case Stage.PRODUCTION:
      return { ...base, weightBp: 0, fixed: { variant: "stable", reason: "stage" }, overrides: none, canaryFeatures: enabled, stableFeatures: enabled };
    case Stage.ROLLED_BACK:
      return { ...base, weightBp: 0, fixed: { variant: "stable", reason: "rolled_back" }, overrides: none, canaryFeatures: NONE, stableFeatures: NONE };
    case Stage.HALTED:
      return { ...base, weightBp: 0, fixed: { variant: "stable", reason: "halted" }, overrides: none, canaryFeatures: NONE, stableFeatures: NONE };
    default:
      throw new MalformedStateError(`rollout "${s.rollout}": unknown stage ${s.stage}`);
  }
}

/** Returns where a key goes under a table: overrides first, then the stage, then the weight. */
export function routeTable(t: LocalTable, key: string): RouteResult {
  const bucket = bucketOfPrefixed(t.prefix, key);
  const override = t.overrides.size === 0 ? undefined : t.overrides.get(key);
  let variant: VariantName;
  let reason: RouteReasonName;
  if (override !== undefined) {
    variant = override;
    reason = "override";
  } else if (t.fixed !== undefined) {
    variant = t.fixed.variant;
    reason = t.fixed.reason;
  } else {
    variant = bucket < t.weightBp ? "canary" : "stable";
    reason = "weight";
  }
  const canary = variant === "canary";
  return {
    variant,
    version: canary ? t.canaryVersion : t.stableVersion,
    bucket,
    weightBp: t.weightBp,
    features: canary ? t.canaryFeatures : t.stableFeatures,
    reason,
    rolloutVersion: t.rolloutVersion,
  };
}

/** Returns true when a key is one Route accepts: 1..1024 bytes of UTF-8. */
export function isValidKey(key: string): boolean {
  if (key.length === 0) return false;
  if (key.length * 3 <= 1024) return true;
  if (key.length > 1024) return false;
  return Buffer.byteLength(key, "utf8") <= 1024;
}
