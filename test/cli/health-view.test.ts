import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { Decision, GateStatusSchema, Recommendation, RolloutHealthSchema, Verdict } from "rollgate-client/gen/health_pb";
import { RolloutSchema, Stage } from "rollgate-client/gen/rollout_pb";
import { palette } from "../../src/cli/colors.js";
import { healthLine, healthView } from "../../src/cli/health-view.js";

const plain = palette(false);
const now = Date.parse("2026-12-01T12:00:00Z");
const rollout = create(RolloutSchema, {
  name: "pay",
  stableVersion: "v1",
  canaryVersion: "v2",
  steps: [{ weightBp: 500 }, { weightBp: 10_000 }],
  gates: [{ name: "ratio", kind: { case: "errorRate", value: { maxRatio: 1.2 } } }],
});
/** The health the server reports of a rollout in `stage`: a preview of the window, as if live. */
const health = (stage: Stage) =>
  create(RolloutHealthSchema, {
    rollout: "pay",
    stage,
    score: 0.85,
    recommendation: Recommendation.MONITOR,
    nextAction: Decision.HOLD,
    nextActionAt: { seconds: BigInt(now / 1000), nanos: 0 },
    gates: [create(GateStatusSchema, { name: "ratio", kind: "error_rate", threshold: 0, verdict: Verdict.INCONCLUSIVE })],
  });

describe("healthView of a rollout the evaluator no longer judges", () => {
  it.each([
    [Stage.HALTED, "halted (kill switch): every key gets stable v1; automatic actions off", 'next: rollgate resume pay --reason "…" restarts at the current step, or rollgate rollback pay'],
    [Stage.PRODUCTION, "in production: every key gets v1; nothing left to judge", "next: apply a new canaryVersion to start the next rollout"],
    [Stage.ROLLED_BACK, "rolled back: every key gets stable v1; not judged, gates do not act", 'next: rollgate resume pay --reason "…" restarts v2 at step 1, or apply a new canaryVersion'],
  ])("stage %s: says what is true and what to do, no score, no next action", (stage, what, next) => {
    const text = healthView(health(stage), rollout, plain, now);
    const lines = text.split("\n");
    expect(lines[2]).toBe(what);
    expect(lines[3]).toBe(next);
    expect(text).not.toContain("0.85");
    expect(text).not.toContain("MONITOR");
    expect(text).not.toMatch(/\bHOLD\b/);
    expect(text.includes("GATE")).toBe(stage !== Stage.PRODUCTION);
    expect(healthLine(health(stage), rollout, now)).not.toMatch(/score=|recommendation=|next=/);
    expect(healthLine(health(stage), rollout, now)).toContain(" judged=no");
  });

  it("a live rollout keeps its score and next action; a vs-stable gate without stable data shows its rule, not 0%", () => {
    const text = healthView(health(Stage.CANARY), rollout, plain, now);
    expect(text).toMatch(/^health 0\.85 MONITOR/m);
    expect(text).toMatch(/^next action: HOLD in 0s$/m);
    expect(text).toMatch(/^ratio\s+error_rate\s+-\s+stable × 1\.2\s+-\s+0\s+INCONCLUSIVE/m);
    // Without the configuration the number is all there is.
    expect(healthView(health(Stage.CANARY), undefined, plain, now)).toMatch(/^ratio\s+error_rate\s+-\s+0%\s+/m);
  });
});
