import { initialAnalysisState, parseAnalysisState } from "../../domain/analysis.js";
import type { AuditEvent, NewEvent } from "../../domain/audit-chain.js";
import { startsAfresh } from "../../domain/decision.js";
import { DomainError, rolloutNotFound } from "../../domain/errors.js";
import * as machine from "../../domain/rollout-machine.js";
import type { Rollout, RolloutSpec } from "../../domain/rollout.js";
import { compileRoutes } from "../../domain/routing.js";
import { clear, resizeWindow } from "../../domain/sliding-window.js";
import type { Commit, CommitResult, Store, StoredRollout } from "../../store/store.js";
import { dependencyRefused } from "../../store/version-check.js";
import type { Caller } from "../engine.js";
import { auditEvent } from "./audit-snapshots.js";
import { newEntry, type EngineState, type Entry } from "./entries.js";
import { CATCH_UP_PAGE } from "./feeds.js";
import { healthView } from "./health-view.js";

/**
 * Rollout commands — create, change, delete — and the serial queue every change, operator's or
 * evaluator's, runs through, so that read-modify-write cycles never interleave. Each change is
 * committed durably with its audit events before anyone is answered, and only then becomes
 * visible: the next Route sees it.
 */

/**
 * A change prepared in the queue (validated and computed against the state as every earlier
 * change leaves it) and waiting for its group's durable commit.
 */
export interface Staged<T> {
  readonly commit: Commit;
  /** Marks this change; `failed` turns true when the store refuses it or its group fails. */
  readonly link: Link;
  /** The staged change this one was computed from, if any: when that one fails, so does this one. */
  readonly basis?: Link;
  /** Called in queue order once its group has committed: makes it visible and logs it; returns the caller's answer. */
  applied(events: AuditEvent[]): T;
  /** Called after every `applied` of the group and the log flush: tells watchers. */
  publish(): void;
  /** Called when the store refused it or its group's commit failed: nothing of it may stay. */
  failed(): void;
}

/** One staged change's fate, shared with the changes computed from it. */
export interface Link {
  failed: boolean;
}

/** What a prepare step returns: a change to commit, an answer now, or "again once this has settled". */
export type Prepared<T> = Staged<T> | { readonly answer: T } | { readonly after: Promise<unknown> };

/** The queue that runs changes in order. */
export interface ChangeQueue {
  /** Runs `task` alone, after every earlier change has finished (committed or failed), whatever its outcome. */
  serial<T>(task: () => Promise<T>): Promise<T>;
  /**
   * Runs `prepare` in order after every earlier task; a change it stages is committed with the
   * others staged in the same turn of the event loop (or while a commit is in flight) in one
   * transaction (Store.commitMany), and the promise settles only after that commit: with its
   * `applied` answer, or with the error that refused it or failed the group.
   */
  staged<T>(prepare: () => Prepared<T>): Promise<T>;
}

interface Queued {
  readonly staged: Staged<unknown>;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
}

/**
 * Returns an empty change queue over `store`; `flushLog` (if given) is called once per group
 * after its changes' log lines are written and before any of them is answered.
 */
export function createChangeQueue(store: Store, flushLog?: () => void): ChangeQueue {
  let tail: Promise<unknown> = Promise.resolve();
  let group: Queued[] = [];
  let running: Promise<void> | undefined;
  let scheduled = false;

  const inOrder = <T>(task: () => Promise<T>): Promise<T> => {
    const run = tail.then(task, task);
    tail = run.catch(() => undefined);
    return run;
  };

  function start(): void {
    if (running !== undefined || group.length === 0) return;
    const items = group;
    group = [];
    running = commitGroup(items).finally(() => {
      running = undefined;
      start();
    });
  }

  async function commitGroup(queued: readonly Queued[]): Promise<void> {
    const settle: (() => void)[] = [];
    // A change computed from one that failed in an earlier group fails too, unsent.
    const items: Queued[] = [];
    for (const q of queued) {
      if (q.staged.basis?.failed !== true) {
        items.push(q);
        continue;
      }
      q.staged.link.failed = true;
      q.staged.failed();
      settle.push(() => q.reject(dependencyRefused(q.staged.commit)));
    }
    const index = new Map<Link, number>(items.map((q, k) => [q.staged.link, k]));
    const changes = items.map(({ staged }): Commit => {
      const on = staged.basis === undefined ? undefined : index.get(staged.basis);
      return on === undefined ? staged.commit : { ...staged.commit, dependsOn: on };
    });
    let results: CommitResult[] | undefined;
    let failure: unknown;
    try {
      results = changes.length === 0 ? [] : await store.commitMany(changes);
    } catch (e) {
      failure = e;
    }
    for (let k = 0; k < items.length; k++) {
      const { staged, resolve, reject } = items[k]!;
      const r = results?.[k];
      if (r === undefined || r.error !== undefined) {
        staged.link.failed = true;
        staged.failed();
        const err = r?.error ?? failure;
        settle.push(() => reject(err));
        continue;
      }
      try {
        const answer = staged.applied(r.events);
        settle.push(() => {
          staged.publish();
          resolve(answer);
        });
      } catch (e) {
        settle.push(() => reject(e));
      }
    }
    // The group's log lines reach the log before anyone hears of its changes (docs/design.md).
    flushLog?.();
    for (const f of settle) f();
  }

  async function idle(): Promise<void> {
    while (running !== undefined || group.length > 0) {
      start();
      await running;
    }
  }

  const queue: ChangeQueue = {
    serial<T>(task: () => Promise<T>): Promise<T> {
      return inOrder(async () => {
        await idle();
        return task();
      });
    },
    staged<T>(prepare: () => Prepared<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        inOrder(async () => {
          let p = prepare();
          // Waits in its place in the queue (the change it waits for commits on its own), so
          // that later changes are still prepared after this one.
          while ("after" in p) {
            await p.after;
            p = prepare();
          }
          if ("answer" in p) return resolve(p.answer);
          group.push({ staged: p, resolve: resolve as (v: unknown) => void, reject });
          if (running === undefined && !scheduled) {
            // After this turn's I/O callbacks: the changes that arrive with it join the group.
            scheduled = true;
            setImmediate(() => {
              scheduled = false;
              start();
            });
          }
        }).catch(reject);
      });
    },
  };
  return queue;
}

/**
 * Commits a rollout's new state with its events, then makes it visible (writing `logLine` out
 * before it is published) and keeps its windows
 * and evaluator state in step: when the change starts afresh (decision.ts: a rollback, a new
 * canary version) the canary's window is emptied and the evaluator's counts restart; a new
 * window or interval reshapes both windows. Runs inside the change queue.
 */
export async function commit(state: EngineState, e: Entry, next: Rollout, newEvents: NewEvent[], logLine?: () => void): Promise<AuditEvent[]> {
  // The store checks the version too: another replica's change to the same version, or a
  // deposed evaluator's decision, is refused there (ABORTED) and changes nothing.
  const appended = await state.store.commit({ put: next, expectedVersion: e.rollout.version, events: newEvents });
  applyCommitted(state, e, next);
  if (logLine !== undefined) {
    // Written out before any watcher can hear of the change.
    logLine();
    state.flushLog();
  }
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
    // The other replicas' canary buckets last read are of the old canary too.
    if (e.peers !== undefined) e.peers = { ...e.peers, canary: [] };
    e.analysis = initialAnalysisState();
    e.analysisDirty = true;
    state.unflushed.add(e);
  }
  if (next.analysis.windowMs !== prev.analysis.windowMs || next.analysis.intervalMs !== prev.analysis.intervalMs) {
    e.windows = {
      stable: resizeWindow(e.windows.stable, next.analysis.windowMs, next.analysis.intervalMs, now),
      canary: resizeWindow(e.windows.canary, next.analysis.windowMs, next.analysis.intervalMs, now),
    };
    // Cut for the old layout: the next round reads the other replicas' buckets again.
    delete e.peers;
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

/** A change staged but not yet committed: what later changes in the queue see. */
interface Pending {
  readonly entry: Entry;
  /** The rollout as the change leaves it; undefined: deleted. */
  readonly rollout: Rollout | undefined;
  /** True when applying it empties or reshapes windows: a later change to the rollout waits for it. */
  readonly reshapes: boolean;
  /** Resolves once it is applied or has failed. */
  readonly settled: Promise<void>;
  readonly link: Link;
}

/** Returns the rollout commands over the engine's state, run through `queue`. */
export function createRolloutCommands(state: EngineState, queue: ChangeQueue): RolloutCommands {
  const { clock, logger, entries, feeds } = state;
  // Changes staged in the queue and not yet committed, by rollout: later changes are validated
  // and computed against them (the store checks the same versions in the same transaction).
  const pending = new Map<string, Pending>();

  /** The rollout as every staged change leaves it: entry, rollout (undefined: none), and the pending change if any. */
  function current(name: string): { entry: Entry | undefined; rollout: Rollout | undefined; pending: Pending | undefined } {
    const p = pending.get(name);
    if (p !== undefined) return { entry: p.entry, rollout: p.rollout, pending: p };
    const e = entries.get(name);
    return { entry: e, rollout: e?.rollout, pending: undefined };
  }

  /**
   * Records a staged change as pending, computed from `basis` (the change pending before it, if
   * any); returns its link, its basis's, and the call that forgets it (once applied or failed).
   */
  function stage(name: string, entry: Entry, rollout: Rollout | undefined, reshapes: boolean, basis: Pending | undefined) {
    let done: () => void = () => undefined;
    const link: Link = { failed: false };
    const p: Pending = { entry, rollout, reshapes, settled: new Promise<void>((resolve) => (done = resolve)), link };
    pending.set(name, p);
    const forget = () => {
      if (pending.get(name) === p) pending.delete(name);
      done();
    };
    return { link, ...(basis === undefined ? {} : { basis: basis.link }), failed: forget, forget };
  }

  return {
    create(spec, caller) {
      return queue.staged((): Prepared<Rollout> => {
        const { rollout: existing, pending: p } = current(spec.name);
        if (existing !== undefined) throw new DomainError("already_exists", `rollout "${spec.name}" already exists`);
        const now = clock.now();
        const r = machine.createRollout(spec, { name: caller.actor, now });
        const e = newEntry(clock, r);
        const summary = `created: ${r.canaryVersion} over ${r.stableVersion}, ${r.steps.length} steps, weight ${r.weightBp} bp`;
        const { forget, ...marks } = stage(r.name, e, r, false, p);
        let events: AuditEvent[] = [];
        return {
          ...marks,
          commit: { put: r, expectedVersion: 0, events: [auditEvent(r, "created", caller, summary, healthView(e, now), now)] },
          applied(appended) {
            forget();
            entries.set(r.name, e);
            events = appended;
            logger.info({ rollout: r.name, actor: caller.actor, version: r.version }, "rollout created");
            return r;
          },
          publish() {
            feeds.publishEvents(events);
            if (entries.get(r.name) === e) feeds.publishHealth(healthView(e, clock.now()));
          },
        };
      });
    },

    change(name, caller, transition, expectedVersion = 0) {
      return queue.staged((): Prepared<Rollout> => {
        const { entry: e, rollout: cur, pending: p } = current(name);
        if (e === undefined || cur === undefined) throw rolloutNotFound(name);
        // The windows this change's snapshot is computed from must be as the pending one leaves them.
        if (p?.reshapes === true) return { after: p.settled };
        checkVersion(cur, expectedVersion, "; re-read it and retry");
        const now = clock.now();
        const t = transition(cur, { name: caller.actor, now });
        // "Unchanged" is answered from committed state only.
        if (t.unchanged === true) return p === undefined ? { answer: cur } : { after: p.settled };
        const next = t.rollout;
        const event = auditEvent(next, t.type, caller, t.summary, healthView({ ...e, rollout: next }, now), now);
        const { forget, ...marks } = stage(name, e, next, reshapes(cur, next), p);
        let events: AuditEvent[] = [];
        return {
          ...marks,
          commit: { put: next, expectedVersion: cur.version, events: [event] },
          applied(appended) {
            forget();
            applyCommitted(state, e, next);
            events = appended;
            logger.info({ rollout: name, actor: caller.actor, event: t.type, version: next.version, reason: caller.reason }, t.summary);
            return next;
          },
          publish() {
            feeds.publishEvents(events);
            if (entries.get(name) === e) feeds.publishHealth(healthView(e, clock.now()));
          },
        };
      });
    },

    delete(name, caller, expectedVersion = 0) {
      return queue.staged((): Prepared<void> => {
        const { entry: e, rollout: cur, pending: p } = current(name);
        if (e === undefined || cur === undefined) throw rolloutNotFound(name);
        if (p?.reshapes === true) return { after: p.settled };
        checkVersion(cur, expectedVersion, "");
        const now = clock.now();
        const last = healthView({ ...e, rollout: cur }, now);
        const event = auditEvent(cur, "deleted", caller, `deleted at ${cur.stage} (version ${cur.version})`, last, now);
        const { forget, ...marks } = stage(name, e, undefined, false, p);
        let events: AuditEvent[] = [];
        return {
          ...marks,
          commit: { remove: name, expectedVersion: cur.version, events: [event] },
          applied(appended) {
            forget();
            if (entries.get(name) === e) entries.delete(name);
            state.unflushed.delete(e);
            events = appended;
            logger.info({ rollout: name, actor: caller.actor }, "rollout deleted");
          },
          publish() {
            feeds.publishEvents(events);
            feeds.publishDeleted(last);
          },
        };
      });
    },
  };
}

/** True when applying `next` over `prev` empties or reshapes the windows (see applyCommitted). */
function reshapes(prev: Rollout, next: Rollout): boolean {
  return startsAfresh(prev, next) || next.analysis.windowMs !== prev.analysis.windowMs || next.analysis.intervalMs !== prev.analysis.intervalMs;
}
