import type { Logger } from "pino";
import { initialAnalysisState, parseAnalysisState, type AnalysisState } from "../../domain/analysis.js";
import type { Clock } from "../../domain/clock.js";
import { rolloutNotFound } from "../../domain/errors.js";
import type { Rollout, Variant } from "../../domain/rollout.js";
import { compileRoutes, type RouteTable } from "../../domain/routing.js";
import { createWindow, type BucketSnapshot, type SlidingWindow } from "../../domain/sliding-window.js";
import type { Store } from "../../store/store.js";
import type { EngineObserver, EngineTracer } from "../engine.js";
import type { Feeds } from "./feeds.js";

/**
 * The engine's registry: one live entry per rollout — configuration, route table, sliding
 * windows, evaluator state — and what every part of the engine shares.
 */

/** One rollout's live state. */
export interface Entry {
  rollout: Rollout;
  table: RouteTable;
  windows: Record<Variant, SlidingWindow>;
  analysis: AnalysisState;
  /** True when `analysis` changed since the last flush. */
  analysisDirty: boolean;
  /** When the evaluator next looks at it. */
  nextEvalAt: number;
  /**
   * The other replicas' window buckets as last read from the store (several replicas on one
   * database; undefined with one writer, or when they have none): every view of the rollout's
   * health merges them with this replica's own windows.
   */
  peers?: Readonly<Record<Variant, readonly BucketSnapshot[]>>;
}

/** What every part of the engine shares: its dependencies and the live state of every rollout. */
export interface EngineState {
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly observer: EngineObserver;
  /** Traces evaluator rounds; undefined when tracing is off. */
  readonly tracer: EngineTracer | undefined;
  /** Every rollout's live state, by name. */
  readonly entries: Map<string, Entry>;
  /** Entries with window buckets or evaluator state that the next flush must write. */
  readonly unflushed: Set<Entry>;
  readonly feeds: Feeds;
  /** Writes buffered log lines out now (EngineOptions.flushLog). */
  readonly flushLog: () => void;
}

/** Returns the live state of a rollout just created or loaded: empty windows, first evaluation one interval away. */
export function newEntry(clock: Clock, r: Rollout, analysis: AnalysisState = initialAnalysisState()): Entry {
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

/** Returns a rollout's entry, or throws NOT_FOUND. */
export function entryOf(state: EngineState, name: string): Entry {
  const e = state.entries.get(name);
  if (e === undefined) throw rolloutNotFound(name);
  return e;
}

/** Returns every entry, by rollout name. */
export function sortedEntries(state: EngineState): Entry[] {
  return [...state.entries.values()].sort((a, b) => (a.rollout.name < b.rollout.name ? -1 : a.rollout.name > b.rollout.name ? 1 : 0));
}

/** Loads every rollout and its evaluator state from the store into the registry. */
export async function loadEntries(state: EngineState): Promise<void> {
  for (const { rollout, analysis } of await state.store.loadRollouts()) {
    state.entries.set(rollout.name, newEntry(state.clock, rollout, analysis === undefined ? initialAnalysisState() : parseAnalysisState(analysis)));
  }
}
