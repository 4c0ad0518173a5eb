import { describe, expect, it } from "vitest";
import { DomainError } from "../../src/domain/errors.js";
import { ANALYSIS_DEFAULTS, DEFAULT_GATE_ACTION, DEFAULT_GATE_MIN_SAMPLES, DEFAULT_STEP_WEIGHTS_BP } from "../../src/domain/rollout.js";
import { normalizeSpec, type RolloutSpecInput } from "../../src/domain/validation.js";

const input = (more: Partial<RolloutSpecInput> = {}): RolloutSpecInput => ({
  name: "checkout",
  stableVersion: "v1",
  canaryVersion: "v2",
  steps: [],
  features: new Map(),
  salt: "",
  gates: [],
  analysis: {},
  ...more,
});

/** Returns the INVALID_ARGUMENT message normalizeSpec throws for `i`. */
function refusal(i: RolloutSpecInput): string {
  try {
    normalizeSpec(i, "rollout");
  } catch (e) {
    if (e instanceof DomainError && e.kind === "invalid_argument") return e.message;
    throw e;
  }
  throw new Error("expected INVALID_ARGUMENT");
}

describe("normalizeSpec: analysis interval", () => {
  it("refuses an interval of 0 (a mistake, not the default) and below 1 s", () => {
    expect(refusal(input({ analysis: { intervalMs: 0 } }))).toBe("rollout.analysis.interval: must be 1s..1h");
    expect(refusal(input({ analysis: { intervalMs: 999 } }))).toBe("rollout.analysis.interval: must be 1s..1h");
  });

  it("takes the default when the interval is unset", () => {
    expect(normalizeSpec(input({ analysis: { windowMs: 60_000 } }), "rollout").analysis.intervalMs).toBe(ANALYSIS_DEFAULTS.intervalMs);
    expect(normalizeSpec(input({ analysis: { intervalMs: 1000 } }), "rollout").analysis.intervalMs).toBe(1000);
  });
});

describe("normalizeSpec: one home for every default", () => {
  it("fills the ramp, the salt and the analysis settings", () => {
    const spec = normalizeSpec(input(), "rollout");
    expect(spec.steps.map((s) => s.weightBp)).toEqual(DEFAULT_STEP_WEIGHTS_BP);
    expect(spec.salt).toBe("checkout");
    expect(spec.analysis).toMatchObject({ intervalMs: ANALYSIS_DEFAULTS.intervalMs, windowMs: ANALYSIS_DEFAULTS.windowMs, gracePeriodMs: ANALYSIS_DEFAULTS.intervalMs });
  });

  it("fills a gate's unset name, min_samples and on_breach, and keeps what is set", () => {
    const spec = normalizeSpec(
      input({
        gates: [
          { name: "", minSamples: 0, check: { kind: "error_rate", max: 0.05 } },
          { name: "", minSamples: 0, check: { kind: "success_rate", min: 0.9 } },
          { name: "p99", minSamples: 20, onBreach: "halt", check: { kind: "latency", quantile: 0.99, maxMs: 250 } },
        ],
      }),
      "rollout",
    );
    expect(spec.gates).toEqual([
      { name: "error-rate", minSamples: DEFAULT_GATE_MIN_SAMPLES, onBreach: DEFAULT_GATE_ACTION, check: { kind: "error_rate", max: 0.05 } },
      { name: "success-rate", minSamples: DEFAULT_GATE_MIN_SAMPLES, onBreach: DEFAULT_GATE_ACTION, check: { kind: "success_rate", min: 0.9 } },
      { name: "p99", minSamples: 20, onBreach: "halt", check: { kind: "latency", quantile: 0.99, maxMs: 250 } },
    ]);
  });

  it("validates gates after their defaults, with the field path", () => {
    const dup = { name: "", minSamples: 0, check: { kind: "error_rate", max: 0.05 } } as const;
    expect(refusal(input({ gates: [dup, dup] }))).toBe('rollout.gates[1].name: duplicate gate name "error-rate"');
    expect(refusal(input({ gates: [{ ...dup, name: "Bad" }] }))).toBe("rollout.gates[0].name: must match [a-z0-9][a-z0-9._-]{0,62}");
  });
});
