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
   */
  catchUp(list: (afterSeq: number) => Promise<AuditEvent[]>): Promise<number>;
  /** Sends a rollout's health after an evaluation or a change. */
  publishHealth(health: RolloutHealth): void;
  /** Sends a rollout's last health as deleted, and tells the observer to forget it. */
  publishDeleted(last: RolloutHealth): void;
  subscribeEvents(rollout: string | undefined, signal?: AbortSignal): Subscription<AuditEvent>;
  subscribeHealth(rollout: string | undefined, signal?: AbortSignal): Subscription<HealthChange>;
  subscribers(): { events: number; health: number };
  /** How many of this replica's own events above the watermark are remembered for `catchUp` (diagnostics). */
  ownPending(): number;
  closeAll(): void;
}

/** Events read per query when catching up with other writers. */
export const CATCH_UP_PAGE = 500;

/** Returns the feeds, reporting health and deletions to `observer`. */
export function createFeeds(observer: EngineObserver): Feeds {
  // Events: every one, in order (a subscriber too far behind is ended and resumes by seq).
  const events = createFanOut<AuditEvent>({ kind: "queue", max: MAX_EVENT_BACKLOG });
  // Health: the latest per rollout; a slow WatchHealth reader skips intermediate states.
  const health = createFanOut<HealthChange>({ kind: "latest", key: (c) => c.health.rollout });
  let watermark = 0;
  // Own events above the watermark, so that catchUp does not publish them twice. An own event
  // right above the watermark moves it instead: then nothing is remembered while this replica
  // is the only writer (SQLite, whose seqs have no gaps, never calls catchUp at all), and only
  // the events after another writer's gap wait here for the next catchUp.
  const ownSinceWatermark = new Set<number>();
  const advance = () => {
    while (ownSinceWatermark.delete(watermark + 1)) watermark += 1;
  };
  return {
    publishEvents(appended) {
      for (const e of appended) {
        if (e.seq === watermark + 1) {
          watermark = e.seq;
          advance();
        } else if (e.seq > watermark) ownSinceWatermark.add(e.seq);
      }
      events.publish(...appended);
    },
    setWatermark(seq) {
      watermark = seq;
      for (const s of ownSinceWatermark) if (s <= seq) ownSinceWatermark.delete(s);
      advance();
    },
    async catchUp(list) {
      let published = 0;
      for (;;) {
        const page = await list(watermark);
        // At or below the watermark: published already (an own event may have moved it meanwhile).
        const theirs = page.filter((e) => e.seq > watermark && !ownSinceWatermark.has(e.seq));
        if (theirs.length > 0) events.publish(...theirs);
        published += theirs.length;
        for (const e of page) {
          ownSinceWatermark.delete(e.seq);
          watermark = Math.max(watermark, e.seq);
        }
        if (page.length < CATCH_UP_PAGE) {
          advance();
          return published;
        }
      }
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
    ownPending: () => ownSinceWatermark.size,
    closeAll() {
      events.closeAll();
      health.closeAll();
    },
  };
}
