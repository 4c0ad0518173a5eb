import { hash } from "node:crypto";
import { canonicalJson } from "./canonical-json.js";
import type { RolloutSpec } from "./rollout.js";

/**
 * Returns the lowercase hex SHA-256 of a rollout's canonical configuration.
 *
 * It covers what an operator declares (versions, steps, features, salt, gates, analysis),
 * not runtime state such as stage, weight or overrides.
 */
export function fingerprintOf(spec: RolloutSpec): string {
  const canonical = canonicalJson({
    v: 1,
    name: spec.name,
    stableVersion: spec.stableVersion,
    canaryVersion: spec.canaryVersion,
    steps: spec.steps,
    features: spec.features,
    salt: spec.salt,
    gates: spec.gates,
    analysis: spec.analysis,
  });
  return hash("sha256", canonical, "hex");
}
