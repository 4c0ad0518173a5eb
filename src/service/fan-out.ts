import { DomainError } from "../domain/errors.js";

/** A live subscription: an async iterable of items that ends when closed. */
export interface Subscription<T> extends AsyncIterable<T> {
  /** Stops the subscription; the iterator then ends. */
  close(): void;
}

/**
 * How a subscriber holds items it has not read yet.
 *
 * - `queue`: every item in order, at most `max`; a subscriber that falls further behind is
 *   ended with RESOURCE_EXHAUSTED (it can resume from what it last saw) rather than buffering
 *   without bound.
 * - `latest`: one item per key, the newest (a slow reader skips intermediate states); bounded
 *   by the number of keys.
 */
export type Backlog<T> = { readonly kind: "queue"; readonly max: number } | { readonly kind: "latest"; readonly key: (item: T) => string };

interface Pending<T> {
  /** Adds an item; returns false when the subscriber fell too far behind. */
  push(item: T): boolean;
  shift(): T | undefined;
}

function pendingOf<T>(backlog: Backlog<T>): Pending<T> {
  if (backlog.kind === "queue") return queueOf<T>(backlog.max);
  const byKey = new Map<string, T>();
  return {
    push(item) {
      const k = backlog.key(item);
      // Re-inserting moves the key to the end: items come out in arrival order.
      byKey.delete(k);
      byKey.set(k, item);
      return true;
    },
    shift() {
      const first = byKey.entries().next();
      if (first.done === true) return undefined;
      byKey.delete(first.value[0]);
      return first.value[1];
    },
  };
}

/**
 * Returns a FIFO of at most `max` items whose push and shift are O(1) however long the backlog:
 * a ring over an array that grows by doubling up to `max`. Array.prototype.shift moves every
 * remaining item, so draining a backlog of n cost O(n²).
 */
function queueOf<T>(max: number): Pending<T> {
  let ring: (T | undefined)[] = new Array<T | undefined>(Math.min(max, 16));
  let head = 0;
  let size = 0;
  return {
    push(item) {
      if (size >= max) return false;
      if (size === ring.length) {
        // Full but below max: unroll into a larger ring, oldest first.
        const next = new Array<T | undefined>(Math.min(max, ring.length * 2));
        for (let i = 0; i < size; i++) next[i] = ring[(head + i) % ring.length];
        ring = next;
        head = 0;
      }
      ring[(head + size) % ring.length] = item;
      size++;
      return true;
    },
    shift() {
      if (size === 0) return undefined;
      const item = ring[head];
      // Drop the reference so a delivered item can be collected.
      ring[head] = undefined;
      head = (head + 1) % ring.length;
      size--;
      return item;
    },
  };
}

/**
 * Returns a fan-out of items to live subscribers. Publishing never waits for a subscriber, so
 * a slow one holds up neither the publisher nor the others; one that goes away (its signal
 * aborts) is removed at once.
 */
export function createFanOut<T>(backlog: Backlog<T>) {
  const subscribers = new Set<(item: T) => void>();
  const closers = new Set<() => void>();
  return {
    /** Delivers items to every subscriber whose filter accepts them. */
    publish(...items: readonly T[]): void {
      for (const item of items) for (const s of subscribers) s(item);
    },
    /** Returns the number of live subscribers. */
    size(): number {
      return subscribers.size;
    },
    /** Ends every subscription (their iterators finish normally). */
    closeAll(): void {
      for (const c of [...closers]) c();
    },
    /** Subscribes to the items `accept` lets through from now on. */
    subscribe(accept: (item: T) => boolean, signal?: AbortSignal): Subscription<T> {
      const pending = pendingOf(backlog);
      let wake: (() => void) | undefined;
      let done = false;
      let failure: Error | undefined;
      const close = () => {
        done = true;
        subscribers.delete(listener);
        closers.delete(close);
        signal?.removeEventListener("abort", close);
        wake?.();
      };
      const listener = (item: T) => {
        if (done || !accept(item)) return;
        if (!pending.push(item)) {
          failure = new DomainError("resource_exhausted", "subscriber fell too far behind; resume from the last item received");
          close();
          return;
        }
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
              const item = pending.shift();
              if (item !== undefined) {
                yield item;
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

/** A fan-out of items of type T. */
export type FanOut<T> = ReturnType<typeof createFanOut<T>>;
