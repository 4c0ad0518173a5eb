import { evaluateGate, type GateResult, type Verdict } from "./gates.js";
import { healthScore, recommendationOf, type DecisionType, type GateHealth, type RolloutHealth } from "./health.js";
import { ACTION_DECISION, SEVERITY, acts, isLive, policy } from "./decision.js";
import type { Rollout } from "./rollout.js";
import type { WindowAggregate } from "./sliding-window.js";
import { isSequential, parseSequentialAnalysis, runSequentialGates, type SequentialAnalysisState } from "./sequential-gate.js";

/**
 * The evaluator (docs/design.md §5 "Analysis"), pure: it takes a rollout, the aggregates of its two
 * windows, its evaluator state and the time, and returns every gate's verdict, the decision
 * with its reason in words, the next state and the health. What the decision then causes, and
 * the policy rules below that shape it, live in decision.ts; the engine applies it (or, in dry
 * run, records it); nothing here changes anything.
 *
 * Each call is one evaluation: the engine calls it once per `interval`. To preview (Health
 * between evaluations, Promote without force) call it and discard the returned state.
 *
 * Rules, in the order they apply:
 * - Only CANARY and STAGING act. Other stages get their health, with decision "continue"
 *   (PRODUCTION) or "hold" (ROLLED_BACK, HALTED: stopped, nothing to do; never a pause).
 * - Grace: for `gracePeriodMs` after `stepStartedAt` (any step change, resume or restart)
 *   verdicts are reported but not counted, so the new weight's first, mixed buckets decide
 *   nothing. Invariant gates are the exception: a violation is a fact, not noise, so it acts
 *   even in the grace period (safety first).
 * - Counting: a FAIL adds one to the gate's consecutive count, PASS/WARN resets it,
 *   INCONCLUSIVE leaves it as it is (too few samples neither confirms nor clears a breach).
 *   Counts restart when the step changes (stage, step, weight or stepStartedAt).
 * - A breach acts when the consecutive count reaches `consecutiveBreaches`, or, with
 *   `maxBreachRate`, when the gate failed in more than that share of the counted evaluations
 *   within the window and at least `consecutiveBreaches` times (so flapping is caught, but
 *   never sooner than the same number of failures in a row would be). Invariant gates act at
 *   their first failure. After acting, the gate's counts start afresh (so an action that is
 *   not applied, e.g. in dry run, repeats every `consecutiveBreaches` evaluations).
 * - Sequential gates (error_rate with confidence; sequential-gate.ts, docs/judgement.md) are
 *   judged on the buckets closed since the last evaluation by one test per canary version (it
 *   survives step changes); a boundary crossing acts at once, at the look that crossed, without
 *   consecutiveBreaches, and only then. In the grace period their data are folded in, unjudged.
 * - on_breach: ROLLBACK → "rollback", HALT → "emergency_stop", STEP_BACK → "step_back",
 *   SCALE_DOWN → "scale_down", HOLD → "hold" and pause, NOTIFY → no action (the gate is still
 *   in `triggeredBy`, so the engine audits it). When several act, the most severe wins:
 *   emergency_stop > rollback > step_back > scale_down > hold > notify.
 * - What the winning action then becomes under the rollout's settings — auto_rollback off,
 *   STAGING, paused, the daily limit of automatic rollbacks — is `policy` in decision.ts, and
 *   what it causes is `consequence` there. Paused also means no promotion.
 * - `noDataTimeoutMs` > 0: a canary with weight > 0 and no canary outcome since
 *   max(stepStartedAt, last canary outcome) for that long is held and paused, or rolled back
 *   when `onNoData` is "rollback". The last outcome time is kept in the state, so a timeout
 *   longer than the window and a restart both work.
 * - `autoPromote` (CANARY only, never paused): "promote" once the grace period is over,
 *   now − stepStartedAt >= the step's minDurationMs, the canary window holds the step's
 *   minSamples and every gate is PASS or WARN.
 * - `dryRun`: everything is computed as usual and `dryRun` is set; the engine applies nothing.
 */

/** Data kept for one gate between evaluations. */
export interface GateState {
  readonly name: string;
  /** Failed counted evaluations in a row. */
  readonly consecutive: number;
  /** The last counted verdict other than INCONCLUSIVE, to tell new breaches from ongoing ones. */
  readonly lastVerdict?: Verdict;
  /** Counted evaluations within the window, oldest first, as [time, 1 if failed else 0]; kept only with maxBreachRate. */
  readonly recent: readonly (readonly [number, 0 | 1])[];
}

/** The evaluator's memory between evaluations: plain JSON, persisted by the server (version 2 adds `sequential`; version 1 is read as before). */
export interface AnalysisState {
  readonly version: 1 | 2;
  /** The step the counts belong to; a different step starts them afresh. */
  readonly step: string;
  readonly gates: readonly GateState[];
  readonly lastEvaluatedAt?: number;
  /** The newest canary outcome time seen, for the no-data timeout. */
  readonly lastCanaryOutcomeAt?: number;
  /** The sequential error-rate gates' tests (sequential-gate.ts): they belong to the canary version, not the step. */
  readonly sequential?: SequentialAnalysisState;
}

/** Returns the state of a rollout never evaluated. */
export function initialAnalysisState(): AnalysisState {
  return { version: 1, step: "", gates: [] };
}

/**
 * Returns true when two states differ in more than `lastEvaluatedAt`: what is worth writing
 * to the store. An idle rollout's evaluation changes only that time, and the one stored by
 * the step's first evaluation says all that is read from it (that the counts belong to the
 * current step), so such evaluations need not be written.
 */
export function analysisStateChanged(a: AnalysisState, b: AnalysisState): boolean {
  if (a.step !== b.step || a.lastCanaryOutcomeAt !== b.lastCanaryOutcomeAt || a.gates.length !== b.gates.length) return true;
  if ((a.lastEvaluatedAt === undefined) !== (b.lastEvaluatedAt === undefined)) return true;
  if (a.sequential !== b.sequential && JSON.stringify(a.sequential) !== JSON.stringify(b.sequential)) return true;
  for (let i = 0; i < a.gates.length; i++) {
    const x = a.gates[i]!;
    const y = b.gates[i]!;
    if (x.name !== y.name || x.consecutive !== y.consecutive || x.lastVerdict !== y.lastVerdict || x.recent.length !== y.recent.length) return true;
    for (let j = 0; j < x.recent.length; j++) {
      if (x.recent[j]![0] !== y.recent[j]![0] || x.recent[j]![1] !== y.recent[j]![1]) return true;
    }
  }
  return false;
}

/**
 * Returns the state stored as JSON text, or the initial state when the text is not a state
 * this version understands (the evaluator then starts counting afresh, which is safe).
 */
export function parseAnalysisState(json: string): AnalysisState {
  try {
    const v = JSON.parse(json) as Partial<AnalysisState> | null;
    if (v === null || typeof v !== "object" || (v.version !== 1 && v.version !== 2) || typeof v.step !== "string" || !Array.isArray(v.gates)) {
      return initialAnalysisState();
    }
    const gates: GateState[] = [];
    for (const g of v.gates as unknown[]) {
      const s = g as Partial<GateState>;
      if (typeof s?.name !== "string" || typeof s.consecutive !== "number" || !Array.isArray(s.recent)) return initialAnalysisState();
      gates.push(s as GateState);
    }
    const state: AnalysisState = { version: 1, step: v.step, gates };
    // A malformed sequential part starts those tests afresh; the rest of the state stands.
    const sequential = v.version === 2 ? parseSequentialAnalysis(v.sequential) : undefined;
    return {
      ...state,
      ...(sequential === undefined ? {} : { version: 2, sequential }),
      ...(typeof v.lastEvaluatedAt === "number" ? { lastEvaluatedAt: v.lastEvaluatedAt } : {}),
      ...(typeof v.lastCanaryOutcomeAt === "number" ? { lastCanaryOutcomeAt: v.lastCanaryOutcomeAt } : {}),
    };
  } catch {
    return initialAnalysisState();
  }
}

/** What one evaluation looks at. */
export interface EvaluationInput {
  readonly rollout: Rollout;
  readonly canary: WindowAggregate;
  readonly stable: WindowAggregate;
  readonly state: AnalysisState;
  readonly now: number;
}

/** One evaluation's result. */
export interface Evaluation {
  readonly gates: readonly GateResult[];
  readonly decision: DecisionType;
  /** True when the decision is a "hold" that must also pause the rollout (a HOLD gate, the no-data timeout) and it is not paused yet. */
  readonly pause: boolean;
  /** Gates whose breach acts now (NOTIFY gates included, so that the engine audits them). */
  readonly triggeredBy: readonly string[];
  /** Gates that failed this evaluation having not failed at their last counted one: the engine records a "gate breach" event for each. */
  readonly newBreaches: readonly string[];
  /** The decision in words, with measured values and thresholds. */
  readonly reason: string;
  /** True in dry run: the engine records the decision and applies nothing. */
  readonly dryRun: boolean;
  readonly state: AnalysisState;
  readonly health: RolloutHealth;
}

/** Most counted evaluations a gate remembers for maxBreachRate (a 24 h window at 1 s would otherwise keep 86,400). */
export const MAX_RECENT_EVALUATIONS = 360;


/** Formats a duration for a reason: "90s", "5m", "1.5s". */
function fmtMs(ms: number): string {
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Math.round(ms / 100) / 10}s`;
}

/** Returns the identity of a rollout's current step: counts restart when it changes. */
function stepKey(r: Rollout): string {
  return `${r.stage}/${r.currentStep}/${r.weightBp}/${r.stepStartedAt}`;
}

/**
 * Returns true when a state's counts belong to the rollout's current step (stage, step, weight
 * and stepStartedAt all as when they were counted); otherwise the next evaluation starts them
 * afresh, and a view between evaluations must show them as 0.
 */
export function countsBelongTo(state: AnalysisState, r: Rollout): boolean {
  return state.step === stepKey(r);
}

interface Acting {
  readonly gate: GateResult;
  readonly want: DecisionType | undefined;
  readonly why: string;
}

/** Evaluates a rollout once; see the module comment for the rules. */
export function evaluate(input: EvaluationInput): Evaluation {
  const { rollout: r, canary, stable, now } = input;
  const a = r.analysis;
  const step = stepKey(r);
  const prev = countsBelongTo(input.state, r) ? input.state : { ...input.state, step, gates: [] };
  const prevGates = new Map(prev.gates.map((g) => [g.name, g]));
  const lastCanaryOutcomeAt = latest(prev.lastCanaryOutcomeAt, canary.lastOutcomeAt);
  const active = isLive(r.stage);
  const graceLeft = r.stepStartedAt + a.gracePeriodMs - now;
  const inGrace = graceLeft > 0;
  // Sequential gates fold in the buckets closed since the last evaluation, and look outside the grace period.
  const seq = active && r.gates.some(isSequential) ? runSequentialGates(r, canary, stable, prev.sequential, now, !inGrace) : undefined;
  const sequential = seq?.state ?? prev.sequential;
  const results = r.gates.map((g) => seq?.results.get(g.name) ?? evaluateGate(g, canary, stable));

  const gateStates: GateState[] = [];
  const consecutive = new Map<string, number>();
  const acting: Acting[] = [];
  const newBreaches: string[] = [];
  for (const res of results) {
    const before = prevGates.get(res.name);
    let count = before?.consecutive ?? 0;
    let recent = a.maxBreachRate === undefined ? [] : (before?.recent ?? []).filter(([t]) => t > now - a.windowMs);
    let lastVerdict = before?.lastVerdict;
    const counts = active && (!inGrace || res.kind === "invariant");
    const failed = res.verdict === "fail";
    if (counts && res.verdict !== "inconclusive") {
      count = failed ? count + 1 : 0;
      if (a.maxBreachRate !== undefined) recent = [...recent, [now, failed ? 1 : 0] as const].slice(-MAX_RECENT_EVALUATIONS);
      if (failed && lastVerdict !== "fail") newBreaches.push(res.name);
      lastVerdict = res.verdict;
    }
    consecutive.set(res.name, count);
    let why: string | undefined;
    if (counts && failed) {
      const fails = recent.reduce((n, [, f]) => n + f, 0);
      if (res.kind === "invariant") {
        why = `${res.name}: ${res.message} (invariant gates act at once${inGrace ? ", even in the grace period" : ""})`;
      } else if (res.sequential !== undefined) {
        // A boundary crossing is the whole test's verdict: it acts at once, at the look that crossed, and only then.
        if (seq?.crossedNow.has(res.name) === true) why = `${res.name}: ${res.message}`;
      } else if (count >= a.consecutiveBreaches) {
        why = `${res.name}: ${res.message} for ${count} consecutive evaluation${count === 1 ? "" : "s"}`;
      } else if (a.maxBreachRate !== undefined && fails >= a.consecutiveBreaches && fails / recent.length > a.maxBreachRate) {
        why = `${res.name}: ${res.message}, failing in ${fails} of ${recent.length} evaluations in the window (> max_breach_rate ${a.maxBreachRate})`;
      }
    }
    if (why !== undefined) {
      acting.push({ gate: res, want: ACTION_DECISION[res.onBreach], why });
      // Acting starts the gate's counts afresh.
      count = 0;
      recent = [];
    }
    gateStates.push({ name: res.name, consecutive: count, ...(lastVerdict === undefined ? {} : { lastVerdict }), recent });
  }

  const d = decide(r, acting, results, canary, now, inGrace, graceLeft, lastCanaryOutcomeAt, consecutive);
  const state: AnalysisState = {
    version: sequential === undefined ? 1 : 2,
    step,
    gates: gateStates,
    lastEvaluatedAt: now,
    ...(lastCanaryOutcomeAt === undefined ? {} : { lastCanaryOutcomeAt }),
    ...(sequential === undefined ? {} : { sequential }),
  };
  const next = nextAction(r, d.decision, results, consecutive, canary, now, graceLeft, lastCanaryOutcomeAt);
  const score = healthScore(results);
  const gates: GateHealth[] = results.map((g) => ({ ...g, consecutiveBreaches: consecutive.get(g.name) ?? 0 }));
  const health: RolloutHealth = {
    rollout: r.name,
    score,
    recommendation: recommendationOf(score),
    gates,
    consecutiveBreaches: gates.reduce((m, g) => Math.max(m, g.consecutiveBreaches), 0),
    samples: { stable: stable.count, canary: canary.count },
    stage: r.stage,
    weightBp: r.weightBp,
    currentStep: r.currentStep,
    paused: r.paused,
    nextAction: next.action,
    ...(next.at === undefined ? {} : { nextActionAt: next.at }),
    evaluatedAt: now,
    rolloutVersion: r.version,
    message: a.dryRun && acts(d) ? `dry run, not applied: ${d.reason}` : d.reason,
  };
  return {
    gates: results,
    decision: d.decision,
    pause: d.pause,
    triggeredBy: acting.map((x) => x.gate.name),
    newBreaches,
    reason: d.reason,
    dryRun: a.dryRun,
    state,
    health,
  };
}

function latest(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  return b === undefined || a >= b ? a : b;
}

/** Returns the decision once the acting breaches are known. */
function decide(
  r: Rollout,
  acting: readonly Acting[],
  results: readonly GateResult[],
  canary: WindowAggregate,
  now: number,
  inGrace: boolean,
  graceLeft: number,
  lastCanaryOutcomeAt: number | undefined,
  consecutive: ReadonlyMap<string, number>,
): { decision: DecisionType; pause: boolean; reason: string } {
  const a = r.analysis;
  if (r.stage === "production") return { decision: "continue", pause: false, reason: "PRODUCTION: the rollout is done" };
  if (r.stage === "rolled_back" || r.stage === "halted") {
    return { decision: "hold", pause: false, reason: `${r.stage === "halted" ? "HALTED" : "ROLLED_BACK"}: not evaluated for actions` };
  }

  // The strongest action any acting gate asks for, then the no-data timeout beside it.
  let wanted: DecisionType = "continue";
  let pause = false;
  const reasons: string[] = [];
  for (const x of acting) {
    reasons.push(x.want === undefined ? `${x.why} (notify only)` : x.why);
    if (x.want !== undefined && SEVERITY[x.want] > SEVERITY[wanted]) wanted = x.want;
  }
  if (wanted === "hold") pause = true;
  const noData = noDataDue(r, now, lastCanaryOutcomeAt);
  if (noData !== undefined) {
    reasons.push(`no canary outcomes for ${fmtMs(noData.quietMs)} (no_data_timeout ${fmtMs(a.noDataTimeoutMs)})`);
    if (SEVERITY[noData.want] > SEVERITY[wanted]) wanted = noData.want;
    if (noData.want === "hold") pause = true;
  }

  if (wanted !== "continue") {
    const { decision, reason } = policy(r, wanted, now, reasons.join("; "));
    return { decision, pause: decision === "hold" && pause && !r.paused, reason };
  }
  if (acting.length > 0) return { decision: "continue", pause: false, reason: reasons.join("; ") };

  const failing = results.filter((g) => g.verdict === "fail");
  if (failing.length > 0) {
    const list = failing.map((g) => `${g.name}: ${g.message}${g.kind === "invariant" ? "" : ` (${consecutive.get(g.name) ?? 0} of ${a.consecutiveBreaches} consecutive)`}`);
    return { decision: "continue", pause: false, reason: `${inGrace ? `grace period (${fmtMs(graceLeft)} left), not counted: ` : "failing: "}${list.join("; ")}` };
  }
  if (inGrace) return { decision: "continue", pause: false, reason: `grace period: ${fmtMs(graceLeft)} left after the step change` };

  const waiting = results.filter((g) => g.verdict === "inconclusive");
  const s = r.steps[r.currentStep];
  if (a.autoPromote && r.stage === "canary" && !r.paused && s !== undefined && waiting.length === 0) {
    const held = now - r.stepStartedAt;
    const gatesText = results.length === 0 ? "no gates" : `all ${results.length} gates pass`;
    if (held >= s.minDurationMs && canary.count >= s.minSamples) {
      return {
        decision: "promote",
        pause: false,
        reason: `${gatesText}; step ${r.currentStep + 1} held ${fmtMs(held)} >= min_duration ${fmtMs(s.minDurationMs)} with ${canary.count} >= ${s.minSamples} canary samples`,
      };
    }
    const needs: string[] = [];
    if (held < s.minDurationMs) needs.push(`${fmtMs(s.minDurationMs - held)} more`);
    if (canary.count < s.minSamples) needs.push(`${s.minSamples - canary.count} more canary samples`);
    return { decision: "continue", pause: false, reason: `${gatesText}; step ${r.currentStep + 1} needs ${needs.join(" and ")} before promotion` };
  }
  if (waiting.length > 0) {
    return { decision: "continue", pause: false, reason: `waiting for samples: ${waiting.map((g) => `${g.name}: ${g.message}`).join("; ")}` };
  }
  const why = results.length === 0 ? "no gates" : `all ${results.length} gates pass`;
  return { decision: "continue", pause: false, reason: r.paused ? `paused; ${why}` : why };
}

/** Returns the no-data action when the timeout has passed, else undefined. */
function noDataDue(r: Rollout, now: number, lastCanaryOutcomeAt: number | undefined): { want: DecisionType; quietMs: number } | undefined {
  const a = r.analysis;
  if (a.noDataTimeoutMs <= 0 || r.weightBp <= 0 || !isLive(r.stage)) return undefined;
  const quietMs = now - Math.max(r.stepStartedAt, lastCanaryOutcomeAt ?? -Infinity);
  if (quietMs < a.noDataTimeoutMs) return undefined;
  return { want: a.onNoData === "rollback" ? "rollback" : "hold", quietMs };
}

/**
 * Returns what the evaluator will do next and when, as far as it can tell now: the decision
 * itself when it acts; else the earliest of a breach one failure from acting (at the next
 * evaluation), the no-data timeout, and a promotion (once min_duration has passed); else
 * "continue" with no time.
 */
function nextAction(
  r: Rollout,
  decision: DecisionType,
  results: readonly GateResult[],
  consecutive: ReadonlyMap<string, number>,
  canary: WindowAggregate,
  now: number,
  graceLeft: number,
  lastCanaryOutcomeAt: number | undefined,
): { action: DecisionType; at?: number } {
  const a = r.analysis;
  if (decision !== "continue") return { action: decision, at: now };
  if (!isLive(r.stage)) return { action: "continue" };
  const nextEval = now + Math.max(a.intervalMs, graceLeft);
  const candidates: { action: DecisionType; at: number }[] = [];
  for (const g of results) {
    if (g.verdict !== "fail" || (consecutive.get(g.name) ?? 0) + 1 < a.consecutiveBreaches) continue;
    const want = ACTION_DECISION[g.onBreach];
    if (want !== undefined) candidates.push({ action: policy(r, want, now).decision, at: nextEval });
  }
  if (a.noDataTimeoutMs > 0 && r.weightBp > 0) {
    const since = Math.max(r.stepStartedAt, lastCanaryOutcomeAt ?? -Infinity);
    const want = a.onNoData === "rollback" ? "rollback" : "hold";
    candidates.push({ action: policy(r, want, now).decision, at: Math.max(now, since + a.noDataTimeoutMs) });
  }
  const s = r.steps[r.currentStep];
  if (
    a.autoPromote &&
    r.stage === "canary" &&
    !r.paused &&
    s !== undefined &&
    canary.count >= s.minSamples &&
    results.every((g) => g.verdict === "pass" || g.verdict === "warn")
  ) {
    candidates.push({ action: "promote", at: Math.max(now + a.intervalMs, r.stepStartedAt + Math.max(s.minDurationMs, a.gracePeriodMs)) });
  }
  if (candidates.length === 0) return { action: "continue" };
  candidates.sort((x, y) => x.at - y.at || SEVERITY[y.action] - SEVERITY[x.action]);
  return candidates[0] as { action: DecisionType; at: number };
}
