import { describe, expect, it } from "vitest";
import { DomainError } from "../../src/domain/errors.js";
import { fingerprintOf } from "../../src/domain/fingerprint.js";
import * as m from "../../src/domain/rollout-machine.js";
import type { Rollout, Stage } from "../../src/domain/rollout.js";
import { rolloutFixture, specFixture } from "../helpers/rollouts.js";

const T0 = Date.UTC(2026, 0, 1);
const op = (now = T0 + 1000) => ({ name: "op", now });

function expectRefused(f: () => unknown, kind: DomainError["kind"], ...parts: string[]): DomainError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(DomainError);
    const d = e as DomainError;
    expect(d.kind).toBe(kind);
    for (const p of parts) expect(d.message).toContain(p);
    return d;
  }
  throw new Error("expected a refusal");
}

function inStage(stage: Stage): Rollout {
  const r = rolloutFixture();
  switch (stage) {
    case "canary":
      return r;
    case "staging":
      return m.promote(r, "staging", op()).rollout;
    case "production":
      return m.promote(r, "production", op()).rollout;
    case "rolled_back":
      return m.rollback(r, op()).rollout;
    case "halted":
      return m.halt(r, op()).rollout;
  }
}

describe("createRollout", () => {
  it("starts CANARY at the first step with version 1 and the config fingerprint", () => {
    const r = rolloutFixture();
    expect(r).toMatchObject({ stage: "canary", currentStep: 0, weightBp: 500, paused: false, version: 1, createdBy: "tester" });
    expect(r.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(r.fingerprint).toBe(fingerprintOf(specFixture()));
  });
});

describe("promote", () => {
  it("walks every step and then to PRODUCTION, where the canary becomes stable", () => {
    let r = rolloutFixture();
    const weights = [r.weightBp];
    for (let i = 0; i < 3; i++) {
      const t = m.promote(r, "next_step", op());
      expect(t.type).toBe("step_changed");
      r = t.rollout;
      weights.push(r.weightBp);
    }
    expect(weights).toEqual([500, 2500, 5000, 10000]);
    const done = m.promote(r, "next_step", op());
    expect(done.type).toBe("promoted");
    expect(done.rollout).toMatchObject({ stage: "production", stableVersion: "v2", canaryVersion: "v2", weightBp: 0 });
    expect(done.rollout.version).toBe(r.version + 1);
  });

  it("refuses illegal transitions with FAILED_PRECONDITION naming the allowed ones", () => {
    const e = expectRefused(() => m.promote(inStage("rolled_back"), "staging", op()), "failed_precondition", "ROLLED_BACK", "allowed:", "HALTED");
    expect(e.details.allowed).toContain("HALTED");
    expectRefused(() => m.promote(inStage("production"), "next_step", op()), "failed_precondition", "PRODUCTION");
    expectRefused(() => m.promote(inStage("staging"), "staging", op()), "failed_precondition", "allowed: PRODUCTION, ROLLED_BACK, HALTED");
    expectRefused(() => m.promote(inStage("halted"), "production", op()), "failed_precondition", "HALTED");
  });
});

describe("the transition table of docs/design.md §3", () => {
  const ops: Record<string, (r: Rollout) => m.Transition> = {
    next_step: (r) => m.promote(r, "next_step", op()),
    staging: (r) => m.promote(r, "staging", op()),
    production: (r) => m.promote(r, "production", op()),
    rollback: (r) => m.rollback(r, op()),
    halt: (r) => m.halt(r, op()),
  };
  const allowed: Record<Stage, string[]> = {
    canary: ["next_step", "staging", "production", "rollback", "halt"],
    staging: ["next_step", "production", "rollback", "halt"],
    production: [],
    rolled_back: ["halt"],
    halted: ["rollback", "halt"],
  };
  for (const stage of Object.keys(allowed) as Stage[]) {
    for (const [name, f] of Object.entries(ops)) {
      it(`${stage} → ${name}: ${allowed[stage].includes(name) ? "allowed" : "refused"}`, () => {
        const r = inStage(stage);
        if (allowed[stage].includes(name)) expect(() => f(r)).not.toThrow();
        else expectRefused(() => f(r), "failed_precondition", "allowed:");
      });
    }
  }
});

describe("rollback, halt and resume", () => {
  it("rolls back to weight 0 and restarts only after the cooldown", () => {
    const r = m.rollback(m.promote(rolloutFixture(), "next_step", op()).rollout, op(T0 + 1000)).rollout;
    expect(r).toMatchObject({ stage: "rolled_back", weightBp: 0, rolledBackAt: T0 + 1000 });
    expectRefused(() => m.resume(r, op(T0 + 1000 + 29 * 60_000), ""), "failed_precondition", "cooldown");
    const again = m.resume(r, op(T0 + 1000 + 30 * 60_000), "").rollout;
    expect(again).toMatchObject({ stage: "canary", currentStep: 0, weightBp: 500 });
  });

  it("halts at once and resumes at the same step only with a reason", () => {
    const r = m.promote(rolloutFixture(), "next_step", op()).rollout;
    const h = m.halt(r, op()).rollout;
    expect(h).toMatchObject({ stage: "halted", weightBp: 0, currentStep: 1 });
    expectRefused(() => m.resume(h, op(), ""), "invalid_argument", "reason");
    expect(m.resume(h, op(), "fixed the db").rollout).toMatchObject({ stage: "canary", currentStep: 1, weightBp: 2500 });
  });

  it("keeps 24 h of automatic rollbacks", () => {
    let r = rolloutFixture();
    r = { ...r, autoRollbacks: [T0 - 25 * 3_600_000, T0 - 3_600_000] };
    const t = m.rollback(r, op(T0), true).rollout;
    expect(t.autoRollbacks).toEqual([T0 - 3_600_000, T0]);
    expect(m.rollback(r, op(T0), false).rollout.autoRollbacks).toEqual([T0 - 3_600_000]);
  });

  it("refuses to resume what is neither paused, halted nor rolled back", () => {
    expectRefused(() => m.resume(rolloutFixture(), op(), ""), "failed_precondition", "nothing to resume");
  });
});

describe("pause, weights, step back and scale down", () => {
  it("pauses and unpauses, idempotently", () => {
    const p = m.pause(rolloutFixture(), op());
    expect(p.rollout.paused).toBe(true);
    expect(m.pause(p.rollout, op()).unchanged).toBe(true);
    expect(m.resume(p.rollout, op(), "").rollout.paused).toBe(false);
    expectRefused(() => m.pause(inStage("production"), op()), "failed_precondition");
  });

  it("sets any weight 0..10000 in CANARY only", () => {
    expect(m.setWeight(rolloutFixture(), 0, op()).rollout.weightBp).toBe(0);
    expect(m.setWeight(rolloutFixture(), 7777, op()).rollout.weightBp).toBe(7777);
    expect(m.setWeight(rolloutFixture(), 500, op()).unchanged).toBe(true);
    expectRefused(() => m.setWeight(inStage("staging"), 100, op()), "failed_precondition");
  });

  it("steps back to the first step and scales down by half, not below it", () => {
    let r = m.promote(m.promote(rolloutFixture(), "next_step", op()).rollout, "next_step", op()).rollout;
    expect(r.weightBp).toBe(5000);
    expect(m.stepBack(r, op()).rollout).toMatchObject({ currentStep: 0, weightBp: 500 });
    r = m.scaleDown(r, op()).rollout;
    expect(r).toMatchObject({ weightBp: 2500, currentStep: 1 });
    r = m.scaleDown(m.scaleDown(m.scaleDown(r, op()).rollout, op()).rollout, op()).rollout;
    expect(r).toMatchObject({ weightBp: 500, currentStep: 0 });
  });
});

describe("updateSpec", () => {
  it("bumps the version and fingerprint on a change and nothing otherwise", () => {
    const r = rolloutFixture();
    expect(m.updateSpec(r, specFixture(), op()).unchanged).toBe(true);
    const t = m.updateSpec(r, specFixture({ salt: "reshuffle" }), op());
    expect(t.summary).toContain("salt");
    expect(t.rollout.version).toBe(2);
    expect(t.rollout.fingerprint).not.toBe(r.fingerprint);
  });

  it("restarts at the first step on a new canary version, but keeps a halted rollout halted", () => {
    const r = m.promote(rolloutFixture(), "next_step", op()).rollout;
    expect(m.updateSpec(r, specFixture({ canaryVersion: "v3" }), op()).rollout).toMatchObject({ stage: "canary", currentStep: 0, weightBp: 500 });
    const prod = m.promote(r, "production", op()).rollout;
    expect(m.updateSpec(prod, specFixture({ stableVersion: "v2", canaryVersion: "v3" }), op()).rollout).toMatchObject({
      stage: "canary",
      stableVersion: "v2",
      canaryVersion: "v3",
      weightBp: 500,
    });
    const halted = m.halt(r, op()).rollout;
    expect(m.updateSpec(halted, specFixture({ canaryVersion: "v3" }), op()).rollout).toMatchObject({ stage: "halted", currentStep: 0, weightBp: 0 });
  });

  it("refuses to rename", () => {
    expectRefused(() => m.updateSpec(rolloutFixture(), specFixture({ name: "other" }), op()), "invalid_argument", "rollout.name");
  });
});

describe("features and overrides", () => {
  it("records changes and ignores no-ops", () => {
    const r = m.setFeature(rolloutFixture(), "x", true, op());
    expect(r.type).toBe("feature_changed");
    expect(m.setFeature(r.rollout, "x", true, op()).unchanged).toBe(true);
    const o = m.setOverride(r.rollout, "k", "canary", op());
    expect(o.rollout.overrides.get("k")).toBe("canary");
    expect(m.setOverride(o.rollout, "k", undefined, op()).rollout.overrides.has("k")).toBe(false);
  });
});
