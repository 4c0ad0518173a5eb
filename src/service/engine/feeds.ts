import type { AuditEvent } from "../../domain/audit-chain.js";
import type { RolloutHealth } from "../../domain/health.js";
import type { EngineObserver } from "../engine.js";
import { createFanOut, type Subscription } from "../fan-out.js";

/**
 * What the engine tells its watchers: audit events as they are appended (WatchEvents) and
 * each rollout's latest health (WatchHealth), plus the observer hooks the server counts with.
 */

/** One health update: a rollout's health, or its last health when it was deleted. */
export interface HealthChange {
  readonly health: RolloutHealth;
  readonly deleted: boolean;
}

/** Most audit events a WatchEvents subscriber may fall behind by before its stream is ended (it can resume). */
export const MAX_EVENT_BACKLOG = 10_000;

/** The engine's feeds (see the module comment). */
export interface Feeds {
  /** Sends newly appended events to their subscribers (in seq order, see createFeeds). */
  publishEvents(appended: readonly AuditEvent[]): void;
  /** Marks every event up to `seq` as already known (at load). */
  setWatermark(seq: number): void;
  /** Own events held back behind other writers' unread ones (diagnostics; 0 with one writer). */
  ownPending(): number;
  /**
   * Publishes the events other writers appended since the watermark (several replicas on one
   * database), read with `list`, with any own events held behind them, in seq order; moves the
   * watermark.
   * The events are read first, then `apply` runs with them (it makes at least the state they
   * describe visible), and only then are they published: a watcher told of an event finds its change.
   */
  catchUp(list: (afterSeq: number) => Promise<AuditEvent[]>, apply?: (read: readonly AuditEvent[]) => Promise<void>): Promise<number>;
  /** Sends a rollout's health after an evaluation or a change (with the pause, if any, in its message). */
  publishHealth(health: RolloutHealth): void;
  /**
   * Says (a reason) or stops saying (undefined) that the evaluator is paused; every health this
   * engine shows says so in its message meanwhile. Returns whether it changed.
   */
  setPaused(reason: string | undefined): boolean;
  /** Returns `health` with the pause, if any, at the start of its message. */
  withPause(health: RolloutHealth): RolloutHealth;
  /** Sends a rollout's last health as deleted, and tells the observer to forget it. */
  publishDeleted(last: RolloutHealth): void;
  subscribeEvents(rollout: string | undefined, signal?: AbortSignal): Subscription<AuditEvent>;
  subscribeHealth(rollout: string | undefined, signal?: AbortSignal): Subscription<HealthChange>;
  subscribers(): { events: number; health: number };
  closeAll(): void;
}

/** The filter of a watch of every rollout. */
const everything = () => true;

/** Events read per query when catching up with other writers. */
export const CATCH_UP_PAGE = 500;

/**
 * Returns the feeds, reporting health and deletions to `observer`. `onGap` (several writers on
 * one store) is called when an own event is held back behind other writers' unread events: the
 * caller should reconcile soon, which fills the gap.
 */
export function createFeeds(observer: EngineObserver, onGap?: () => void): Feeds {
  // Events: every one, in order (a subscriber too far behind is ended and resumes by seq).
  const events = createFanOut<AuditEvent>({ kind: "queue", max: MAX_EVENT_BACKLOG }, (e) => e.rollout);
  // Health: the latest per rollout; a slow WatchHealth reader skips intermediate states.
  const health = createFanOut<HealthChange>({ kind: "latest", key: (c) => c.health.rollout }, (c) => c.health.rollout);
  // Every event up to `watermark` has been published, in seq order. With other writers
  // (`onGap` given: several replicas) an own event above a gap — another replica's earlier
  // event not read yet — is held until catchUp fills the gap, so that no watcher is told a seq
  // (a WatchRoutes revision) before every change below it. The chain's seqs are consecutive.
  let watermark = 0;
  const held = new Map<number, AuditEvent>();
  let paused: string | undefined;
  const withPause = (h: RolloutHealth): RolloutHealth => (paused === undefined ? h : { ...h, message: `${paused}; ${h.message}` });
  const advance = (e: AuditEvent) => {
    events.publish(e);
    watermark = e.seq;
    for (let next = held.get(watermark + 1); next !== undefined; next = held.get(watermark + 1)) {
      held.delete(next.seq);
      events.publish(next);
      watermark = next.seq;
    }
  };
  return {
    publishEvents(appended) {
      if (onGap === undefined) {
        // One writer: every event is the next one.
        if (appended.length > 0) events.publish(...appended);
        for (const e of appended) watermark = Math.max(watermark, e.seq);
        return;
      }
      let gap = false;
      for (const e of appended) {
        if (e.seq <= watermark) continue;
        if (e.seq === watermark + 1) advance(e);
        else {
          held.set(e.seq, e);
          gap = true;
        }
      }
      if (gap) onGap();
    },
    ownPending: () => held.size,
    setWatermark(seq) {
      watermark = seq;
    },
    async catchUp(list, apply) {
      const read: AuditEvent[] = [];
      for (let after = watermark; ; ) {
        const page = await list(after);
        read.push(...page);
        if (page.length > 0) after = page[page.length - 1]!.seq;
        if (page.length < CATCH_UP_PAGE) break;
      }
      await apply?.(read);
      let published = 0;
      for (const e of read) {
        if (e.seq <= watermark) continue;
        const own = held.get(e.seq);
        if (own !== undefined) held.delete(e.seq);
        else published++;
        if (e.seq === watermark + 1) advance(own ?? e);
        else held.set(e.seq, own ?? e);
      }
      return published;
    },
    publishHealth(h) {
      const shown = withPause(h);
      observer.health?.(shown);
      health.publish({ health: shown, deleted: false });
    },
    setPaused(reason) {
      if (reason === paused) return false;
      paused = reason;
      return true;
    },
    withPause,
    publishDeleted(last) {
      health.publish({ health: last, deleted: true });
      observer.deleted?.(last.rollout);
    },
    subscribeEvents(rollout, signal) {
      return events.subscribe(rollout === undefined ? everything : { key: rollout }, signal);
    },
    subscribeHealth(rollout, signal) {
      return health.subscribe(rollout === undefined ? everything : { key: rollout }, signal);
    },
    subscribers() {
      return { events: events.size(), health: health.size() };
    },
    closeAll() {
      events.closeAll();
      health.closeAll();
    },
  };
}
