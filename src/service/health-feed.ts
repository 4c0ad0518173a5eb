import type { RolloutHealth } from "../domain/health.js";

/** One health update: a rollout's health, or its last health when it was deleted. */
export interface HealthChange {
  readonly health: RolloutHealth;
  readonly deleted: boolean;
}

/** A live subscription to health updates. */
export interface HealthSubscription extends AsyncIterable<HealthChange> {
  /** Stops the subscription; the iterator then ends. */
  close(): void;
}

/**
 * Returns a fan-out of health updates to WatchHealth subscribers.
 *
 * Each subscriber keeps at most one pending update per rollout (latest wins): a slow reader
 * skips intermediate states instead of buffering without bound, and publishing never waits
 * for anyone, so the evaluator and other subscribers are never held up. A subscriber that
 * goes away (its signal aborts) is removed at once.
 */
export function createHealthFeed() {
  const subscribers = new Set<(c: HealthChange) => void>();
  const closers = new Set<() => void>();
  return {
    /** Delivers an update to every interested subscriber. */
    publish(change: HealthChange): void {
      for (const s of subscribers) s(change);
    },
    /** Returns the number of live subscribers. */
    size(): number {
      return subscribers.size;
    },
    /** Ends every subscription (their iterators finish normally). */
    closeAll(): void {
      for (const c of [...closers]) c();
    },
    /** Subscribes to one rollout's updates, or every rollout's when `rollout` is undefined. */
    subscribe(rollout: string | undefined, signal?: AbortSignal): HealthSubscription {
      const pending = new Map<string, HealthChange>();
      let wake: (() => void) | undefined;
      let done = false;
      const listener = (c: HealthChange) => {
        if (done || (rollout !== undefined && c.health.rollout !== rollout)) return;
        // Re-inserting moves the rollout to the end: updates come out in arrival order.
        pending.delete(c.health.rollout);
        pending.set(c.health.rollout, c);
        wake?.();
      };
      const close = () => {
        done = true;
        subscribers.delete(listener);
        closers.delete(close);
        signal?.removeEventListener("abort", close);
        wake?.();
      };
      subscribers.add(listener);
      closers.add(close);
      signal?.addEventListener("abort", close);
      return {
        close,
        async *[Symbol.asyncIterator]() {
          try {
            for (;;) {
              const first = pending.entries().next();
              if (!first.done) {
                pending.delete(first.value[0]);
                yield first.value[1];
                continue;
              }
              if (done) return;
              await new Promise<void>((resolve) => (wake = resolve));
              wake = undefined;
            }
          } finally {
            close();
          }
        },
      };
    },
  };
}

/** The health fan-out type. */
export type HealthFeed = ReturnType<typeof createHealthFeed>;
