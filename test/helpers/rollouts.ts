import { createRollout } from "../../src/domain/rollout-machine.js";
import { DEFAULT_STEP_WEIGHTS_BP, analysisWithDefaults, type Rollout, type RolloutSpec } from "../../src/domain/rollout.js";

/** Returns a valid rollout configuration with the default ramp, overridable field by field. */
export function specFixture(overrides: Partial<RolloutSpec> = {}): RolloutSpec {
  return {
    name: "checkout",
    stableVersion: "v1",
    canaryVersion: "v2",
    steps: DEFAULT_STEP_WEIGHTS_BP.map((weightBp) => ({ weightBp, minDurationMs: 0, minSamples: 0 })),
    features: new Map(),
    salt: "checkout",
    gates: [],
    analysis: analysisWithDefaults({}),
    ...overrides,
  };
}

/** Returns a new rollout (stage CANARY, first step) created by "tester" at `now`. */
export function rolloutFixture(overrides: Partial<RolloutSpec> = {}, now = Date.UTC(2026, 0, 1)): Rollout {
  return createRollout(specFixture(overrides), { name: "tester", now });
}
