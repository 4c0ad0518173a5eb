import { describe, expect, it } from "vitest";
import { analysisStateChanged, evaluate, initialAnalysisState, parseAnalysisState, type AnalysisState, type Evaluation } from "../../src/domain/analysis.js";
import { manualClock, type ManualClock } from "../../src/domain/clock.js";
import { consequence, startsAfresh } from "../../src/domain/decision.js";
import * as machine from "../../src/domain/rollout-machine.js";
import type { Analysis, Gate, Rollout, Step } from "../../src/domain/rollout.js";
import { aggregate, clear, createWindow, type SlidingWindow } from "../../src/domain/sliding-window.js";
import { T0, feed, gate, logNormal, mulberry32, rolloutWith, type Traffic } from "./fixtures.js";

const INTERVAL = 10_000;
const evaluator = { name: "evaluator" };

/** One simulated rollout: its windows, evaluator state and a manual clock. */
interface Sim {
  rollout: Rollout;
  readonly canary: SlidingWindow;
  readonly stable: SlidingWindow;
  state: AnalysisState;
  readonly clock: ManualClock;
  readonly rnd: () => number;
}

function sim(r: Rollout, seed = 1): Sim {
  return {
    rollout: r,
    canary: createWindow(r.analysis.windowMs, r.analysis.intervalMs),
    stable: createWindow(r.analysis.windowMs, r.analysis.intervalMs),
    state: initialAnalysisState(),
    clock: manualClock(r.stepStartedAt),
    rnd: mulberry32(seed),
  };
}

interface Load {
  /** With `errors`, exactly that many of the `n` outcomes fail (and errorRate is ignored). */
  readonly canary?: Traffic & { readonly n: number; readonly errors?: number };
  readonly stable?: Traffic & { readonly n: number };
}

const STABLE = { n: 2000, errorRate: 0.01 };
const HEALTHY: Load = { canary: { n: 200, errorRate: 0.01 }, stable: STABLE };

/** Lets one interval of traffic arrive, then evaluates (the state carries over; the decision is not applied). */
function tick(s: Sim, load: Load = HEALTHY): Evaluation {
  const from = s.clock.now();
  s.clock.advance(s.rollout.analysis.intervalMs);
  const to = s.clock.now();
  const c = load.canary;
  if (c !== undefined && c.errors !== undefined) {
    const mid = from + Math.floor(((to - from) * c.errors) / c.n);
    feed(s.canary, c.errors, { ...c, errorRate: 1 }, from, mid, s.rnd);
    feed(s.canary, c.n - c.errors, { ...c, errorRate: 0 }, mid, to, s.rnd);
  } else if (c !== undefined && c.n > 0) {
    feed(s.canary, c.n, c, from, to, s.rnd);
  }
  if (load.stable !== undefined && load.stable.n > 0) feed(s.stable, load.stable.n, load.stable, from, to, s.rnd);
  const ev = evaluate({ rollout: s.rollout, canary: aggregate(s.canary, to), stable: aggregate(s.stable, to), state: s.state, now: to });
  s.state = ev.state;
  return ev;
}

/** Applies what an evaluation causes (decision.ts), with the evidence reset the engine applies with it. */
function apply(s: Sim, ev: Evaluation): void {
  const { transition } = consequence(s.rollout, ev, { ...evaluator, now: s.clock.now() });
  if (transition === undefined) return;
  const prev = s.rollout;
  s.rollout = transition.rollout;
  if (startsAfresh(prev, s.rollout)) {
    clear(s.canary);
    s.state = initialAnalysisState();
  }
}

const errors = (more: Partial<Gate> = {}, check: Partial<{ max: number; maxRatio: number; confidence: number }> = { max: 0.05 }): Gate => ({
  ...gate("errors", { kind: "error_rate", ...check }),
  ...more,
});

function canaryWith(o: { gates?: Gate[]; analysis?: Partial<Analysis>; steps?: Step[]; state?: Partial<Rollout> } = {}): Rollout {
  return rolloutWith({ gates: o.gates ?? [errors()], analysis: { intervalMs: INTERVAL, ...o.analysis }, ...(o.steps ? { steps: o.steps } : {}), ...(o.state ? { state: o.state } : {}) });
}

const BAD: Load = { canary: { n: 200, errorRate: 0.3 }, stable: { n: 2000, errorRate: 0.01 } };

describe("breaches act after consecutive_breaches failed evaluations", () => {
  for (const n of [1, 2, 3]) {
    it(`a canary with 30% errors is rolled back at evaluation ${n} of consecutive_breaches ${n}, not before`, () => {
      const s = sim(canaryWith({ analysis: { consecutiveBreaches: n } }));
      const decisions: string[] = [];
      let last: Evaluation | undefined;
      for (let i = 0; i < n; i++) {
        last = tick(s, BAD);
        decisions.push(last.decision);
      }
      expect(decisions).toEqual([...Array<string>(n - 1).fill("continue"), "rollback"]);
      const ev = last as Evaluation;
      expect(ev.triggeredBy).toEqual(["errors"]);
      expect(ev.reason).toMatch(new RegExp(`^errors: canary error rate 0\\.\\d+ > max 0\\.05 for ${n} consecutive evaluations?$`));
      expect(ev.health.recommendation).toBe("rollback");
      expect(ev.health.gates[0]?.consecutiveBreaches).toBe(n);
      // The count starts afresh after acting.
      expect(ev.state.gates[0]?.consecutive).toBe(0);
    });
  }

  it("records a new breach once, when the gate starts failing", () => {
    const s = sim(canaryWith({ analysis: { consecutiveBreaches: 3 } }));
    expect(tick(s, BAD).newBreaches).toEqual(["errors"]);
    const second = tick(s, BAD);
    expect(second.newBreaches).toEqual([]);
    expect(second.health.nextAction).toBe("rollback");
    expect(second.health.nextActionAt).toBe(s.clock.now() + INTERVAL);
    expect(second.reason).toContain("(2 of 3 consecutive)");
    tick(s, HEALTHY);
    expect(tick(s, BAD).newBreaches).toEqual([]); // still failing over the window: 30% errors linger
  });

  it("a passing evaluation resets the count; an inconclusive one leaves it", () => {
    const s = sim(canaryWith({ analysis: { windowMs: INTERVAL, consecutiveBreaches: 2 } }));
    expect(tick(s, BAD).decision).toBe("continue");
    expect(tick(s, { canary: { n: 10, errorRate: 0.5 } }).health.gates[0]?.verdict).toBe("inconclusive");
    expect(s.state.gates[0]?.consecutive).toBe(1);
    expect(tick(s, BAD).decision).toBe("rollback");
    const t = sim(canaryWith({ analysis: { windowMs: INTERVAL, consecutiveBreaches: 2 } }));
    tick(t, BAD);
    tick(t, HEALTHY);
    expect(t.state.gates[0]?.consecutive).toBe(0);
    expect(tick(t, BAD).decision).toBe("continue");
  });

  it("max_breach_rate catches a flapping gate that never fails twice in a row", () => {
    // 20 errors in every other interval of 200: over a 3-interval window the error rate is
    // 10%, 5%, 6.7%, 3.3%, 6.7% against max 5%: fail, pass (warn), fail, pass, fail.
    const loads: Load[] = [0, 1, 2, 3, 4].map((i) => ({ canary: { n: 200, errorRate: 0, errors: i % 2 === 0 ? 20 : 0 } }));
    const flapping = (s: Sim) => loads.map((load) => tick(s, load));
    const plain = flapping(sim(canaryWith({ analysis: { windowMs: 3 * INTERVAL, consecutiveBreaches: 2 } })));
    expect(plain.map((e) => e.gates[0]?.verdict)).toEqual(["fail", "warn", "fail", "pass", "fail"]);
    expect(plain.map((e) => e.decision)).toEqual(["continue", "continue", "continue", "continue", "continue"]);
    const rated = flapping(sim(canaryWith({ analysis: { windowMs: 3 * INTERVAL, consecutiveBreaches: 2, maxBreachRate: 0.5 } })));
    // Fail, pass, fail: 2 of the window's 3 evaluations (> 50%), and 2 failures.
    expect(rated.map((e) => e.decision).slice(0, 3)).toEqual(["continue", "continue", "rollback"]);
    expect(rated[2]?.reason).toMatch(/^errors: canary error rate 0\.0667 > max 0\.05, failing in 2 of 3 evaluations in the window \(> max_breach_rate 0\.5\)$/);
  });
});

describe("a healthy canary with auto_promote", () => {
  it("climbs every step, each after its min_duration and min_samples, then goes to production", () => {
    const steps: Step[] = [
      { weightBp: 500, minDurationMs: 60_000, minSamples: 300 },
      { weightBp: 2500, minDurationMs: 60_000, minSamples: 300 },
      { weightBp: 5000, minDurationMs: 30_000, minSamples: 300 },
      { weightBp: 10_000, minDurationMs: 30_000, minSamples: 300 },
    ];
    const s = sim(canaryWith({ steps, gates: [errors({}, { maxRatio: 1.5, confidence: 0.95 }), gate("p99", { kind: "latency", quantile: 0.99, maxRatio: 1.5 })], analysis: { autoPromote: true, windowMs: 60_000 } }));
    const load: Load = { canary: { n: 200, errorRate: 0.01, latency: logNormal(30, 0.5) }, stable: { n: 2000, errorRate: 0.01, latency: logNormal(30, 0.5) } };
    const promotions: { step: number; after: number }[] = [];
    for (let i = 0; i < 100 && s.rollout.stage === "canary"; i++) {
      const stepStart = s.rollout.stepStartedAt;
      const ev = tick(s, load);
      expect(["continue", "promote"]).toContain(ev.decision);
      if (ev.decision === "promote") {
        promotions.push({ step: s.rollout.currentStep, after: s.clock.now() - stepStart });
        expect(ev.reason).toMatch(/^all 2 gates pass; step \d held/);
      } else if (ev.health.nextAction === "promote") {
        expect(ev.health.nextActionAt).toBeGreaterThan(s.clock.now());
      }
      apply(s, ev);
    }
    expect(promotions.map((p) => p.step)).toEqual([0, 1, 2, 3]);
    for (const p of promotions) expect(p.after).toBeGreaterThanOrEqual(steps[p.step]?.minDurationMs ?? 0);
    expect(s.rollout.stage).toBe("production");
  });

  it("does not promote while a gate lacks samples, nor during the grace period, nor in STAGING", () => {
    const steps: Step[] = [{ weightBp: 500, minDurationMs: 0, minSamples: 0 }, { weightBp: 10_000, minDurationMs: 0, minSamples: 0 }];
    const thin = sim(canaryWith({ steps, analysis: { autoPromote: true } }));
    const ev = tick(thin, { canary: { n: 20, errorRate: 0 }, stable: { n: 200, errorRate: 0 } });
    expect(ev.decision).toBe("continue");
    expect(ev.reason).toContain("waiting for samples: errors: canary error rate: 20 of 100 samples needed");
    expect(ev.health.recommendation).toBe("monitor");

    const graced = sim(canaryWith({ steps, analysis: { autoPromote: true, gracePeriodMs: 30_000 } }));
    expect([tick(graced).decision, tick(graced).decision, tick(graced).decision]).toEqual(["continue", "continue", "promote"]);

    const staging = sim(canaryWith({ steps, analysis: { autoPromote: true }, state: { stage: "staging", weightBp: 10_000 } }));
    expect(tick(staging).decision).toBe("continue");
  });
});

describe("invariant gates act at once", () => {
  const ledger = (onBreach: Gate["onBreach"]) => gate("ledger", { kind: "invariant", max: 0 }, { onBreach });
  const violating: Load = { canary: { n: 200, errorRate: 0, invariantViolations: 1 }, stable: { n: 2000, errorRate: 0 } };

  it("HALT: emergency stop at the first violation, even in the grace period", () => {
    const s = sim(canaryWith({ gates: [errors(), ledger("halt")], analysis: { gracePeriodMs: 60_000, consecutiveBreaches: 5 } }));
    const ev = tick(s, violating);
    expect(ev.decision).toBe("emergency_stop");
    expect(ev.triggeredBy).toEqual(["ledger"]);
    expect(ev.newBreaches).toEqual(["ledger"]);
    expect(ev.reason).toBe("ledger: canary invariant violations 200 > max 0 (invariant gates act at once, even in the grace period)");
  });

  it("ROLLBACK: rollback at the first violation", () => {
    const s = sim(canaryWith({ gates: [ledger("rollback")] }));
    expect(tick(s, violating).decision).toBe("rollback");
  });

  it("a single violation among few samples still fails", () => {
    const s = sim(canaryWith({ gates: [ledger("rollback")] }));
    expect(tick(s, { canary: { n: 1, errorRate: 0, invariantViolations: 1 } }).decision).toBe("rollback");
  });
});

describe("latency regressions", () => {
  const p99 = gate("p99", { kind: "latency", quantile: 0.99, maxRatio: 1.5 });
  // Enough samples that a p99 10% past the bound is not lost in sampling noise.
  const stableLatency = { n: 20_000, errorRate: 0, latency: logNormal(30, 0.6) };

  it("a +60% p99 regression is caught by max_ratio 1.5", () => {
    const s = sim(canaryWith({ gates: [p99] }));
    const load: Load = { canary: { n: 3000, errorRate: 0, latency: logNormal(48, 0.6) }, stable: stableLatency };
    const evals = Array.from({ length: 6 }, () => tick(s, load));
    const at = evals.findIndex((e) => e.decision === "rollback");
    expect(at).toBeGreaterThanOrEqual(1);
    expect(at).toBeLessThanOrEqual(4);
    expect(evals[at]?.reason).toMatch(/^p99: canary p99 latency \d+ ms > stable \d+ ms × 1\.5 = \d+ ms for 2 consecutive evaluations$/);
    const observed = evals[at]?.gates[0];
    expect((observed?.observed ?? 0) / (observed?.baseline ?? 1)).toBeGreaterThan(1.5);
  });

  it("the same canary without the regression passes", () => {
    const s = sim(canaryWith({ gates: [p99] }));
    const load: Load = { canary: { n: 3000, errorRate: 0, latency: logNormal(30, 0.6) }, stable: stableLatency };
    for (let i = 0; i < 10; i++) expect(tick(s, load).decision).toBe("continue");
  });
});

describe("false rollbacks", () => {
  it("200 healthy canaries at 500 samples per interval with a 95%-confidence error-rate gate: at most 2 rolled back", () => {
    let rolledBack = 0;
    for (let k = 0; k < 200; k++) {
      const s = sim(canaryWith({ gates: [errors({ minSamples: 500 }, { maxRatio: 1.5, confidence: 0.95 })], analysis: { windowMs: 60_000 } }), 1000 + k);
      for (let i = 0; i < 20; i++) {
        if (tick(s, { canary: { n: 500, errorRate: 0.01 }, stable: { n: 4500, errorRate: 0.01 } }).decision === "rollback") {
          rolledBack++;
          break;
        }
      }
    }
    console.log(`healthy canaries rolled back: ${rolledBack} of 200`);
    expect(rolledBack).toBeLessThanOrEqual(2);
  });
});

describe("safety limits", () => {
  it("the daily limit turns the 6th automatic rollback in 24 h into an emergency stop", () => {
    const s = sim(canaryWith({ analysis: { cooldownMs: 60_000, consecutiveBreaches: 1 } }));
    const decisions: string[] = [];
    for (let round = 0; round < 6; round++) {
      const ev = tick(s, BAD);
      decisions.push(ev.decision);
      if (ev.decision === "emergency_stop") expect(ev.reason).toContain("5 automatic rollbacks in the last 24 h already (max_auto_rollbacks_per_day 5): halting instead");
      apply(s, ev);
      // The operator restarts it after the cooldown; it fails again.
      s.clock.advance(60_000);
      if (s.rollout.stage === "rolled_back") s.rollout = machine.resume(s.rollout, { name: "op", now: s.clock.now() }, "retry").rollout;
    }
    expect(decisions).toEqual(["rollback", "rollback", "rollback", "rollback", "rollback", "emergency_stop"]);
    expect(s.rollout.stage).toBe("halted");
  });

  it("rollbacks older than 24 h do not count", () => {
    const now = T0 + 10 * INTERVAL;
    const old = Array.from({ length: 5 }, (_, i) => now - 25 * 3_600_000 + i);
    const s = sim(canaryWith({ analysis: { consecutiveBreaches: 1 }, state: { autoRollbacks: old } }));
    expect(tick(s, BAD).decision).toBe("rollback");
  });

  it("auto_rollback off: breaches are reported and held, not acted on", () => {
    const s = sim(canaryWith({ analysis: { autoRollback: false, consecutiveBreaches: 1 } }));
    const ev = tick(s, BAD);
    expect(ev.decision).toBe("hold");
    expect(ev.pause).toBe(false);
    expect(ev.triggeredBy).toEqual(["errors"]);
    expect(ev.reason).toMatch(/^auto_rollback is off, holding instead of rollback: errors: /);
  });

  it("when several gates act, the most severe action wins", () => {
    const gates = [errors({ onBreach: "scale_down" }), gate("p99", { kind: "latency", quantile: 0.99, maxMs: 5 }, { onBreach: "halt" }), gate("ok", { kind: "success_rate", min: 0.9 }, { onBreach: "notify" })];
    const s = sim(canaryWith({ gates, analysis: { consecutiveBreaches: 1 } }));
    const ev = tick(s, BAD);
    expect(ev.decision).toBe("emergency_stop");
    expect(ev.triggeredBy).toEqual(["errors", "p99", "ok"]);
  });

  it("NOTIFY records the breach and changes nothing", () => {
    const s = sim(canaryWith({ gates: [errors({ onBreach: "notify" })], analysis: { consecutiveBreaches: 1 } }));
    const ev = tick(s, BAD);
    expect(ev.decision).toBe("continue");
    expect(ev.triggeredBy).toEqual(["errors"]);
    expect(ev.newBreaches).toEqual(["errors"]);
    expect(ev.reason).toContain("(notify only)");
  });

  it("HOLD pauses, once", () => {
    const s = sim(canaryWith({ gates: [errors({ onBreach: "hold" })], analysis: { consecutiveBreaches: 1 } }));
    const ev = tick(s, BAD);
    expect(ev).toMatchObject({ decision: "hold", pause: true });
    apply(s, ev);
    expect(s.rollout.paused).toBe(true);
    expect(tick(s, BAD)).toMatchObject({ decision: "hold", pause: false });
  });

  it("STEP_BACK and SCALE_DOWN move a CANARY down and roll back a STAGING rollout", () => {
    const at2 = { currentStep: 2, weightBp: 5000 };
    const back = sim(canaryWith({ gates: [errors({ onBreach: "step_back" })], analysis: { consecutiveBreaches: 1 }, state: at2 }));
    const ev = tick(back, BAD);
    expect(ev.decision).toBe("step_back");
    apply(back, ev);
    expect(back.rollout).toMatchObject({ currentStep: 0, weightBp: 500 });
    const down = sim(canaryWith({ gates: [errors({ onBreach: "scale_down" })], analysis: { consecutiveBreaches: 1 }, state: at2 }));
    apply(down, tick(down, BAD));
    expect(down.rollout.weightBp).toBe(2500);
    const staging = sim(canaryWith({ gates: [errors({ onBreach: "step_back" })], analysis: { consecutiveBreaches: 1 }, state: { stage: "staging", weightBp: 10_000 } }));
    const sev = tick(staging, BAD);
    expect(sev.decision).toBe("rollback");
    expect(sev.reason).toMatch(/^STAGING has no smaller step, rolling back instead of step_back/);
  });
});

describe("paused rollouts", () => {
  it("make no automatic step changes, but still roll back", () => {
    const paused = { paused: true, currentStep: 1, weightBp: 2500 };
    const back = sim(canaryWith({ gates: [errors({ onBreach: "step_back" })], analysis: { consecutiveBreaches: 1 }, state: paused }));
    const ev = tick(back, BAD);
    expect(ev).toMatchObject({ decision: "hold", pause: false });
    expect(ev.reason).toMatch(/^paused, holding instead of step_back/);
    const rb = sim(canaryWith({ analysis: { consecutiveBreaches: 1 }, state: paused }));
    expect(tick(rb, BAD).decision).toBe("rollback");
    const promo = sim(canaryWith({ analysis: { autoPromote: true }, state: paused }));
    for (let i = 0; i < 5; i++) {
      const e = tick(promo);
      expect(e.decision).toBe("continue");
      expect(e.health.nextAction).not.toBe("promote");
    }
  });
});

describe("dry run", () => {
  it("computes the decision, marks it dry, and repeats it every consecutive_breaches evaluations while failing", () => {
    const s = sim(canaryWith({ analysis: { dryRun: true, consecutiveBreaches: 2 } }));
    const decisions = [1, 2, 3, 4].map(() => {
      const ev = tick(s, BAD);
      expect(ev.dryRun).toBe(true);
      apply(s, ev);
      return ev.decision;
    });
    expect(decisions).toEqual(["continue", "rollback", "continue", "rollback"]);
    expect(s.rollout.stage).toBe("canary");
    expect(tick(s, BAD).health.message).toMatch(/^failing: errors: canary error rate 0\.\d+ > max 0\.05 \(1 of 2 consecutive\)$/);
  });

  it("says in the health message that nothing was applied", () => {
    const s = sim(canaryWith({ analysis: { dryRun: true, consecutiveBreaches: 1 } }));
    const ev = tick(s, BAD);
    expect(ev.decision).toBe("rollback");
    expect(ev.health.message).toMatch(/^dry run, not applied: errors: /);
  });
});

describe("grace period", () => {
  it("reports verdicts but counts none until it is over", () => {
    const s = sim(canaryWith({ analysis: { gracePeriodMs: 30_000, consecutiveBreaches: 2 } }));
    const first = tick(s, BAD);
    expect(first.decision).toBe("continue");
    expect(first.gates[0]?.verdict).toBe("fail");
    expect(first.newBreaches).toEqual([]);
    expect(first.reason).toMatch(/^grace period \(20s left\), not counted: errors: /);
    expect(tick(s, BAD).decision).toBe("continue");
    expect(tick(s, BAD).decision).toBe("continue"); // 30 s: counted, 1 of 2
    expect(tick(s, BAD).decision).toBe("rollback");
  });

  it("starts again at every step change", () => {
    const s = sim(canaryWith({ analysis: { consecutiveBreaches: 2, gracePeriodMs: 20_000 } }));
    tick(s, HEALTHY);
    tick(s, BAD);
    expect(s.state.gates[0]?.consecutive).toBe(1);
    s.rollout = machine.promote(s.rollout, "next_step", { name: "op", now: s.clock.now() }).rollout;
    const ev = tick(s, BAD);
    expect(ev.reason).toMatch(/^grace period/);
    expect(ev.state.gates[0]?.consecutive).toBe(0);
  });
});

describe("no-data timeout", () => {
  it("holds and pauses a canary that stops reporting", () => {
    const s = sim(canaryWith({ analysis: { noDataTimeoutMs: 60_000, windowMs: 30_000 } }));
    tick(s);
    const decisions: string[] = [];
    let ev: Evaluation | undefined;
    for (let i = 0; i < 8; i++) {
      ev = tick(s, { stable: STABLE });
      decisions.push(ev.decision);
      if (i === 0) {
        expect(ev.health.nextAction).toBe("hold");
        // 60 s after the last outcome, which arrived at 9.95 s.
        expect(ev.health.nextActionAt).toBe(T0 + 9_950 + 60_000);
      }
      if (ev.decision === "hold") break;
    }
    // The last outcome came at 10 s (its bucket expired at ~40 s); the hold comes at 70 s.
    expect(decisions).toEqual(["continue", "continue", "continue", "continue", "continue", "hold"]);
    expect(ev?.pause).toBe(true);
    expect(ev?.reason).toBe("no canary outcomes for 60.1s (no_data_timeout 1m)");
  });

  it("rolls back instead when on_no_data is ROLLBACK, and ignores a canary at weight 0", () => {
    const s = sim(canaryWith({ analysis: { noDataTimeoutMs: 30_000, onNoData: "rollback" } }));
    const decisions = [1, 2, 3].map(() => tick(s, {}).decision);
    expect(decisions).toEqual(["continue", "continue", "rollback"]);
    const zero = sim(canaryWith({ analysis: { noDataTimeoutMs: 30_000 }, state: { weightBp: 0 } }));
    expect([1, 2, 3, 4].map(() => tick(zero, {}).decision)).not.toContain("hold");
  });

  it("survives a restart: the last outcome time is part of the state", () => {
    const s = sim(canaryWith({ analysis: { noDataTimeoutMs: 120_000, windowMs: 30_000 } }));
    tick(s);
    const restarted: Sim = { ...s, state: parseAnalysisState(JSON.stringify(s.state)), canary: createWindow(30_000, INTERVAL) };
    const decisions = Array.from({ length: 12 }, () => tick(restarted, { stable: STABLE }).decision);
    expect(decisions.indexOf("hold")).toBe(11); // 10 s + 120 s
  });
});

describe("stages that do not act", () => {
  it("PRODUCTION continues, ROLLED_BACK and HALTED hold without pausing; all get their health", () => {
    for (const [stage, decision] of [["production", "continue"], ["rolled_back", "hold"], ["halted", "hold"]] as const) {
      const s = sim(canaryWith({ analysis: { consecutiveBreaches: 1 }, state: { stage } }));
      const ev = tick(s, BAD);
      expect(ev).toMatchObject({ decision, pause: false, triggeredBy: [], newBreaches: [] });
      expect(ev.health.stage).toBe(stage);
      expect(ev.health.gates[0]?.verdict).toBe("fail");
    }
  });
});

describe("health", () => {
  it("describes the rollout: samples, step, version and the next action", () => {
    const s = sim(canaryWith({ gates: [errors(), gate("p99", { kind: "latency", quantile: 0.99, maxMs: 1000 })] }));
    const ev = tick(s);
    expect(ev.health).toMatchObject({
      rollout: "checkout",
      score: 1,
      recommendation: "healthy",
      consecutiveBreaches: 0,
      samples: { canary: 200, stable: 2000 },
      stage: "canary",
      weightBp: 500,
      currentStep: 0,
      paused: false,
      nextAction: "continue",
      evaluatedAt: s.clock.now(),
      rolloutVersion: 1,
      message: "all 2 gates pass",
    });
    expect(ev.health.gates.map((g) => g.name)).toEqual(["errors", "p99"]);
  });
});

describe("analysis state", () => {
  it("is plain JSON that parses back to the same state, and garbage parses to the initial state", () => {
    const s = sim(canaryWith({ analysis: { maxBreachRate: 0.5 } }));
    tick(s, BAD);
    const text = JSON.stringify(s.state);
    expect(parseAnalysisState(text)).toEqual(s.state);
    expect(parseAnalysisState("{")).toEqual(initialAnalysisState());
    expect(parseAnalysisState('{"version":2}')).toEqual(initialAnalysisState());
    expect(parseAnalysisState('{"version":1,"step":"x","gates":[{"name":1}]}')).toEqual(initialAnalysisState());
  });

  it("forgets gates that were removed from the rollout", () => {
    const s = sim(canaryWith({ gates: [errors(), gate("p99", { kind: "latency", quantile: 0.99, maxMs: 1 })] }));
    tick(s, BAD);
    s.rollout = { ...s.rollout, gates: [errors()] };
    expect(tick(s, BAD).state.gates.map((g) => g.name)).toEqual(["errors"]);
  });

  it("is not fooled by a gate named like an Object property", () => {
    const s = sim(canaryWith({ gates: [{ ...errors(), name: "constructor" }], analysis: { consecutiveBreaches: 2 } }));
    s.state = parseAnalysisState(JSON.stringify(s.state));
    expect(tick(s, BAD).decision).toBe("continue");
    expect(tick(s, BAD).decision).toBe("rollback");
  });
});

describe("analysisStateChanged", () => {
  const base: AnalysisState = {
    version: 1,
    step: "canary/0/500/1000",
    gates: [{ name: "errors", consecutive: 1, lastVerdict: "fail", recent: [[10, 1], [20, 0]] }],
    lastEvaluatedAt: 20,
    lastCanaryOutcomeAt: 19,
  };
  it("ignores the evaluation time alone", () => {
    expect(analysisStateChanged(base, { ...base, lastEvaluatedAt: 30 })).toBe(false);
    expect(analysisStateChanged(base, structuredClone(base))).toBe(false);
  });
  it("sees every other difference", () => {
    const g = base.gates[0]!;
    const variants: AnalysisState[] = [
      { ...base, step: "canary/1/2500/2000" },
      { ...base, lastCanaryOutcomeAt: 25 },
      { version: 1, step: base.step, gates: base.gates, lastCanaryOutcomeAt: 19 },
      initialAnalysisState(),
      { ...base, gates: [] },
      { ...base, gates: [{ ...g, name: "p99" }] },
      { ...base, gates: [{ ...g, consecutive: 2 }] },
      { ...base, gates: [{ ...g, lastVerdict: "pass" }] },
      { ...base, gates: [{ ...g, recent: [[10, 1]] }] },
      { ...base, gates: [{ ...g, recent: [[10, 1], [30, 0]] }] },
      { ...base, gates: [{ ...g, recent: [[10, 1], [20, 1]] }] },
    ];
    for (const v of variants) expect(analysisStateChanged(base, v)).toBe(true);
  });
});
