import { analysisStateChanged, parseAnalysisState, type Evaluation } from "../../domain/analysis.js";
import type { AuditEvent } from "../../domain/audit-chain.js";
import { consequence, isLive } from "../../domain/decision.js";
import type { BucketSnapshot } from "../../domain/sliding-window.js";
import type { Store, WindowBucketRow } from "../../store/store.js";
import type { Caller, EvaluationTrace } from "../engine.js";
import { auditEvent } from "./audit-snapshots.js";
import { commit, type ChangeQueue } from "./commands.js";
import type { EngineState, Entry } from "./entries.js";
import { healthView, preview } from "./health-view.js";

/**
 * The evaluator loop: every interval, each live rollout is evaluated (domain/analysis.ts) and
 * what the evaluation causes (domain/decision.ts `consequence`) is applied here — the
 * transition committed with its gate_breach and decision events, the log lines written, the
 * new health published. It decides nothing itself.
 */

/** The actor recorded for automatic decisions. */
export const EVALUATOR = "evaluator";

/**
 * Evaluations between two yields to the event loop in one evaluator round: one. An evaluation
 * (the window merge, the gates, a commit, the health published to every WatchHealth stream)
 * costs from a fraction of a millisecond to several, and the round runs beside the data plane:
 * a turn of the loop after each keeps a round of many rollouts from stalling Route and
 * RecordOutcome for all of it, for a few microseconds per rollout.
 */
const YIELD_EVERY = 1;

/** Other replicas' stored window buckets, by `variant\0rollout`. */
type PeerBuckets = Map<string, BucketSnapshot[]>;

/** What a store with several writers (PostgreSQL) offers beyond Store. */
type SharedStore = Store & {
  loadPeerWindowBuckets?: () => Promise<readonly WindowBucketRow[]>;
  loadAnalysisStates?: () => Promise<ReadonlyMap<string, string>>;
};

/** Reads the other replicas' buckets when the store has several writers (PostgreSQL); undefined otherwise. */
async function loadPeerBuckets(store: Store): Promise<PeerBuckets | undefined> {
  const peers = store as SharedStore;
  if (typeof peers.loadPeerWindowBuckets !== "function") return undefined;
  const byWindow: PeerBuckets = new Map();
  for (const row of await peers.loadPeerWindowBuckets()) {
    const k = `${row.variant}\u0000${row.rollout}`;
    let list = byWindow.get(k);
    if (list === undefined) byWindow.set(k, (list = []));
    list.push({ startMs: row.startMs, data: row.data });
  }
  return byWindow;
}

/**
 * Gives every entry the other replicas' buckets just read, so that its health — the evaluation,
 * Health, WatchHealth, a promotion's check — is the merge of every replica's windows.
 */
function assignPeers(state: EngineState, peers: PeerBuckets): void {
  for (const e of state.entries.values()) {
    const stable = peers.get(`stable\u0000${e.rollout.name}`);
    const canary = peers.get(`canary\u0000${e.rollout.name}`);
    if (stable === undefined && canary === undefined) delete e.peers;
    else e.peers = { stable: stable ?? [], canary: canary ?? [] };
  }
}

const NO_EVENTS: readonly AuditEvent[] = [];

/** The caller recorded for an automatic decision. */
function evaluatorCaller(reason: string): Caller {
  return { actor: EVALUATOR, reason };
}

/** Every gate's values, for the log lines (built only when a line is written). */
function gateValues(ev: Evaluation) {
  return ev.gates.map((g) => ({ gate: g.name, verdict: g.verdict, observed: g.observed, threshold: g.threshold, baseline: g.baseline, samples: g.samples }));
}

/**
 * Evaluates one rollout at `now` and applies (or, in dry run, records) what it causes; tells
 * `decided` (its trace span, when tracing is on) what it decided. `round` is when the round that
 * found it due began: its next evaluation is due an interval after that, not after `now`, so
 * that a rollout late in a long round is not pushed past the next round's start and skipped.
 */
async function evaluateEntry(state: EngineState, e: Entry, now: number, round: number, decided?: (d: EvaluationTrace) => void): Promise<void> {
  const { store, clock, logger, observer, feeds } = state;
  const r = e.rollout;
  const ev = preview(e, now);
  if (analysisStateChanged(e.analysis, ev.state)) {
    e.analysisDirty = true;
    state.unflushed.add(e);
  }
  e.analysis = ev.state;
  e.nextEvalAt = round + r.analysis.intervalMs;
  if (logger.isLevelEnabled("debug")) logger.debug({ rollout: r.name, decision: ev.decision, score: ev.health.score, gates: gateValues(ev), reason: ev.reason }, "evaluated");

  // Most evaluations cause nothing: their empty lists are one shared array, not two new ones.
  const breachEvents =
    ev.newBreaches.length === 0
      ? NO_EVENTS
      : ev.newBreaches.map((name) => {
          const g = ev.gates.find((x) => x.name === name)!;
          return auditEvent(r, "gate_breach", evaluatorCaller(`${name}: ${g.message}`), `gate ${name} failed`, ev.health, clock.now());
        });
  const { transition, audit, decided: isDecision } = consequence(r, ev, { name: EVALUATOR, now });
  const decisionEvents = audit === undefined ? NO_EVENTS : [auditEvent(r, "decision", evaluatorCaller(audit), `decision ${ev.decision}`, ev.health, clock.now())];
  if (isDecision) observer.decided?.(r.name, ev.decision, ev.dryRun);
  decided?.({
    stage: r.stage,
    step: r.currentStep,
    weightBp: r.weightBp,
    decision: ev.decision,
    reason: ev.reason,
    score: ev.health.score,
    blocking: ev.gates.filter((g) => g.verdict === "fail" || g.verdict === "inconclusive").map((g) => g.name),
    acted: transition?.type,
    dryRun: ev.dryRun,
  });

  if (transition !== undefined) {
    const next = transition.rollout;
    // The event shows the new state with the gate values that caused it.
    const changeEvent = auditEvent(next, transition.type, evaluatorCaller(ev.reason), transition.summary, ev.health, clock.now());
    const level = ev.decision === "promote" ? "info" : "warn";
    await commit(state, e, next, [...breachEvents, changeEvent], () =>
      logger[level]({ rollout: r.name, decision: ev.decision, reason: ev.reason, gates: gateValues(ev), version: next.version }, transition.summary),
    );
    feeds.publishHealth({ ...healthView(e, now), message: `${ev.decision}: ${ev.reason}` });
    return;
  }
  if (breachEvents.length > 0 || decisionEvents.length > 0) {
    const appended = await store.commit({ events: [...breachEvents, ...decisionEvents] });
    for (const b of ev.newBreaches) logger.warn({ rollout: r.name, gate: b, reason: ev.reason, gates: gateValues(ev) }, "gate breach");
    state.flushLog();
    feeds.publishEvents(appended);
  }
  feeds.publishHealth(ev.health);
}

/** What Health says while the evaluator cannot read the database. */
export const DATABASE_PAUSE = "evaluation paused: the database is unreachable";

function publishAll(state: EngineState): void {
  const now = state.clock.now();
  for (const e of state.entries.values()) state.feeds.publishHealth(healthView(e, now));
}

/** Sets or clears the evaluator's pause (see Engine.pauseEvaluation); a change is published to every WatchHealth. */
export function pauseEvaluation(state: EngineState, reason: string | undefined): void {
  if (!state.feeds.setPaused(reason)) return;
  if (reason === undefined) state.logger.info("evaluation resumed");
  publishAll(state);
}

/**
 * Evaluates every live rollout whose interval has come round at the clock's now, applying what
 * each evaluation causes, inside the change queue.
 */
export function tick(state: EngineState, queue: ChangeQueue): Promise<void> {
  return queue.serial(async () => {
    const now = state.clock.now();
    // Collect the due entries in a plain loop first: the loop below awaits, so it resumes in
    // the interpreter each time, and scanning 10,000 idle rollouts there cost ~1 µs apiece.
    const due: Entry[] = [];
    for (const e of state.entries.values()) {
      if (now >= e.nextEvalAt && isLive(e.rollout.stage)) due.push(e);
    }
    let evaluated = 0;
    // The round's own duration, from a monotonic clock (the engine's may be a test's or jump).
    const startedAt = performance.now();
    // Several replicas: the evaluation sees every replica's flushed buckets beside this one's.
    let peers: PeerBuckets | undefined;
    if (due.length > 0) {
      try {
        peers = await loadPeerBuckets(state.store);
      } catch (err) {
        // Judging on partial data would be wrong: skip this round, the next one tries again.
        if (state.feeds.setPaused(DATABASE_PAUSE)) {
          state.logger.warn({ err: (err as Error).message }, "evaluation paused: cannot read the other replicas' windows");
          publishAll(state);
        }
        return;
      }
      if (peers !== undefined) {
        assignPeers(state, peers);
        pauseEvaluation(state, undefined);
      }
    }
    const { tracer } = state;
    const round = async () => {
      for (const e of due) {
        if (state.entries.get(e.rollout.name) !== e) continue;
        // Each rollout is judged at its own moment in the round, not the round's start: its
        // windows hold what arrived up to now, its health says when it was judged
        // (evaluated_at), and a round of many rollouts whose health goes to many WatchHealth
        // streams does not date the last rollout's health by the fan-out of all before it.
        const at = state.clock.now();
        try {
          await (tracer === undefined
            ? evaluateEntry(state, e, at, now)
            : tracer.evaluation(e.rollout.name, (decided) => evaluateEntry(state, e, at, now, decided)));
        } catch (err) {
          state.logger.error({ rollout: e.rollout.name, err }, "evaluation failed");
        }
        // Let the health already published go out to WatchHealth streams (and other calls be
        // served) rather than waiting for the whole round.
        if (++evaluated % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    };
    await (tracer === undefined || due.length === 0 ? round() : tracer.round(due.length, round));
    if (evaluated > 0) state.observer.round?.((performance.now() - startedAt) / 1000);
  });
}

/**
 * What a replica that is not the evaluator does when the evaluator's interval comes round for a
 * rollout (several replicas on one database): it reads the other replicas' window buckets and
 * the evaluator state the evaluator stored, and publishes the same health the evaluator sees —
 * every replica's outcomes, the evaluator's breach counts and sequential evidence — so that
 * Health and WatchHealth on any replica show the evaluator's judgement, a flush (≤ 1 s) behind
 * it. It decides nothing and writes nothing. Runs inside the change queue.
 */
export function follow(state: EngineState, queue: ChangeQueue): Promise<void> {
  return queue.serial(async () => {
    const store = state.store as SharedStore;
    if (typeof store.loadPeerWindowBuckets !== "function" || typeof store.loadAnalysisStates !== "function") return;
    const now = state.clock.now();
    const due: Entry[] = [];
    for (const e of state.entries.values()) {
      if (now >= e.nextEvalAt && isLive(e.rollout.stage)) due.push(e);
    }
    if (due.length === 0) return;
    let peers: PeerBuckets | undefined;
    let stored: ReadonlyMap<string, string>;
    try {
      [peers, stored] = await Promise.all([loadPeerBuckets(store), store.loadAnalysisStates()]);
    } catch (err) {
      // The database ping pauses every replica's health when it is unreachable; try next round.
      state.logger.debug({ err: (err as Error).message }, "follower round skipped: cannot read the database");
      return;
    }
    if (peers !== undefined) assignPeers(state, peers);
    for (const e of due) {
      if (state.entries.get(e.rollout.name) !== e) continue;
      const s = stored.get(e.rollout.name);
      if (s !== undefined) {
        try {
          e.analysis = parseAnalysisState(s);
        } catch (err) {
          state.logger.warn({ rollout: e.rollout.name, err: (err as Error).message }, "stored evaluator state unreadable; keeping the last one");
        }
      }
      e.nextEvalAt = now + e.rollout.analysis.intervalMs;
      state.feeds.publishHealth(healthView(e, now));
    }
  });
}
