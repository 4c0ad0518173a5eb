import type { AuditEvent } from "../domain/audit-chain.js";
import { DomainError } from "../domain/errors.js";

/** A live subscription to appended audit events. */
export interface EventSubscription extends AsyncIterable<AuditEvent> {
  /** Stops the subscription; the iterator then ends. */
  close(): void;
}

/** Most events a subscriber may fall behind by before its stream is ended (it can resume). */
export const MAX_EVENT_BACKLOG = 10_000;

/**
 * Returns a fan-out of appended audit events to live subscribers.
 *
 * A subscriber that falls more than MAX_EVENT_BACKLOG events behind is ended with
 * RESOURCE_EXHAUSTED rather than buffering without bound; it resumes from its last seq.
 */
export function createEventFeed() {
  const subscribers = new Set<(e: AuditEvent) => void>();
  const closers = new Set<() => void>();
  return {
    /** Ends every subscription (their iterators finish normally). */
    closeAll(): void {
      for (const c of [...closers]) c();
    },
    /** Delivers events to every subscriber. */
    publish(events: readonly AuditEvent[]): void {
      for (const e of events) for (const s of subscribers) s(e);
    },
    /** Returns the number of live subscribers. */
    size(): number {
      return subscribers.size;
    },
    /** Subscribes to events appended from now on, optionally of one rollout only. */
    subscribe(rollout: string | undefined, signal?: AbortSignal): EventSubscription {
      const queue: AuditEvent[] = [];
      let wake: (() => void) | undefined;
      let done = false;
      let failure: Error | undefined;
      const listener = (e: AuditEvent) => {
        if (done || (rollout !== undefined && e.rollout !== rollout)) return;
        if (queue.length >= MAX_EVENT_BACKLOG) {
          failure = new DomainError("resource_exhausted", `subscriber fell ${MAX_EVENT_BACKLOG} events behind; resume from the last seq received`);
          close();
          return;
        }
        queue.push(e);
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
              const e = queue.shift();
              if (e !== undefined) {
                yield e;
                continue;
              }
              if (failure !== undefined) throw failure;
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

/** The event fan-out type. */
export type EventFeed = ReturnType<typeof createEventFeed>;
