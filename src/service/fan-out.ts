import { DomainError } from "../domain/errors.js";

/**
 * Where a subscription in push mode delivers its items (Subscription.push): the fan-out calls
 * `write` as items are published, in the publisher's turn, while the consumer can take them.
 */
export interface Sink<T> {
  /**
   * Takes one item. Returns true to be given the next one at once; false to have the next ones
   * held in the subscription's backlog (see Backlog) until the consumer calls `resume`.
   */
  write(item: T): boolean;
  /**
   * Called once, after the last item: `error` is undefined when the subscription was closed
   * (by either side, or at shutdown), the RESOURCE_EXHAUSTED error when it fell too far behind.
   * Items held when it was closed are given to `write` first (as the consumer resumes).
   */
  end(error: Error | undefined): void;
}

/** A source of items that pushes them to one sink, holding them while the sink cannot take them. */
export interface Pushable<T> {
  /** Starts delivering to `sink`: the items held so far at once (while it takes them), then as they come. */
  push(sink: Sink<T>): void;
  /** Tells the source that its sink can take items again; gives it those held. */
  resume(): void;
  /** Stops the source: the sink's `end` is called once what is held has been taken. */
  close(): void;
}

/**
 * A live subscription. Its items are held (in its backlog) until it is consumed in one of two
 * ways, never both: iterated (an async iterable that ends when closed), or pushed to a sink
 * (`push`, then `resume` whenever the sink can take items again).
 */
export interface Subscription<T> extends Pushable<T>, AsyncIterable<T> {}

/**
 * Returns the items of `source` as an async iterable: a sink that takes one item each time the
 * iterator is asked for the next one, so that the others wait in the source's backlog as they
 * would for a slow sink. The source is started (`push`) when the iteration starts, and closed
 * when it stops.
 */
export async function* iterate<T>(source: Pushable<T>): AsyncGenerator<T, void, undefined> {
  let item: T | undefined;
  let wake: (() => void) | undefined;
  let over = false;
  let error: Error | undefined;
  try {
    source.push({
      write(x) {
        item = x;
        wake?.();
        return false;
      },
      end(e) {
        over = true;
        error = e;
        wake?.();
      },
    });
    for (;;) {
      if (item !== undefined) {
        const x = item;
        item = undefined;
        yield x;
        source.resume();
        continue;
      }
      if (over) {
        if (error !== undefined) throw error;
        return;
      }
      await new Promise<void>((r) => (wake = r));
      wake = undefined;
    }
  } finally {
    source.close();
  }
}

/**
 * How a subscriber holds items it has not taken yet.
 *
 * - `queue`: every item in order, at most `max`; a subscriber that falls further behind is
 *   ended with RESOURCE_EXHAUSTED (it can resume from what it last saw) rather than buffering
 *   without bound.
 * - `latest`: one item per key, the newest (a slow reader skips intermediate states); bounded
 *   by the number of keys.
 */
export type Backlog<T> = { readonly kind: "queue"; readonly max: number } | { readonly kind: "latest"; readonly key: (item: T) => string };

/**
 * Which items a subscriber gets: those a predicate accepts, or those whose key (the fan-out's
 * `keyOf`) is `key` — looked up on publish rather than asked of every subscriber, so that
 * publishing to one of many keys costs only that key's subscribers.
 */
export type Filter<T> = ((item: T) => boolean) | { readonly key: string };

interface Pending<T> {
  /** Adds an item; returns false when the subscriber fell too far behind. */
  push(item: T): boolean;
  shift(): T | undefined;
  readonly size: number;
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
      if (byKey.size === 0) return undefined;
      const first = byKey.entries().next();
      if (first.done === true) return undefined;
      byKey.delete(first.value[0]);
      return first.value[1];
    },
    get size() {
      return byKey.size;
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
    get size() {
      return size;
    },
  };
}

type Listener<T> = (item: T) => void;

/**
 * Returns a fan-out of items to live subscribers. Publishing never waits for a subscriber, so
 * a slow one holds up neither the publisher nor the others; one that goes away (its signal
 * aborts) is removed at once. `keyOf` (needed by key filters) names an item's key.
 *
 * A subscriber in push mode is handed each item in the publisher's turn — no promise, no
 * iterator step per item, which at 10,000 WatchHealth streams cost more than the writes
 * (bench/SOAK-STREAMS.md); the iterator is a sink that takes one item each time it is asked for
 * the next, so both consumers see the same items.
 */
export function createFanOut<T>(backlog: Backlog<T>, keyOf?: (item: T) => string) {
  /** Subscribers with a predicate (or none): every item is offered to each. */
  const everyItem = new Set<Listener<T>>();
  /** Subscribers by key. */
  const byKey = new Map<string, Set<Listener<T>>>();
  const closers = new Set<() => void>();
  let count = 0;

  function add(filter: Filter<T>, listener: Listener<T>): () => void {
    count++;
    if (typeof filter === "function") {
      everyItem.add(listener);
      return () => {
        if (everyItem.delete(listener)) count--;
      };
    }
    if (keyOf === undefined) throw new Error("fan-out: a key filter needs keyOf");
    let set = byKey.get(filter.key);
    if (set === undefined) byKey.set(filter.key, (set = new Set()));
    set.add(listener);
    return () => {
      const s = byKey.get(filter.key);
      if (s === undefined || !s.delete(listener)) return;
      count--;
      if (s.size === 0) byKey.delete(filter.key);
    };
  }

  return {
    /** Delivers items to every subscriber whose filter accepts them. */
    publish(...items: readonly T[]): void {
      for (const item of items) {
        if (keyOf !== undefined && byKey.size > 0) {
          const keyed = byKey.get(keyOf(item));
          if (keyed !== undefined) for (const s of keyed) s(item);
        }
        for (const s of everyItem) s(item);
      }
    },
    /** Returns the number of live subscribers. */
    size(): number {
      return count;
    },
    /** Ends every subscription (their iterators finish normally, their sinks' `end` is called). */
    closeAll(): void {
      for (const c of [...closers]) c();
    },
    /** Subscribes to the items `filter` lets through from now on; they are held until consumed. */
    subscribe(filter: Filter<T>, signal?: AbortSignal): Subscription<T> {
      const accept = typeof filter === "function" ? filter : undefined;
      const pending = pendingOf(backlog);
      let sink: Sink<T> | undefined;
      // Whether the sink takes the next item at once (else it is held); outside `deliver`,
      // ready implies that nothing is held.
      let ready = false;
      // Set while the sink is being written to: what is published meanwhile (the sink's write
      // led to it) is held and delivered next, and a close waits for the write to return.
      let busy = false;
      let closed = false;
      let ended = false;
      let failure: Error | undefined;
      const finish = () => {
        if (ended || sink === undefined) return;
        ended = true;
        sink.end(failure);
      };
      const close = () => {
        if (closed) return;
        closed = true;
        remove();
        closers.delete(close);
        signal?.removeEventListener("abort", close);
        // What is held still goes out as the sink resumes; then it ends.
        if (ready && !busy) finish();
      };
      /** Writes `first` (or the oldest held item), then held items, while the sink takes them. */
      const deliver = (first: T | undefined) => {
        busy = true;
        ready = true;
        try {
          for (let item = first ?? pending.shift(); item !== undefined; item = pending.shift()) {
            ready = sink!.write(item);
            if (!ready) break;
          }
        } catch (e) {
          // A sink must not throw; if one does, it alone ends (the publisher and the others go on).
          failure = e instanceof Error ? e : new Error(String(e));
          ready = true;
          close();
        } finally {
          busy = false;
        }
        if (closed && ready) finish();
      };
      const listener = (item: T) => {
        if (closed || (accept !== undefined && !accept(item))) return;
        if (ready && !busy) return deliver(item);
        if (!pending.push(item)) {
          failure = new DomainError("resource_exhausted", "subscriber fell too far behind; resume from the last item received");
          close();
        }
      };
      const resume = () => {
        if (sink !== undefined && !ended && !busy) deliver(undefined);
      };
      const remove = add(filter, listener);
      closers.add(close);
      signal?.addEventListener("abort", close);
      const push = (s: Sink<T>) => {
        if (sink !== undefined) throw new Error("fan-out: a subscription has one consumer");
        sink = s;
        resume();
      };
      const subscription: Subscription<T> = {
        close,
        resume,
        push,
        [Symbol.asyncIterator]: () => iterate(subscription),
      };
      return subscription;
    },
  };
}

/** A fan-out of items of type T. */
export type FanOut<T> = ReturnType<typeof createFanOut<T>>;
