import { initialAnalysisState, parseAnalysisState } from "../../domain/analysis.js";
import type { AuditEvent, NewEvent } from "../../domain/audit-chain.js";
import { startsAfresh } from "../../domain/decision.js";
import { DomainError } from "../../domain/errors.js";
import * as machine from "../../domain/rollout-machine.js";
import type { Rollout, RolloutSpec } from "../../domain/rollout.js";
import { compileRoutes } from "../../domain/routing.js";
import { clear, resizeWindow } from "../../domain/sliding-window.js";
import type { Store, StoredRollout } from "../../store/store.js";
import type { Caller } from "../engine.js";
import { auditEvent } from "./audit-snapshots.js";
import { entryOf, newEntry, type EngineState, type Entry } from "./entries.js";
import { CATCH_UP_PAGE } from "./feeds.js";
import { healthView } from "./health-view.js";

/**
 * Rollout commands — create, change, delete — and the serial queue every change, operator's or
 * evaluator's, runs through, so that read-modify-write cycles never interleave. Each change is
 * committed durably with its audit events before anyone is answered, and only then becomes
 * visible: the next Route sees it.
 */

/** The queue that runs changes one at a time. */
export interface ChangeQueue {
  /** Runs `task` after every earlier change has finished, whatever its outcome. */
  serial<T>(task: () => Promise<T>): Promise<T>;
}

/** Returns an empty change queue. */
export function createChangeQueue(): ChangeQueue {
  let queue: Promise<unknown> = Promise.resolve();
  return {
    serial<T>(task: () => Promise<T>): Promise<T> {
      const run = queue.then(task, task);
      queue = run.catch(() => undefined);
      return run;
    },
  };
}

/**
 * Commits a rollout's new state with its events, then makes it visible and keeps its windows
 * and evaluator state in step: when the change starts afresh (decision.ts: a rollback, a new
 * canary version) the canary's window is emptied and the evaluator's counts restart; a new
 * window or interval reshapes both windows. Runs inside the change queue.
 */
export async function commit(state: EngineState, e: Entry, next: Rollout, newEvents: NewEvent[]): Promise<AuditEvent[]> {
  // The store checks the version too: another replica's change to the same version, or a
  // deposed evaluator's decision, is refused there (ABORTED) and changes nothing.
  const appended = await state.store.commit({ put: next, expectedVersion: e.rollout.version, events: newEvents });
  applyCommitted(state, e, next);
  state.feeds.publishEvents(appended);
  return appended;
}

/**
 * Makes a committed rollout state visible (this replica's change, or another replica's read
 * back by `reconcile`): the route table, and the windows and evaluator state kept in step.
 */
export function applyCommitted(state: EngineState, e: Entry, next: Rollout): void {
  const prev = e.rollout;
  e.rollout = next;
  e.table = compileRoutes(next);
  const now = state.clock.now();
  if (startsAfresh(prev, next)) {
    clear(e.windows.canary);
    e.analysis = initialAnalysisState();
    e.analysisDirty = true;
    state.unflushed.add(e);
  }
  if (next.analysis.windowMs !== prev.analysis.windowMs || next.analysis.intervalMs !== prev.analysis.intervalMs) {
    e.windows = {
      stable: resizeWindow(e.windows.stable, next.analysis.windowMs, next.analysis.intervalMs, now),
      canary: resizeWindow(e.windows.canary, next.analysis.windowMs, next.analysis.intervalMs, now),
    };
    state.unflushed.add(e);
  }
  if (next.stepStartedAt !== prev.stepStartedAt || next.analysis.intervalMs !== prev.analysis.intervalMs) {
    e.nextEvalAt = now + next.analysis.intervalMs;
  }
}

/**
 * Brings the registry level with the store after other writers' changes (several replicas on
 * one database): rollouts created, changed (another version) or deleted elsewhere become
 * visible here, with their health published. With `only` (the rollouts another replica's
 * NOTIFY named), just those are read back, with any other rollout the events read name; without
 * it, every rollout (the periodic safety net). Runs inside the change queue; returns how many
 * rollouts changed.
 */
export async function reconcile(state: EngineState, withAnalysis = false, only?: ReadonlySet<string>): Promise<number> {
  let changed = 0;
  const one = (state.store as Store & { loadRollout?: (name: string) => Promise<StoredRollout | undefined> }).loadRollout;
  // The other replicas' events up to now are read before the rollouts and published only once
  // the state read after them is applied: a watcher (WatchEvents, WatchRoutes) told of an event
  // always finds its change here. Events committed after the read come with the next reconcile.
  await state.feeds.catchUp(
    (afterSeq) => state.store.listEvents({ afterSeq, limit: CATCH_UP_PAGE }),
    async (read) => {
      if (only === undefined || withAnalysis || one === undefined) {
        changed = await applyStored(state, withAnalysis);
        return;
      }
      const names = new Set(only);
      for (const e of read) names.add(e.rollout);
      for (const name of names) {
        if (applyOne(state, name, await one.call(state.store, name), false)) changed++;
      }
    },
  );
  return changed;
}

/** Reads every rollout back and applies what changed (see reconcile); returns how many changed. */
async function applyStored(state: EngineState, withAnalysis: boolean): Promise<number> {
  const stored = await state.store.loadRollouts();
  const seen = new Set<string>();
  let changed = 0;
  for (const s of stored) {
    seen.add(s.rollout.name);
    if (applyOne(state, s.rollout.name, s, withAnalysis)) changed++;
  }
  for (const name of [...state.entries.keys()]) {
    if (!seen.has(name) && applyOne(state, name, undefined, false)) changed++;
  }
  return changed;
}

/** Applies one rollout as stored (undefined: there is none); returns whether it changed here. */
function applyOne(state: EngineState, name: string, stored: StoredRollout | undefined, withAnalysis: boolean): boolean {
  const { entries, clock, feeds } = state;
  const e = entries.get(name);
  if (stored === undefined) {
    if (e === undefined) return false;
    const last = healthView(e, clock.now());
    entries.delete(name);
    state.unflushed.delete(e);
    feeds.publishDeleted(last);
    return true;
  }
  const { rollout, analysis } = stored;
  // A replica taking over as the evaluator goes on from the stored evaluator state.
  if (withAnalysis && e !== undefined && analysis !== undefined) {
    e.analysis = parseAnalysisState(analysis);
    e.analysisDirty = false;
  }
  if (e === undefined) {
    const created = newEntry(clock, rollout);
    entries.set(rollout.name, created);
    feeds.publishHealth(healthView(created, clock.now()));
    return true;
  }
  if (e.rollout.version !== rollout.version || e.rollout.updatedAt !== rollout.updatedAt) {
    applyCommitted(state, e, rollout);
    feeds.publishHealth(healthView(e, clock.now()));
    return true;
  }
  return false;
}

/** A change to a rollout, as the state machine makes it (see Engine.change). */
export type TransitionFn = (r: Rollout, actor: machine.Actor) => machine.Transition;

/** The rollout commands (see Engine for each). */
export interface RolloutCommands {
  create(spec: RolloutSpec, caller: Caller): Promise<Rollout>;
  change(name: string, caller: Caller, transition: TransitionFn, expectedVersion?: number): Promise<Rollout>;
  delete(name: string, caller: Caller, expectedVersion?: number): Promise<void>;
}

/** Throws ABORTED unless `expectedVersion` is 0 (any) or the rollout's version. */
function checkVersion(r: Rollout, expectedVersion: number, hint: string): void {
  if (expectedVersion > 0 && expectedVersion !== r.version) {
    throw new DomainError("aborted", `rollout "${r.name}" is at version ${r.version}, not the expected ${expectedVersion}${hint}`);
  }
}

/** Returns the rollout commands over the engine's state, run through `queue`. */
export function createRolloutCommands(state: EngineState, queue: ChangeQueue): RolloutCommands {
  const { store, clock, logger, entries, feeds } = state;
  return {
    create(spec, caller) {
      return queue.serial(async () => {
        if (entries.has(spec.name)) throw new DomainError("already_exists", `rollout "${spec.name}" already exists`);
        const now = clock.now();
        const r = machine.createRollout(spec, { name: caller.actor, now });
        const e = newEntry(clock, r);
        const summary = `created: ${r.canaryVersion} over ${r.stableVersion}, ${r.steps.length} steps, weight ${r.weightBp} bp`;
        const appended = await store.commit({
          put: r,
          expectedVersion: 0,
          events: [auditEvent(r, "created", caller, summary, healthView(e, now), now)],
        });
        entries.set(r.name, e);
        feeds.publishEvents(appended);
        feeds.publishHealth(healthView(e, clock.now()));
        logger.info({ rollout: r.name, actor: caller.actor, version: r.version }, "rollout created");
        return r;
      });
    },

    change(name, caller, transition, expectedVersion = 0) {
      return queue.serial(async () => {
        const e = entryOf(state, name);
        const current = e.rollout;
        checkVersion(current, expectedVersion, "; re-read it and retry");
        const now = clock.now();
        const t = transition(current, { name: caller.actor, now });
        if (t.unchanged === true) return current;
        const event = auditEvent(t.rollout, t.type, caller, t.summary, healthView({ ...e, rollout: t.rollout }, now), now);
        await commit(state, e, t.rollout, [event]);
        logger.info({ rollout: name, actor: caller.actor, event: t.type, version: t.rollout.version, reason: caller.reason }, t.summary);
        feeds.publishHealth(healthView(e, clock.now()));
        return t.rollout;
      });
    },

    delete(name, caller, expectedVersion = 0) {
      return queue.serial(async () => {
        const e = entryOf(state, name);
        const current = e.rollout;
        checkVersion(current, expectedVersion, "");
        const now = clock.now();
        const last = healthView(e, now);
        const event = auditEvent(current, "deleted", caller, `deleted at ${current.stage} (version ${current.version})`, last, now);
        const appended = await store.commit({ remove: name, expectedVersion: current.version, events: [event] });
        entries.delete(name);
        state.unflushed.delete(e);
        feeds.publishEvents(appended);
        feeds.publishDeleted(last);
        logger.info({ rollout: name, actor: caller.actor }, "rollout deleted");
      });
    },
  };
}
