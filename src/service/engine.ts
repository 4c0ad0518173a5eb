import type { Logger } from "pino";
import { analysisStateChanged, evaluate, initialAnalysisState, parseAnalysisState, type AnalysisState, type Evaluation } from "../domain/analysis.js";
import type { AuditEvent, EventType, NewEvent } from "../domain/audit-chain.js";
import type { Clock } from "../domain/clock.js";
import { DomainError, rolloutNotFound, type BlockingGate } from "../domain/errors.js";
import type { DecisionType, RolloutHealth } from "../domain/health.js";
import type { OutcomeSample } from "../domain/outcome.js";
import * as machine from "../domain/rollout-machine.js";
import type { Rollout, RolloutSpec, Variant } from "../domain/rollout.js";
import { compileRoutes, type RouteTable } from "../domain/routing.js";
import {
  aggregate,
  clear,
  createWindow,
  record,
  resizeWindow,
  restoreBuckets,
  takeCleared,
  takeDirtyBuckets,
  windowStartMs,
  type BucketSnapshot,
  type SlidingWindow,
} from "../domain/sliding-window.js";
import type { Store, WindowBucketRow } from "../store/store.js";
import { createFanOut, type Subscription } from "./fan-out.js";

/** Who asks for a change and why. */
export interface Caller {
  /** The caller's token name ("evaluator" for automatic decisions). */
  readonly actor: string;
  readonly reason: string;
}

/** The actor recorded for automatic decisions. */
export const EVALUATOR = "evaluator";

/** Hooks the server uses to count what the engine does. */
export interface EngineObserver {
  /** Outcomes accepted into, or ignored by (outside the window), a variant's window. */
  outcomes?(rollout: string, variant: Variant, accepted: number, ignored: number): void;
  /** A rollout's health after an evaluation or a change. */
  health?(health: RolloutHealth): void;
  /** An automatic decision the evaluator took (dry run included). */
  decided?(rollout: string, decision: DecisionType, dryRun: boolean): void;
  /** A rollout was deleted: forget its series. */
  deleted?(rollout: string): void;
}

/** One health update: a rollout's health, or its last health when it was deleted. */
export interface HealthChange {
  readonly health: RolloutHealth;
  readonly deleted: boolean;
}

/** Most audit events a WatchEvents subscriber may fall behind by before its stream is ended (it can resume). */
export const MAX_EVENT_BACKLOG = 10_000;

/** One rollout's live state. */
interface Entry {
  rollout: Rollout;
  table: RouteTable;
  windows: Record<Variant, SlidingWindow>;
  analysis: AnalysisState;
  analysisDirty: boolean;
  /** When the evaluator next looks at it. */
  nextEvalAt: number;
}

/** Options of createEngine. */
export interface EngineOptions {
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly observer?: EngineObserver;
}

/** Evaluations between two yields to the event loop in one evaluator round. */
const YIELD_EVERY = 16;

/**
 * Buckets older than this are dropped from the store whatever the rollout (the longest window is
 * 24 h), by a sweep every SWEEP_EVERY_MS; each flush drops the expired buckets of the windows it
 * writes, so only idle windows wait for the sweep.
 */
const STORE_RETENTION_MS = 25 * 3_600_000;
const SWEEP_EVERY_MS = 3_600_000;

/**
 * Returns the rollout engine: the in-memory state of every rollout — configuration, route
 * table, sliding windows, evaluator state — kept equal to the store.
 *
 * Reads (Route, Get, List, Health) never touch the store. Every change, operator's or
 * evaluator's, runs through one queue so that read-modify-write cycles never interleave, is
 * committed durably with its audit events before anyone is answered, and only then becomes
 * visible: the next Route sees it. Outcomes go straight into the windows (O(1) each); the
 * windows and evaluator state are flushed to the store by `flush`, every second.
 */
export function createEngine(opts: EngineOptions) {
  const { store, clock, logger } = opts;
  const observer = opts.observer ?? {};
  const entries = new Map<string, Entry>();
  /** Entries with window buckets or evaluator state that the next flush must write. */
  const unflushed = new Set<Entry>();
  let lastSweepAt = Number.NEGATIVE_INFINITY;
  // Events: every one, in order (a subscriber too far behind is ended and resumes by seq).
  const events = createFanOut<AuditEvent>({ kind: "queue", max: MAX_EVENT_BACKLOG });
  // Health: the latest per rollout; a slow WatchHealth reader skips intermediate states.
  const healthFeed = createFanOut<HealthChange>({ kind: "latest", key: (c) => c.health.rollout });

  let queue: Promise<unknown> = Promise.resolve();
  /** Runs `task` after every earlier change has finished, whatever its outcome. */
  function serial<T>(task: () => Promise<T>): Promise<T> {
    const run = queue.then(task, task);
    queue = run.catch(() => undefined);
    return run;
  }

  function entryOf(name: string): Entry {
    const e = entries.get(name);
    if (e === undefined) throw rolloutNotFound(name);
    return e;
  }

  function newEntry(r: Rollout, analysis: AnalysisState = initialAnalysisState()): Entry {
    const a = r.analysis;
    return {
      rollout: r,
      table: compileRoutes(r),
      windows: { stable: createWindow(a.windowMs, a.intervalMs), canary: createWindow(a.windowMs, a.intervalMs) },
      analysis,
      analysisDirty: false,
      nextEvalAt: clock.now() + a.intervalMs,
    };
  }

  /** Returns the evaluation of an entry now, without keeping its state: a preview. */
  function preview(e: Entry, now = clock.now()): Evaluation {
    return evaluate({
      rollout: e.rollout,
      canary: aggregate(e.windows.canary, now),
      stable: aggregate(e.windows.stable, now),
      state: e.analysis,
      now,
    });
  }

  /**
   * Returns a rollout's health between evaluations: every gate's current values, the
   * consecutive-breach counts the evaluator has actually recorded (a preview would count the
   * current failure once more), and, when the data as it stands would make the evaluator act,
   * that action at its next scheduled evaluation.
   */
  function healthView(e: Entry, now = clock.now()): RolloutHealth {
    const ev = preview(e, now);
    const countsValid = (e.analysis.lastEvaluatedAt ?? -1) >= e.rollout.stepStartedAt;
    const stored = new Map(countsValid ? e.analysis.gates.map((g) => [g.name, g.consecutive] as const) : []);
    const gates = ev.health.gates.map((g) => ({ ...g, consecutiveBreaches: stored.get(g.name) ?? 0 }));
    const acts = (ev.decision !== "continue" && ev.decision !== "hold") || ev.pause;
    return {
      ...ev.health,
      gates,
      consecutiveBreaches: gates.reduce((m, g) => Math.max(m, g.consecutiveBreaches), 0),
      ...(acts ? { nextAction: ev.decision, nextActionAt: Math.max(e.nextEvalAt, now) } : {}),
    };
  }

  /** The snapshot an event keeps: the rollout's state and every gate's values at that moment. */
  function snapshotOf(e: Entry, summary: string, h: RolloutHealth = healthView(e)): string {
    const r = e.rollout;
    return JSON.stringify({
      summary,
      stage: r.stage,
      current_step: r.currentStep,
      weight_bp: r.weightBp,
      paused: r.paused,
      version: r.version,
      stable_version: r.stableVersion,
      canary_version: r.canaryVersion,
      score: round(h.score),
      samples: h.samples,
      gates: h.gates.map((g) => ({
        name: g.name,
        kind: g.kind,
        verdict: g.verdict,
        observed: round(g.observed),
        threshold: round(g.threshold),
        ...(g.baseline === undefined ? {} : { baseline: round(g.baseline) }),
        samples: g.samples,
        consecutive_breaches: g.consecutiveBreaches,
      })),
    });
  }

  function newEvent(e: Entry, type: EventType, caller: Caller, summary: string, ev?: Evaluation): NewEvent {
    const snapshot = ev === undefined ? snapshotOf(e, summary) : snapshotOf(e, summary, ev.health);
    return {
      timeNs: BigInt(clock.now()) * 1_000_000n,
      rollout: e.rollout.name,
      type,
      actor: caller.actor,
      reason: caller.reason === "" ? summary : caller.reason,
      fingerprint: e.rollout.fingerprint,
      snapshot,
    };
  }

  /** Publishes a rollout's current health (after an evaluation or a change). */
  function publishHealth(e: Entry, health: RolloutHealth = healthView(e)): void {
    observer.health?.(health);
    healthFeed.publish({ health, deleted: false });
  }

  /**
   * Commits a rollout's new state with its events, then makes it visible and keeps its
   * windows and evaluator state in step: a rollback or a new canary version empties the
   * canary's window and restarts the evaluator's counts; a new window or interval reshapes
   * both windows.
   */
  async function commit(e: Entry, next: Rollout, newEvents: NewEvent[]): Promise<AuditEvent[]> {
    const prev = e.rollout;
    const appended = await store.commit({ put: next, events: newEvents });
    e.rollout = next;
    e.table = compileRoutes(next);
    const now = clock.now();
    if ((next.stage === "rolled_back" && prev.stage !== "rolled_back") || next.canaryVersion !== prev.canaryVersion) {
      clear(e.windows.canary);
      e.analysis = initialAnalysisState();
      e.analysisDirty = true;
      unflushed.add(e);
    }
    if (next.analysis.windowMs !== prev.analysis.windowMs || next.analysis.intervalMs !== prev.analysis.intervalMs) {
      e.windows = {
        stable: resizeWindow(e.windows.stable, next.analysis.windowMs, next.analysis.intervalMs, now),
        canary: resizeWindow(e.windows.canary, next.analysis.windowMs, next.analysis.intervalMs, now),
      };
      unflushed.add(e);
    }
    if (next.stepStartedAt !== prev.stepStartedAt || next.analysis.intervalMs !== prev.analysis.intervalMs) {
      e.nextEvalAt = now + next.analysis.intervalMs;
    }
    events.publish(...appended);
    return appended;
  }

  /** Evaluates one rollout and applies (or, in dry run, records) the decision. */
  async function evaluateEntry(e: Entry, now: number): Promise<void> {
    const r = e.rollout;
    const ev = preview(e, now);
    if (analysisStateChanged(e.analysis, ev.state)) {
      e.analysisDirty = true;
      unflushed.add(e);
    }
    e.analysis = ev.state;
    e.nextEvalAt = now + r.analysis.intervalMs;
    // Every gate's values for the log lines; built only when a line is written.
    const gates = () => ev.gates.map((g) => ({ gate: g.name, verdict: g.verdict, observed: g.observed, threshold: g.threshold, baseline: g.baseline, samples: g.samples }));
    if (logger.isLevelEnabled("debug")) logger.debug({ rollout: r.name, decision: ev.decision, score: ev.health.score, gates: gates(), reason: ev.reason }, "evaluated");

    const evaluator: Caller = { actor: EVALUATOR, reason: "" };
    const breachEvents = ev.newBreaches.map((name) => {
      const g = ev.gates.find((x) => x.name === name)!;
      return newEvent(e, "gate_breach", { ...evaluator, reason: `${name}: ${g.message}` }, `gate ${name} failed`, ev);
    });
    const acts = ev.decision !== "continue" && ev.decision !== "hold";
    let transition: machine.Transition | undefined;
    if (!ev.dryRun && (acts || ev.pause)) {
      const actor = { name: EVALUATOR, now };
      switch (ev.decision) {
        case "promote":
          transition = machine.promote(r, "next_step", actor);
          break;
        case "rollback":
          transition = machine.rollback(r, actor, true);
          break;
        case "emergency_stop":
          transition = machine.halt(r, actor);
          break;
        case "step_back":
          transition = machine.stepBack(r, actor);
          break;
        case "scale_down":
          transition = machine.scaleDown(r, actor);
          break;
        case "hold":
          transition = machine.pause(r, actor);
          break;
        case "continue":
          break;
      }
    }
    // A dry-run action, or a NOTIFY gate acting, changes nothing but is audited as a decision.
    const notified = ev.triggeredBy.length > 0 && transition === undefined;
    const decisionEvent =
      (ev.dryRun && acts) || notified
        ? [newEvent(e, "decision", { ...evaluator, reason: ev.dryRun && acts ? `dry run: would ${ev.decision}: ${ev.reason}` : ev.reason }, `decision ${ev.decision}`, ev)]
        : [];
    if (acts || ev.triggeredBy.length > 0) observer.decided?.(r.name, ev.decision, ev.dryRun);

    if (transition !== undefined && transition.unchanged !== true) {
      const next = transition.rollout;
      // The event shows the new state with the gate values that caused it.
      const changeEvent = newEvent({ ...e, rollout: next }, transition.type, { ...evaluator, reason: ev.reason }, transition.summary, ev);
      await commit(e, next, [...breachEvents, changeEvent]);
      const level = ev.decision === "promote" ? "info" : "warn";
      logger[level]({ rollout: r.name, decision: ev.decision, reason: ev.reason, gates: gates(), version: next.version }, transition.summary);
      publishHealth(e, { ...healthView(e, now), message: `${ev.decision}: ${ev.reason}` });
      return;
    }
    if (breachEvents.length > 0 || decisionEvent.length > 0) {
      const appended = await store.commit({ events: [...breachEvents, ...decisionEvent] });
      events.publish(...appended);
      for (const b of ev.newBreaches) logger.warn({ rollout: r.name, gate: b, reason: ev.reason, gates: gates() }, "gate breach");
    }
    publishHealth(e, ev.health);
  }

  return {
    /** Loads every rollout, its evaluator state and its windows from the store. */
    async load(): Promise<void> {
      const now = clock.now();
      for (const { rollout, analysis } of await store.loadRollouts()) {
        entries.set(rollout.name, newEntry(rollout, analysis === undefined ? initialAnalysisState() : parseAnalysisState(analysis)));
      }
      const rows = await store.loadWindowBuckets();
      const byWindow = new Map<string, BucketSnapshot[]>();
      for (const row of rows) {
        const k = `${row.variant}\u0000${row.rollout}`;
        let list = byWindow.get(k);
        if (list === undefined) byWindow.set(k, (list = []));
        list.push({ startMs: row.startMs, data: row.data });
      }
      let restored = 0;
      for (const [k, snaps] of byWindow) {
        const [variant, name] = k.split("\u0000") as [Variant, string];
        const e = entries.get(name);
        if (e === undefined) continue;
        restored += restoreBuckets(e.windows[variant], snaps, now).restored;
        unflushed.add(e);
      }
      logger.info({ rollouts: entries.size, windowBuckets: restored }, "state loaded");
    },

    /** Returns a rollout's route table (for callers that route many keys). */
    routeTable(name: string): RouteTable {
      return entryOf(name).table;
    },

    /** Returns a rollout. */
    get(name: string): Rollout {
      return entryOf(name).rollout;
    },

    /** Returns every rollout, by name. */
    list(): Rollout[] {
      return [...entries.values()].map((e) => e.rollout).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    },

    /** Creates a rollout at its first step. */
    create(spec: RolloutSpec, caller: Caller): Promise<Rollout> {
      return serial(async () => {
        if (entries.has(spec.name)) throw new DomainError("already_exists", `rollout "${spec.name}" already exists`);
        const r = machine.createRollout(spec, { name: caller.actor, now: clock.now() });
        const e = newEntry(r);
        const summary = `created: ${r.canaryVersion} over ${r.stableVersion}, ${r.steps.length} steps, weight ${r.weightBp} bp`;
        const appended = await store.commit({ put: r, events: [newEvent(e, "created", caller, summary)] });
        entries.set(r.name, e);
        events.publish(...appended);
        publishHealth(e);
        logger.info({ rollout: r.name, actor: caller.actor, version: r.version }, "rollout created");
        return r;
      });
    },

    /**
     * Applies a transition to a rollout. `expectedVersion` (when > 0) must equal the stored
     * version, else ABORTED. A transition that changes nothing bumps nothing and records nothing.
     */
    change(
      name: string,
      caller: Caller,
      transition: (r: Rollout, actor: machine.Actor) => machine.Transition,
      expectedVersion = 0,
    ): Promise<Rollout> {
      return serial(async () => {
        const e = entryOf(name);
        const current = e.rollout;
        if (expectedVersion > 0 && expectedVersion !== current.version) {
          throw new DomainError(
            "aborted",
            `rollout "${name}" is at version ${current.version}, not the expected ${expectedVersion}; re-read it and retry`,
          );
        }
        const t = transition(current, { name: caller.actor, now: clock.now() });
        if (t.unchanged === true) return current;
        const event = newEvent({ ...e, rollout: t.rollout }, t.type, caller, t.summary);
        await commit(e, t.rollout, [event]);
        logger.info({ rollout: name, actor: caller.actor, event: t.type, version: t.rollout.version, reason: caller.reason }, t.summary);
        publishHealth(e);
        return t.rollout;
      });
    },

    /** Deletes a rollout; its events stay in the log. */
    delete(name: string, caller: Caller, expectedVersion = 0): Promise<void> {
      return serial(async () => {
        const e = entryOf(name);
        const current = e.rollout;
        if (expectedVersion > 0 && expectedVersion !== current.version) {
          throw new DomainError("aborted", `rollout "${name}" is at version ${current.version}, not the expected ${expectedVersion}`);
        }
        const last = healthView(e);
        const event = newEvent(e, "deleted", caller, `deleted at ${current.stage} (version ${current.version})`);
        const appended = await store.commit({ remove: name, events: [event] });
        entries.delete(name);
        unflushed.delete(e);
        events.publish(...appended);
        healthFeed.publish({ health: last, deleted: true });
        observer.deleted?.(name);
        logger.info({ rollout: name, actor: caller.actor }, "rollout deleted");
      });
    },

    /**
     * Records validated outcomes into a rollout's windows (O(1) each) and returns how many were
     * accepted and how many ignored for falling outside the window.
     */
    recordOutcomes(name: string, samples: readonly OutcomeSample[]): { accepted: number; ignored: number } {
      const e = entryOf(name);
      const now = clock.now();
      let stableIn = 0;
      let stableOut = 0;
      let canaryIn = 0;
      let canaryOut = 0;
      const { stable, canary } = e.windows;
      for (const s of samples) {
        if (s.variant === "canary") {
          if (record(canary, s, now)) canaryIn++;
          else canaryOut++;
        } else if (record(stable, s, now)) stableIn++;
        else stableOut++;
      }
      if (stableIn + stableOut > 0) observer.outcomes?.(name, "stable", stableIn, stableOut);
      if (canaryIn + canaryOut > 0) observer.outcomes?.(name, "canary", canaryIn, canaryOut);
      if (stableIn + canaryIn > 0) unflushed.add(e);
      return { accepted: stableIn + canaryIn, ignored: stableOut + canaryOut };
    },

    /** Returns a rollout's health now (see healthView). */
    health(name: string): RolloutHealth {
      return healthView(entryOf(name));
    },

    /** Returns the health of every rollout, by name. */
    allHealth(): RolloutHealth[] {
      return [...entries.values()].sort((a, b) => (a.rollout.name < b.rollout.name ? -1 : 1)).map((e) => healthView(e));
    },

    /**
     * Throws FAILED_PRECONDITION when a promotion must be refused: some gate fails or lacks
     * samples. The message and details name each such gate with its values.
     */
    checkPromotion(name: string): void {
      const e = entryOf(name);
      // Only a live canary has gates to answer to; other stages are refused by the state machine.
      if (e.rollout.stage !== "canary" && e.rollout.stage !== "staging") return;
      const blocking = preview(e).gates.filter((g) => g.verdict === "fail" || g.verdict === "inconclusive");
      if (blocking.length === 0) return;
      const gates: BlockingGate[] = blocking.map((g) => ({
        name: g.name,
        kind: g.kind,
        onBreach: g.onBreach,
        verdict: g.verdict.toUpperCase(),
        observed: g.observed,
        threshold: g.threshold,
        samples: g.samples,
        minSamples: g.minSamples,
        message: g.message,
      }));
      const list = blocking
        .map((g) => `${g.name} ${g.verdict.toUpperCase()}: ${g.message} (observed ${round(g.observed)}, threshold ${round(g.threshold)}, ${g.samples} samples)`)
        .join("; ");
      throw new DomainError("failed_precondition", `promotion of "${name}" refused by gates: ${list}; promote with force and a reason to override`, { gates });
    },

    /**
     * Evaluates every CANARY or STAGING rollout whose interval has come round, applying the
     * decisions. Called by a timer; tests call it after moving a manual clock.
     */
    tick(): Promise<void> {
      return serial(async () => {
        const now = clock.now();
        // Collect the due entries in a plain loop first: the loop below awaits, so it resumes in
        // the interpreter each time, and scanning 10,000 idle rollouts there cost ~1 µs apiece.
        const due: Entry[] = [];
        for (const e of entries.values()) {
          if (now >= e.nextEvalAt && (e.rollout.stage === "canary" || e.rollout.stage === "staging")) due.push(e);
        }
        let evaluated = 0;
        for (const e of due) {
          if (entries.get(e.rollout.name) !== e) continue;
          try {
            await evaluateEntry(e, now);
          } catch (err) {
            logger.error({ rollout: e.rollout.name, err }, "evaluation failed");
          }
          // Let the health already published go out to WatchHealth streams (and other calls be
          // served) rather than waiting for the whole round.
          if (++evaluated % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
        }
      });
    },

    /** Writes changed window buckets and evaluator state to the store. */
    async flush(): Promise<void> {
      const now = clock.now();
      const buckets: WindowBucketRow[] = [];
      const cleared: { rollout: string; variant: Variant }[] = [];
      const analysis: { rollout: string; state: string }[] = [];
      const expired: { rollout: string; variant: Variant; beforeMs: number }[] = [];
      // Only rollouts whose windows or evaluator state changed since the last flush: an idle
      // rollout costs nothing here.
      const todo = [...unflushed];
      unflushed.clear();
      for (const e of todo) {
        const name = e.rollout.name;
        for (const variant of ["stable", "canary"] as const) {
          const w = e.windows[variant];
          if (takeCleared(w)) cleared.push({ rollout: name, variant });
          const dirty = takeDirtyBuckets(w);
          if (dirty.length === 0) continue;
          for (const b of dirty) buckets.push({ rollout: name, variant, startMs: b.startMs, data: b.data });
          expired.push({ rollout: name, variant, beforeMs: windowStartMs(w, now) });
        }
        if (e.analysisDirty) {
          e.analysisDirty = false;
          analysis.push({ rollout: name, state: JSON.stringify(e.analysis) });
        }
      }
      if (buckets.length === 0 && cleared.length === 0 && analysis.length === 0) return;
      const sweep = now - lastSweepAt >= SWEEP_EVERY_MS;
      if (sweep) lastSweepAt = now;
      await store.flushWindows({ buckets, cleared, analysis, expired, ...(sweep ? { expireBeforeMs: now - STORE_RETENTION_MS } : {}) });
    },

    /** Returns where a rollout's windows stand (for tests and diagnostics). */
    windowCounts(name: string): Record<Variant, number> {
      const e = entryOf(name);
      const now = clock.now();
      return { stable: aggregate(e.windows.stable, now).count, canary: aggregate(e.windows.canary, now).count };
    },

    /** Returns events after a sequence number, oldest first. */
    listEvents(rollout: string | undefined, afterSeq: number, limit: number): Promise<AuditEvent[]> {
      return store.listEvents(rollout === undefined ? { afterSeq, limit } : { rollout, afterSeq, limit });
    },

    /** Returns the highest audit seq in the log (0 when empty). */
    lastSeq(): Promise<number> {
      return store.lastSeq();
    },

    /** Subscribes to audit events appended from now on, of one rollout or (undefined) all. */
    subscribeEvents(rollout: string | undefined, signal?: AbortSignal): Subscription<AuditEvent> {
      return events.subscribe((e) => rollout === undefined || e.rollout === rollout, signal);
    },

    /** Subscribes to health updates from now on, of one rollout or (undefined) all. */
    subscribeHealth(rollout: string | undefined, signal?: AbortSignal): Subscription<HealthChange> {
      return healthFeed.subscribe((c) => rollout === undefined || c.health.rollout === rollout, signal);
    },

    /** Returns the number of live subscribers: audit events and health. */
    subscribers(): { events: number; health: number } {
      return { events: events.size(), health: healthFeed.size() };
    },

    /** Ends every live subscription so that streaming calls finish with OK before shutdown. */
    shutdown(): void {
      events.closeAll();
      healthFeed.closeAll();
    },

    /** Waits for every queued change to finish. */
    async drain(): Promise<void> {
      await serial(async () => undefined);
    },
  };
}

function round(v: number): number {
  return Number.isFinite(v) ? Math.round(v * 1e6) / 1e6 : v;
}

/** The engine type. */
export type Engine = ReturnType<typeof createEngine>;
