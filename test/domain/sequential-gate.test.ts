import { describe, expect, it } from "vitest";
import { evaluate, initialAnalysisState, parseAnalysisState, type AnalysisState, type Evaluation } from "../../src/domain/analysis.js";
import type { Rollout } from "../../src/domain/rollout.js";
import { foldDispersion, rateVariation, type DispersionState } from "../../src/domain/sequential-gate.js";
import { aggregate, createWindow, type SlidingWindow } from "../../src/domain/sliding-window.js";
import { T0, feed, gate, mulberry32, rolloutWith } from "./fixtures.js";

const I = 10_000;

interface Sim {
  rollout: Rollout;
  canary: SlidingWindow;
  stable: SlidingWindow;
  state: AnalysisState;
  t: number;
}

function sim(more: { consecutiveBreaches?: number; steps?: Rollout["steps"] } = {}): Sim {
  const rollout = rolloutWith({
    gates: [gate("errors", { kind: "error_rate", maxRatio: 1, confidence: 0.99 })],
    analysis: { windowMs: 10 * I, intervalMs: I, consecutiveBreaches: more.consecutiveBreaches ?? 2 },
    ...(more.steps === undefined ? {} : { steps: more.steps }),
  });
  return { rollout, canary: createWindow(10 * I, I), stable: createWindow(10 * I, I), state: initialAnalysisState(), t: T0 };
}

/** Records one interval of traffic and evaluates at its end. */
function step(s: Sim, canaryRate: number, rnd: () => number, canaryN = 100, stableN = 1900): Evaluation {
  feed(s.canary, canaryN, { errorRate: canaryRate }, s.t, s.t + I, rnd);
  feed(s.stable, stableN, { errorRate: 0.01 }, s.t, s.t + I, rnd);
  s.t += I;
  const ev = evaluate({ rollout: s.rollout, canary: aggregate(s.canary, s.t), stable: aggregate(s.stable, s.t), state: s.state, now: s.t });
  s.state = ev.state;
  return ev;
}

describe("sequential error-rate gates in the evaluator", () => {
  it("a boundary crossing rolls back at once, whatever consecutive_breaches, and says which look crossed", () => {
    const s = sim({ consecutiveBreaches: 5 });
    const rnd = mulberry32(1);
    // A brand-new rollout: the stable has no history, and no look can cross before two pairs of its intervals (MIN_PAIRS): looks 1 and 2 only warn.
    for (let k = 1; k <= 2; k++) {
      const ev = step(s, 0.3, rnd);
      expect(ev.decision).not.toBe("rollback");
      expect(ev.gates[0]!.verdict).toBe("warn");
      expect(ev.gates[0]!.sequential).toMatchObject({ look: k, crossed: false, boundary: -1 });
    }
    const ev = step(s, 0.3, rnd);
    expect(ev.decision).toBe("rollback");
    expect(ev.reason).toMatch(/^errors: canary error rate 0\.\d+ > stable 0\.\d+ × 1 = 0\.\d+ over 300 canary outcomes since the canary started, worse with 99% confidence: sequential test look 3 of 20: canary errors \d+ >= boundary \d+/);
    expect(ev.gates[0]!.sequential).toMatchObject({ look: 3, crossed: true, bound: "max_ratio" });
  });

  it("an absolute max with no stable traffic (100% canary weight) is not held for pairs that never come", () => {
    const rollout = rolloutWith({
      gates: [gate("errors", { kind: "error_rate", max: 0.01, confidence: 0.99 })],
      analysis: { windowMs: 10 * I, intervalMs: I, consecutiveBreaches: 2 },
    });
    const s: Sim = { rollout, canary: createWindow(10 * I, I), stable: createWindow(10 * I, I), state: initialAnalysisState(), t: T0 };
    const rnd = mulberry32(11);
    let at = 0;
    for (let k = 1; k <= 6 && at === 0; k++) if (step(s, 0.2, rnd, 100, 0).decision === "rollback") at = k;
    expect(at).toBe(1);
    expect(s.state.sequential!.dispersion.pairs).toBe(0);
  });

  it("a healthy canary passes or warns, never fails, and its evidence grows look by look", () => {
    const s = sim();
    const rnd = mulberry32(2);
    let last = 0;
    for (let k = 1; k <= 10; k++) {
      const ev = step(s, 0.01, rnd);
      const g = ev.gates[0]!;
      expect(["pass", "warn"]).toContain(g.verdict);
      expect(g.sequential!.look).toBeGreaterThanOrEqual(last);
      expect(g.sequential!.spentShare).toBeLessThanOrEqual(1);
      last = g.sequential!.look;
    }
    expect(last).toBeGreaterThanOrEqual(9);
  });

  it("a preview between evaluations folds nothing twice: Health right after an evaluation shows the same look", () => {
    const s = sim();
    const rnd = mulberry32(3);
    for (let k = 0; k < 3; k++) step(s, 0.01, rnd);
    const again = evaluate({ rollout: s.rollout, canary: aggregate(s.canary, s.t + 1), stable: aggregate(s.stable, s.t + 1), state: s.state, now: s.t + 1 });
    expect(again.gates[0]!.sequential!.look).toBe(s.state.sequential!.gates[0]!.tests[0]!.test.looks);
    expect(again.state.sequential).toEqual(s.state.sequential);
  });

  it("its state survives a restart (JSON, version 2) and continues exactly as if none had happened", () => {
    const a = sim();
    const b = sim();
    const ra = mulberry32(4);
    const rb = mulberry32(4);
    for (let k = 0; k < 4; k++) {
      step(a, 0.02, ra);
      step(b, 0.02, rb);
    }
    const text = JSON.stringify(b.state);
    expect(JSON.parse(text).version).toBe(2);
    b.state = parseAnalysisState(text);
    expect(b.state).toEqual(a.state);
    for (let k = 0; k < 4; k++) expect(step(b, 0.02, rb).state).toEqual(step(a, 0.02, ra).state);
  });

  it("still reads a version-1 state (no sequential part) and starts the tests from it", () => {
    const v1 = parseAnalysisState(JSON.stringify({ version: 1, step: "canary/0/500/1", gates: [{ name: "errors", consecutive: 1, recent: [] }] }));
    expect(v1).toEqual({ version: 1, step: "canary/0/500/1", gates: [{ name: "errors", consecutive: 1, recent: [] }] });
    const s = sim();
    s.state = v1;
    const ev = step(s, 0.01, mulberry32(5));
    expect(ev.state.version).toBe(2);
    expect(ev.gates[0]!.sequential!.look).toBe(1);
    // A malformed sequential part starts the tests afresh and keeps the rest.
    const broken = parseAnalysisState(JSON.stringify({ ...ev.state, sequential: { canaryVersion: 3 } }));
    expect(broken.sequential).toBeUndefined();
    expect(broken.gates).toEqual(ev.state.gates);
  });

  it("a weight step carries the test (and its budget) over; a new canary version starts a new one", () => {
    const s = sim();
    const rnd = mulberry32(6);
    for (let k = 0; k < 3; k++) step(s, 0.01, rnd);
    const before = s.state.sequential!.gates[0]!.tests[0]!.test;
    s.rollout = { ...s.rollout, currentStep: 1, weightBp: 2500, stepStartedAt: s.t };
    s.t += I; // past the grace period: the interval in it is folded in without a look
    const ev = step(s, 0.01, rnd, 500, 1500);
    const after = ev.state.sequential!.gates[0]!.tests[0]!.test;
    expect(after.looks).toBe(before.looks + 1);
    expect(after.spent).toBeGreaterThanOrEqual(before.spent);
    s.rollout = { ...s.rollout, canaryVersion: "v3" };
    const fresh = step(s, 0.01, rnd, 500, 1500);
    expect(fresh.state.sequential!.canaryVersion).toBe("v3");
    expect(fresh.gates[0]!.sequential!.look).toBe(1);
  });
});

describe("the stable's history", () => {
  it("a new canary version's first look uses the stable window's earlier buckets for the rate variation, not as test data", () => {
    // The stable has run alone for 9 intervals with bursty errors (0.5% / 1.5% alternating) when canary v3 starts.
    const bursty = sim();
    const steady = sim();
    const rnd = mulberry32(8);
    for (let k = 0; k < 9; k++) {
      for (const [s, rate] of [[bursty, k % 2 === 0 ? 0.005 : 0.015], [steady, 0.01]] as const) {
        feed(s.stable, 2000, { errorRate: rate }, s.t, s.t + I, rnd);
        s.t += I;
      }
    }
    for (const s of [bursty, steady]) {
      s.rollout = { ...s.rollout, canaryVersion: "v3", stepStartedAt: s.t - I };
      const ev = step(s, 0.01, rnd);
      const g = ev.gates[0]!;
      expect(g.sequential!.look).toBe(1);
      // The test's data are the canary's interval only: 100 canary and 1,900 stable outcomes.
      expect(s.state.sequential!.gates[0]!).toMatchObject({ canaryN: 100, stableN: 1900 });
      expect(s.state.sequential!.dispersion.pairs).toBe(9);
    }
    expect(bursty.state.sequential!.dispersion.pairs).toBe(9);
    const kappa = (s: Sim) => rateVariation(s.state.sequential!.dispersion);
    expect(kappa(bursty)).toBeGreaterThan(0.1);
    expect(kappa(steady)).toBeLessThan(0.05);
  });
});

describe("rate variation", () => {
  const fold = (rates: number[], n: number) => rates.reduce<DispersionState>((d, r) => foldDispersion(d, Math.round(r * n), n), { pairs: 0, sumSq: 0, sumInv: 0, prevRate: 0, prevN: 0, n: 0, errors: 0 });

  it("is 0 for steady (binomial) traffic and close to CV² for bursty traffic", () => {
    const rnd = mulberry32(7);
    const binomialRates = Array.from({ length: 200 }, () => {
      let e = 0;
      for (let i = 0; i < 1900; i++) if (rnd() < 0.01) e++;
      return e / 1900;
    });
    expect(rateVariation(fold(binomialRates, 1900))).toBeLessThan(0.03);
    // Rates alternating 0.5% / 1.5%: CV 0.5 exactly (CV² 0.25), binomial noise aside.
    const bursty = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? 0.005 : 0.015));
    expect(rateVariation(fold(bursty, 100_000))).toBeGreaterThan(0.4); // successive differences see alternation doubled
  });

  it("does not mistake a slow drift shared by both variants for burstiness", () => {
    const drift = Array.from({ length: 20 }, (_, i) => 0.01 + (0.005 * i) / 19);
    expect(rateVariation(fold(drift, 1_000_000))).toBeLessThan(0.01);
  });
});
