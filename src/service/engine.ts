import type { Logger } from "pino";
import type { AuditEvent } from "../domain/audit-chain.js";
import type { Clock } from "../domain/clock.js";
import { checkPromotion } from "../domain/decision.js";
import type { DecisionType, RolloutHealth } from "../domain/health.js";
import type { OutcomeSample } from "../domain/outcome.js";
import type { Rollout, RolloutSpec, Variant } from "../domain/rollout.js";
import type { RouteTable } from "../domain/routing.js";
import type { Store } from "../store/store.js";
import { createChangeQueue, createRolloutCommands, reconcile, type TransitionFn } from "./engine/commands.js";
import { entryOf, loadEntries, sortedEntries, type EngineState } from "./engine/entries.js";
import { follow, pauseEvaluation, tick } from "./engine/evaluator.js";
import { createFeeds, type HealthChange } from "./engine/feeds.js";
import { healthView, preview } from "./engine/health-view.js";
import { createWindows } from "./engine/windows.js";
import type { Subscription } from "./fan-out.js";

export { DATABASE_PAUSE, EVALUATOR } from "./engine/evaluator.js";
export { MAX_EVENT_BACKLOG, type HealthChange } from "./engine/feeds.js";

/** Who asks for a change and why. */
export interface Caller {
  /** The caller's token name ("evaluator" for automatic decisions). */
  readonly actor: string;
  readonly reason: string;
  /**
   * Structured context of what asked for the change, kept in the event's snapshot under
   * `detail` (the Alertmanager receiver records the alert's name and fingerprint there).
   */
  readonly detail?: Readonly<Record<string, string>>;
}

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
  /** An evaluator round that evaluated at least one rollout ended, `seconds` after it began. */
  round?(seconds: number): void;
}

/** What one evaluation decided, for its trace span. */
export interface EvaluationTrace {
  readonly stage: string;
  /** Index of the current step (before any transition). */
  readonly step: number;
  readonly weightBp: number;
  readonly decision: DecisionType;
  readonly reason: string;
  readonly score: number;
  /** Gates that failed or lack samples: what blocks a promotion. */
  readonly blocking: readonly string[];
  /** The transition it applied ("promoted", "rolled_back", …), or undefined when it changed nothing. */
  readonly acted: string | undefined;
  readonly dryRun: boolean;
}

/**
 * Hooks the server uses to trace the evaluator (tracing.ts; absent when tracing is off). Each
 * runs `fn` inside its span, so what `fn` commits to the store is the span's child.
 */
export interface EngineTracer {
  /** One evaluator round over `due` rollouts. */
  round(due: number, fn: () => Promise<void>): Promise<void>;
  /** One rollout's evaluation; `fn` tells what was decided through `decided`. */
  evaluation(rollout: string, fn: (decided: (d: EvaluationTrace) => void) => Promise<void>): Promise<void>;
}

/** Options of createEngine. */
export interface EngineOptions {
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly observer?: EngineObserver;
  /** Traces evaluator rounds when tracing is on. */
  readonly tracer?: EngineTracer | undefined;
  /**
   * Several writers on one store: called when this engine holds back its own events behind
   * other writers' events it has not read yet; the caller should `reconcile` soon.
   */
  readonly onEventGap?: () => void;
  /**
   * Writes out the log lines buffered so far, synchronously (the server's asynchronous log
   * destination): called after the lines of committed changes and decisions and before they
   * are answered or published, so that a crash cannot lose a line whose change was seen.
   */
  readonly flushLog?: () => void;
}

/**
 * The rollout engine: the in-memory state of every rollout — configuration, route table,
 * sliding windows, evaluator state — kept equal to the store.
 *
 * Reads (routeTable, get, list, health) never touch the store. Every change, operator's or
 * evaluator's, runs through one queue so that read-modify-write cycles never interleave, is
 * committed durably with its audit events before anyone is answered, and only then becomes
 * visible. Outcomes go straight into the windows (O(1) each); `flush` writes them to the store.
 * Its parts live in ./engine/: commands.ts (the commands and the queue), evaluator.ts (the
 * evaluator loop), windows.ts (outcomes and window persistence), health-view.ts (the one health
 * view), audit-snapshots.ts (event snapshots), feeds.ts (WatchEvents and WatchHealth).
 */
export interface Engine {
  /** Loads every rollout, its evaluator state and its windows from the store; call once, before serving. */
  load(): Promise<void>;
  /** Returns a rollout's route table (for callers that route many keys); NOT_FOUND if there is no such rollout. */
  routeTable(name: string): RouteTable;
  /** Returns a rollout; NOT_FOUND if there is none. */
  get(name: string): Rollout;
  /** Returns every rollout, by name. */
  list(): Rollout[];
  /** Creates a rollout at its first step; ALREADY_EXISTS if the name is taken. */
  create(spec: RolloutSpec, caller: Caller): Promise<Rollout>;
  /**
   * Applies a state-machine transition to a rollout, in the change queue, and returns the new
   * rollout. `expectedVersion` (when > 0) must equal the stored version, else ABORTED. A
   * transition that changes nothing bumps nothing and records nothing.
   */
  change(name: string, caller: Caller, transition: TransitionFn, expectedVersion?: number): Promise<Rollout>;
  /** Deletes a rollout (its events stay in the log); `expectedVersion` as for change. */
  delete(name: string, caller: Caller, expectedVersion?: number): Promise<void>;
  /**
   * Records validated outcomes into a rollout's windows (O(1) each) and returns how many were
   * accepted and how many ignored for falling outside the window.
   */
  recordOutcomes(name: string, samples: readonly OutcomeSample[]): { accepted: number; ignored: number };
  /**
   * Says in every rollout's Health (and WatchHealth) that the evaluator is paused, with the
   * reason, or (undefined) no longer; several replicas: the server calls it while the database
   * is unreachable.
   */
  pauseEvaluation(reason: string | undefined): void;
  /** Returns a rollout's health now: the one health view (engine/health-view.ts). */
  health(name: string): RolloutHealth;
  /** Returns the health of every rollout, by name: `health` of each. */
  allHealth(): RolloutHealth[];
  /**
   * Throws FAILED_PRECONDITION when a promotion without force must be refused (decision.ts
   * `checkPromotion`: some gate fails or lacks samples, each named with its values).
   */
  checkPromotion(name: string): void;
  /**
   * Evaluates every live rollout whose interval has come round and applies what each
   * evaluation causes. Called by a timer; tests call it after moving a manual clock.
   */
  tick(): Promise<void>;
  /**
   * On a replica that is not the evaluator (several replicas on one database): for every live
   * rollout whose interval has come round, reads the other replicas' windows and the evaluator's
   * stored state and publishes the health the evaluator sees, deciding nothing. Called by the
   * same timer as `tick` while another replica holds the evaluator lock.
   */
  follow(): Promise<void>;
  /** Writes changed window buckets and evaluator state to the store. */
  flush(): Promise<void>;
  /**
   * Reads every rollout back from the store and makes other writers' changes visible here
   * (several replicas on one database); in the change queue. With `withAnalysis` (a replica
   * taking over as the evaluator) the stored evaluator state replaces the local one. Returns how
   * many rollouts changed. With `only`, just those rollouts (and any the new events name) are
   * read back: another replica's NOTIFY names the rollout it changed.
   */
  reconcile(withAnalysis?: boolean, only?: ReadonlySet<string>): Promise<number>;
  /** Returns events after a sequence number, oldest first, of one rollout or (undefined) all. */
  listEvents(rollout: string | undefined, afterSeq: number, limit: number): Promise<AuditEvent[]>;
  /** Returns the highest audit seq in the log (0 when empty). */
  lastSeq(): Promise<number>;
  /** Subscribes to audit events appended from now on, of one rollout or (undefined) all. */
  subscribeEvents(rollout: string | undefined, signal?: AbortSignal): Subscription<AuditEvent>;
  /** Subscribes to health updates from now on, of one rollout or (undefined) all. */
  subscribeHealth(rollout: string | undefined, signal?: AbortSignal): Subscription<HealthChange>;
  /** Returns the number of live subscribers: audit events and health. */
  subscribers(): { events: number; health: number };
  /** Ends every live subscription so that streaming calls finish with OK before shutdown. */
  shutdown(): void;
  /** Waits for every queued change (and evaluator round) to finish. */
  drain(): Promise<void>;
}

/** Returns the rollout engine over a store (see Engine). */
export function createEngine(opts: EngineOptions): Engine {
  const observer = opts.observer ?? {};
  const state: EngineState = {
    store: opts.store,
    clock: opts.clock,
    logger: opts.logger,
    observer,
    tracer: opts.tracer,
    entries: new Map(),
    unflushed: new Set(),
    feeds: createFeeds(observer, opts.onEventGap),
    flushLog: opts.flushLog ?? (() => undefined),
  };
  const { store, clock, logger, feeds } = state;
  const queue = createChangeQueue(store, state.flushLog);
  const commands = createRolloutCommands(state, queue);
  const windows = createWindows(state);

  return {
    async load() {
      await loadEntries(state);
      feeds.setWatermark(await store.lastSeq());
      const restored = await windows.restore();
      logger.info({ rollouts: state.entries.size, windowBuckets: restored }, "state loaded");
    },
    routeTable: (name) => entryOf(state, name).table,
    get: (name) => entryOf(state, name).rollout,
    list: () => sortedEntries(state).map((e) => e.rollout),
    create: commands.create,
    change: commands.change,
    delete: commands.delete,
    recordOutcomes: windows.recordOutcomes,
    health: (name) => feeds.withPause(healthView(entryOf(state, name), clock.now())),
    allHealth: () => sortedEntries(state).map((e) => feeds.withPause(healthView(e, clock.now()))),
    pauseEvaluation: (reason) => pauseEvaluation(state, reason),
    checkPromotion(name) {
      const e = entryOf(state, name);
      checkPromotion(e.rollout, preview(e, clock.now()).gates);
    },
    tick: () => tick(state, queue),
    follow: () => follow(state, queue),
    flush: windows.flush,
    reconcile: (withAnalysis = false, only) => queue.serial(() => reconcile(state, withAnalysis, only)),
    listEvents: (rollout, afterSeq, limit) => store.listEvents(rollout === undefined ? { afterSeq, limit } : { rollout, afterSeq, limit }),
    lastSeq: () => store.lastSeq(),
    subscribeEvents: feeds.subscribeEvents,
    subscribeHealth: feeds.subscribeHealth,
    subscribers: feeds.subscribers,
    shutdown: feeds.closeAll,
    async drain() {
      await queue.serial(async () => undefined);
    },
  };
}
