import { describe, expect, it } from "vitest";
import type { Evaluation } from "../../src/domain/analysis.js";
import { acts, checkPromotion, consequence, isLive, policy, startsAfresh, transitionOf } from "../../src/domain/decision.js";
import { DomainError } from "../../src/domain/errors.js";
import type { GateResult } from "../../src/domain/gates.js";
import type { DecisionType } from "../../src/domain/health.js";
import type { Stage } from "../../src/domain/rollout.js";
import { T0, rolloutWith } from "./fixtures.js";

const actor = { name: "evaluator", now: T0 + 60_000 };
const at2 = { currentStep: 2, weightBp: 5000 };

/** An evaluation with only what `consequence` reads filled in. */
const evaluation = (decision: DecisionType, more: Partial<Evaluation> = {}): Evaluation =>
  ({ decision, pause: false, triggeredBy: [], reason: "errors: canary error rate 0.3 > max 0.05", dryRun: false, ...more }) as Evaluation;

describe("isLive", () => {
  it("is true for CANARY and STAGING only", () => {
    const stages: Stage[] = ["canary", "staging", "production", "rolled_back", "halted"];
    expect(stages.filter(isLive)).toEqual(["canary", "staging"]);
  });
});

describe("policy", () => {
  it("leaves a wish alone when the settings allow it", () => {
    const r = rolloutWith({ state: at2 });
    for (const want of ["rollback", "emergency_stop", "step_back", "scale_down", "hold"] as const) {
      expect(policy(r, want, actor.now, "why")).toEqual({ decision: want, reason: "why" });
    }
  });

  it("auto_rollback off holds instead of taking traffic away, and says so", () => {
    const r = rolloutWith({ analysis: { autoRollback: false } });
    for (const want of ["rollback", "emergency_stop", "step_back", "scale_down"] as const) {
      expect(policy(r, want, actor.now, "why")).toEqual({ decision: "hold", reason: `auto_rollback is off, holding instead of ${want}: why` });
    }
  });

  it("STAGING rolls back instead of stepping back; paused holds instead", () => {
    const staging = rolloutWith({ state: { stage: "staging", weightBp: 10_000 } });
    expect(policy(staging, "scale_down", actor.now, "why")).toEqual({ decision: "rollback", reason: "STAGING has no smaller step, rolling back instead of scale_down: why" });
    const paused = rolloutWith({ state: { ...at2, paused: true } });
    expect(policy(paused, "step_back", actor.now, "why")).toEqual({ decision: "hold", reason: "paused, holding instead of step_back: why" });
    expect(policy(paused, "rollback", actor.now).decision).toBe("rollback");
    // STAGING comes first: a paused STAGING rollout rolls back.
    expect(policy({ ...staging, paused: true }, "step_back", actor.now).decision).toBe("rollback");
  });

  it("halts instead of a rollback over the daily limit, counting only the last 24 h", () => {
    const day = 24 * 3_600_000;
    const full = rolloutWith({ analysis: { maxAutoRollbacksPerDay: 2 }, state: { autoRollbacks: [actor.now - 1000, actor.now - 2000] } });
    expect(policy(full, "rollback", actor.now, "why")).toEqual({
      decision: "emergency_stop",
      reason: "why; 2 automatic rollbacks in the last 24 h already (max_auto_rollbacks_per_day 2): halting instead",
    });
    // A STAGING step back that became a rollback is held to the limit too.
    expect(policy({ ...full, stage: "staging" }, "step_back", actor.now).decision).toBe("emergency_stop");
    expect(policy(full, "rollback", actor.now + day).decision).toBe("rollback");
  });
});

describe("acts", () => {
  it("is false for continue and for a hold that does not pause", () => {
    expect(acts({ decision: "continue", pause: false })).toBe(false);
    expect(acts({ decision: "hold", pause: false })).toBe(false);
    expect(acts({ decision: "hold", pause: true })).toBe(true);
    for (const d of ["promote", "step_back", "scale_down", "rollback", "emergency_stop"] as const) expect(acts({ decision: d, pause: false })).toBe(true);
  });
});

describe("consequence", () => {
  it("maps each decision to its transition, made by the evaluator", () => {
    const r = rolloutWith({ state: at2 });
    const stageOf = (d: DecisionType, pause = false) => consequence(r, evaluation(d, { pause }), actor).transition?.rollout;
    expect(stageOf("rollback")).toMatchObject({ stage: "rolled_back", weightBp: 0, autoRollbacks: [actor.now], updatedBy: "evaluator" });
    expect(stageOf("emergency_stop")).toMatchObject({ stage: "halted", weightBp: 0 });
    expect(stageOf("step_back")).toMatchObject({ stage: "canary", currentStep: 0, weightBp: 500 });
    expect(stageOf("scale_down")).toMatchObject({ stage: "canary", weightBp: 2500 });
    expect(stageOf("promote")).toMatchObject({ stage: "canary", currentStep: 3, weightBp: 10_000 });
    expect(stageOf("hold", true)).toMatchObject({ paused: true, weightBp: 5000 });
    expect(stageOf("hold")).toBeUndefined();
    expect(stageOf("continue")).toBeUndefined();
    expect(transitionOf(r, "continue", false, actor)).toBeUndefined();
  });

  it("applies nothing in dry run and audits what it would have done", () => {
    const r = rolloutWith();
    const c = consequence(r, evaluation("rollback", { dryRun: true, triggeredBy: ["errors"] }), actor);
    expect(c).toEqual({ audit: "dry run: would rollback: errors: canary error rate 0.3 > max 0.05", decided: true });
  });

  it("audits a gate that acted without changing anything (NOTIFY, or held by the settings)", () => {
    const r = rolloutWith();
    expect(consequence(r, evaluation("continue", { triggeredBy: ["errors"], reason: "errors: … (notify only)" }), actor)).toEqual({ audit: "errors: … (notify only)", decided: true });
    expect(consequence(r, evaluation("hold", { triggeredBy: ["errors"] }), actor)).toMatchObject({ audit: expect.stringMatching(/^errors: /), decided: true });
    expect(consequence(r, evaluation("continue"), actor)).toEqual({ decided: false });
  });

  it("commits a rollback without a separate decision event", () => {
    const c = consequence(rolloutWith(), evaluation("rollback", { triggeredBy: ["errors"] }), actor);
    expect(c.transition?.type).toBe("rolled_back");
    expect(c.audit).toBeUndefined();
    expect(c.decided).toBe(true);
  });
});

describe("startsAfresh", () => {
  it("is true for a rollback and a new canary version only", () => {
    const r = rolloutWith({ state: at2 });
    const rolledBack = transitionOf(r, "rollback", false, actor)!.rollout;
    expect(startsAfresh(r, rolledBack)).toBe(true);
    expect(startsAfresh(rolledBack, { ...rolledBack, version: rolledBack.version + 1 })).toBe(false);
    expect(startsAfresh(r, { ...r, canaryVersion: "v3" })).toBe(true);
    expect(startsAfresh(r, transitionOf(r, "step_back", false, actor)!.rollout)).toBe(false);
    expect(startsAfresh(r, transitionOf(r, "emergency_stop", false, actor)!.rollout)).toBe(false);
  });
});

describe("checkPromotion", () => {
  const g = (name: string, verdict: GateResult["verdict"]): GateResult => ({
    name,
    kind: "error_rate",
    onBreach: "rollback",
    verdict,
    observed: 0.1234567,
    threshold: 0.05,
    samples: 10,
    minSamples: 100,
    message: `${name} says ${verdict}`,
  });

  it("refuses while a gate fails or lacks samples, naming each with its values", () => {
    const r = rolloutWith();
    let err: unknown;
    try {
      checkPromotion(r, [g("ok", "pass"), g("thin", "inconclusive"), g("bad", "fail"), g("close", "warn")]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DomainError);
    const e = err as DomainError;
    expect(e.kind).toBe("failed_precondition");
    expect(e.message).toBe(
      'promotion of "checkout" refused by gates: thin INCONCLUSIVE, bad FAIL; to override, promote with --force --reason "…" (force and reason in the API)',
    );
    expect(e.details.gates?.map((x) => x.name)).toEqual(["thin", "bad"]);
  });

  it("lets a promotion through when every gate passes or warns, and outside the live stages", () => {
    expect(() => checkPromotion(rolloutWith(), [g("ok", "pass"), g("close", "warn")])).not.toThrow();
    expect(() => checkPromotion(rolloutWith({ state: { stage: "rolled_back" } }), [g("bad", "fail")])).not.toThrow();
  });
});
