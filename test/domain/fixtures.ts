import type { OutcomeSample } from "../../src/domain/outcome.js";
import { createRollout } from "../../src/domain/rollout-machine.js";
import { analysisWithDefaults, type Action, type Analysis, type Gate, type GateCheck, type Rollout, type Step } from "../../src/domain/rollout.js";
import { record, type SlidingWindow } from "../../src/domain/sliding-window.js";

/** The instant every domain test starts at. */
export const T0 = Date.UTC(2026, 0, 1);

/** The default ramp (5% → 25% → 50% → 100%) with no minimum duration or samples. */
export const RAMP: readonly Step[] = [500, 2500, 5000, 10_000].map((weightBp) => ({ weightBp, minDurationMs: 0, minSamples: 0 }));

/** What a test rollout may override. */
export interface RolloutOptions {
  readonly gates?: readonly Gate[];
  readonly analysis?: Partial<Analysis>;
  readonly steps?: readonly Step[];
  readonly now?: number;
  /** Runtime fields to set after creation (stage, paused, autoRollbacks…). */
  readonly state?: Partial<Rollout>;
}

/** Returns a rollout "checkout" created at `now` (T0) in CANARY at its first step. */
export function rolloutWith(o: RolloutOptions = {}): Rollout {
  const r = createRollout(
    {
      name: "checkout",
      stableVersion: "v1",
      canaryVersion: "v2",
      steps: o.steps ?? RAMP,
      features: new Map(),
      salt: "checkout",
      gates: o.gates ?? [],
      analysis: analysisWithDefaults(o.analysis ?? {}),
    },
    { name: "tester", now: o.now ?? T0 },
  );
  return o.state === undefined ? r : { ...r, ...o.state };
}

/** Returns a gate with defaults (min_samples 100, on_breach ROLLBACK). */
export function gate(name: string, check: GateCheck, more: { minSamples?: number; onBreach?: Action } = {}): Gate {
  return { name, minSamples: more.minSamples ?? 100, onBreach: more.onBreach ?? "rollback", check };
}

const NO_METRICS: ReadonlyMap<string, number> = new Map();

/** Returns a validated-looking outcome sample; success and 10 ms unless overridden. */
export function sample(o: Partial<OutcomeSample> = {}): OutcomeSample {
  return { variant: "canary", success: true, latencyMs: 10, metrics: NO_METRICS, invariantViolations: 0, key: "", ...o };
}

/** A seeded PRNG (mulberry32): uniform in [0, 1), the same sequence for the same seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What `feed` records: an error rate, a latency draw and optional extras per outcome. */
export interface Traffic {
  readonly errorRate: number;
  /** Returns one latency in ms; 10 ms by default. */
  readonly latency?: (rnd: () => number) => number;
  readonly metrics?: ReadonlyMap<string, number>;
  readonly invariantViolations?: number;
}

/**
 * Records `n` outcomes into a window, spread evenly over [from, to), as the server would
 * record them as they arrive; returns how many were recorded.
 */
export function feed(w: SlidingWindow, n: number, t: Traffic, from: number, to: number, rnd: () => number): number {
  let recorded = 0;
  const s = { ...sample({ metrics: t.metrics ?? NO_METRICS, invariantViolations: t.invariantViolations ?? 0 }) };
  const mutable = s as { success: boolean; latencyMs: number };
  for (let i = 0; i < n; i++) {
    mutable.success = rnd() >= t.errorRate;
    mutable.latencyMs = t.latency === undefined ? 10 : t.latency(rnd);
    const at = from + Math.floor(((to - from) * i) / n);
    if (record(w, s, at)) recorded++;
  }
  return recorded;
}

/** Returns a log-normal latency draw with the given median (ms) and shape sigma. */
export function logNormal(medianMs: number, sigma: number): (rnd: () => number) => number {
  return (rnd) => {
    // Box–Muller; 1 − u keeps the logarithm finite.
    const z = Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
    return medianMs * Math.exp(sigma * z);
  };
}
