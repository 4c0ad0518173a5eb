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
  /** Sends newly appended events to their subscribers. */
  publishEvents(appended: readonly AuditEvent[]): void;
  /** Marks every event up to `seq` as already known (at load). */
  setWatermark(seq: number): void;
  /**
   * Publishes the events other writers appended since the watermark (several replicas on one
   * database), read with `list`, skipping those this replica published itself; moves the watermark.
   * The events are read first, then `apply` runs (it makes at least the state they describe
   * visible), and only then are they published: a watcher told of an event finds its change.
   */
  catchUp(list: (afterSeq: number) => Promise<AuditEvent[]>, apply?: () => Promise<void>): Promise<number>;
  /** Sends a rollout's health after an evaluation or a change. */
  publishHealth(health: RolloutHealth): void;
  /** Sends a rollout's last health as deleted, and tells the observer to forget it. */
  publishDeleted(last: RolloutHealth): void;
  subscribeEvents(rollout: string | undefined, signal?: AbortSignal): Subscription<AuditEvent>;
  subscribeHealth(rollout: string | undefined, signal?: AbortSignal): Subscription<HealthChange>;
  subscribers(): { events: number; health: number };
  closeAll(): void;
}

/** Returns the feeds, reporting health and deletions to `observer`. */
/** Events read per query when catching up with other writers. */
export const CATCH_UP_PAGE = 500;

export function createFeeds(observer: EngineObserver): Feeds {
  // Events: every one, in order (a subscriber too far behind is ended and resumes by seq).
  const events = createFanOut<AuditEvent>({ kind: "queue", max: MAX_EVENT_BACKLOG });
  // Health: the latest per rollout; a slow WatchHealth reader skips intermediate states.
  const health = createFanOut<HealthChange>({ kind: "latest", key: (c) => c.health.rollout });
  let watermark = 0;
  const ownSinceWatermark = new Set<number>();
  return {
    publishEvents(appended) {
      for (const e of appended) if (e.seq > watermark) ownSinceWatermark.add(e.seq);
      events.publish(...appended);
    },
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
      await apply?.();
      const theirs = read.filter((e) => !ownSinceWatermark.has(e.seq));
      if (theirs.length > 0) events.publish(...theirs);
      for (const e of read) {
        ownSinceWatermark.delete(e.seq);
        watermark = Math.max(watermark, e.seq);
      }
      return theirs.length;
    },
    publishHealth(h) {
      observer.health?.(h);
      health.publish({ health: h, deleted: false });
    },
    publishDeleted(last) {
      health.publish({ health: last, deleted: true });
      observer.deleted?.(last.rollout);
    },
    subscribeEvents(rollout, signal) {
      return events.subscribe((e) => rollout === undefined || e.rollout === rollout, signal);
    },
    subscribeHealth(rollout, signal) {
      return health.subscribe((c) => rollout === undefined || c.health.rollout === rollout, signal);
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
