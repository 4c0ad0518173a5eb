import { Code, ConnectError } from "@connectrpc/connect";
import type { Outcome } from "./gen/rollgate/v1/decision_service_pb.js";

/** What the server said about one delivered batch. */
export interface BatchResult {
  readonly accepted: number;
  readonly ignored: number;
}

/** Sends one batch of outcomes of one rollout (RecordOutcome). */
export type SendBatch = (rollout: string, outcomes: Outcome[]) => Promise<BatchResult>;

/** A batch that could not be delivered, handed to `onError`. */
export interface FailedBatch {
  readonly rollout: string;
  readonly count: number;
  /** True when the outcomes were put back to be sent again; false when they were dropped. */
  readonly requeued: boolean;
}

/** How outcomes are buffered and flushed. */
export interface OutcomeBufferOptions {
  /** Flush whatever is buffered this long after the first outcome arrived. Default 1000 ms. */
  readonly flushIntervalMs?: number;
  /** Flush a rollout's outcomes as soon as this many are buffered; also the batch size. Default 500. */
  readonly maxBatch?: number;
  /**
   * Outcomes held at most, buffered and on the wire together (while the server is unreachable);
   * past it the oldest buffered are dropped and counted in `dropped`. Default 100,000.
   */
  readonly maxBuffered?: number;
  /** Told about every batch that failed in the background (flush() and close() reject instead). */
  readonly onError?: (error: ConnectError, batch: FailedBatch) => void;
}

/** Counters of an outcome buffer. */
export interface OutcomeStats {
  /** Outcomes waiting to be sent. */
  readonly buffered: number;
  /** Outcomes in batches on the wire right now. */
  readonly inFlight: number;
  /** Outcomes delivered. */
  readonly sent: number;
  /** Of those, added to the window, and ignored (outside the window), as the server reported. */
  readonly accepted: number;
  readonly ignored: number;
  /** Outcomes given up on: refused by the server (the batch is rejected whole) or over maxBuffered. */
  readonly dropped: number;
  /** Batches sent. */
  readonly batches: number;
}

/** An outcome buffer: record is synchronous, delivery happens in batches. */
export interface OutcomeBuffer {
  /** Buffers one outcome; starts a flush when the rollout has a full batch. */
  add(rollout: string, outcome: Outcome): void;
  /** Sends everything buffered now and waits for every batch on the wire; rejects if any failed. */
  flush(): Promise<void>;
  /** Stops the timer and flushes; afterwards `add` throws. */
  close(): Promise<void>;
  stats(): OutcomeStats;
}

/**
 * Codes after which the same batch is sent again: the outcomes go back to the front of the
 * buffer. Only UNAVAILABLE, as in the Go and Python clients: it means the batch never reached
 * the server. After DEADLINE_EXCEEDED or UNKNOWN the server may have recorded it (resending
 * would count it twice), and RESOURCE_EXHAUSTED would fail again forever; those are dropped
 * and reported.
 */
const REQUEUE_CODES = new Set([Code.Unavailable]);

/**
 * Returns an outcome buffer over a batch sender.
 *
 * A timer flushes everything `flushIntervalMs` after the first outcome was buffered; a rollout
 * with `maxBatch` outcomes buffered is flushed at once. Retries (UNAVAILABLE) happen inside
 * `send`; a batch that still fails is put back in front of the buffer, so nothing is lost to an
 * outage, and the next timer or flush() tries again.
 */
export function createOutcomeBuffer(send: SendBatch, options: OutcomeBufferOptions = {}): OutcomeBuffer {
  const flushIntervalMs = options.flushIntervalMs ?? 1000;
  const maxBatch = options.maxBatch ?? 500;
  const maxBuffered = options.maxBuffered ?? 100_000;
  if (!(maxBatch >= 1 && maxBatch <= 10_000)) throw new RangeError("maxBatch must be 1..10000 (the server's per-call limit)");
  if (!(flushIntervalMs > 0)) throw new RangeError("flushIntervalMs must be > 0");

  const queues = new Map<string, Outcome[]>();
  const inFlight = new Set<Promise<void>>();
  let buffered = 0;
  let inFlightCount = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  const counters = { sent: 0, accepted: 0, ignored: 0, dropped: 0, batches: 0 };

  function arm(): void {
    if (timer !== undefined || closed || buffered === 0) return;
    timer = setTimeout(() => {
      timer = undefined;
      flushAll(true);
    }, flushIntervalMs);
  }

  /** Starts sending one batch; the promise rejects with the ConnectError when it failed. */
  function dispatch(rollout: string, batch: Outcome[], background: boolean): Promise<void> {
    inFlightCount += batch.length;
    const p = send(rollout, batch).then(
      (r) => {
        inFlightCount -= batch.length;
        counters.sent += batch.length;
        counters.accepted += r.accepted;
        counters.ignored += r.ignored;
        counters.batches++;
      },
      (e: unknown) => {
        inFlightCount -= batch.length;
        const error = ConnectError.from(e);
        const requeued = REQUEUE_CODES.has(error.code);
        if (requeued) {
          const queue = queues.get(rollout) ?? [];
          queues.set(rollout, [...batch, ...queue]);
          buffered += batch.length;
          trim();
        } else {
          counters.dropped += batch.length;
        }
        if (background) options.onError?.(error, { rollout, count: batch.length, requeued });
        throw error;
      },
    );
    const tracked = p
      .catch(() => undefined)
      .finally(() => {
        inFlight.delete(tracked);
        arm();
      });
    inFlight.add(tracked);
    return p;
  }

  /**
   * Drops the oldest buffered outcomes while more than maxBuffered are held, counting those on
   * the wire: through an outage the whole buffer stays within the bound.
   */
  function trim(): void {
    for (const [rollout, queue] of queues) {
      if (buffered + inFlightCount <= maxBuffered) return;
      const excess = Math.min(queue.length, buffered + inFlightCount - maxBuffered);
      queue.splice(0, excess);
      buffered -= excess;
      counters.dropped += excess;
      if (queue.length === 0) queues.delete(rollout);
      options.onError?.(new ConnectError(`outcome buffer full: dropped ${excess} outcomes`, Code.ResourceExhausted), {
        rollout,
        count: excess,
        requeued: false,
      });
    }
  }

  /** Takes every queued outcome and dispatches it in batches of at most maxBatch. */
  function flushAll(background: boolean): Promise<void>[] {
    const sends: Promise<void>[] = [];
    for (const [rollout, queue] of queues) {
      queues.delete(rollout);
      buffered -= queue.length;
      for (let i = 0; i < queue.length; i += maxBatch) sends.push(dispatch(rollout, queue.slice(i, i + maxBatch), background));
    }
    if (background) for (const s of sends) s.catch(() => undefined);
    return sends;
  }

  /**
   * Waits for the batches on the wire first (a failed one comes back to the buffer), then sends
   * everything buffered and waits for that too; rejects with the first failure of its own sends.
   */
  async function drain(): Promise<void> {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    await Promise.allSettled([...inFlight]);
    const results = await Promise.allSettled(flushAll(false));
    arm();
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed !== undefined) throw failed.reason;
  }

  return {
    add(rollout, outcome) {
      if (closed) throw new Error("the rollgate client is closed: recordOutcome after close()");
      let queue = queues.get(rollout);
      if (queue === undefined) queues.set(rollout, (queue = []));
      queue.push(outcome);
      buffered++;
      if (buffered + inFlightCount > maxBuffered) trim();
      if (queue.length >= maxBatch) {
        queues.set(rollout, queue.slice(maxBatch));
        buffered -= maxBatch;
        if (queue.length === maxBatch) queues.delete(rollout);
        dispatch(rollout, queue.slice(0, maxBatch), true).catch(() => undefined);
      }
      arm();
    },
    flush: drain,
    async close() {
      // Everything buffered or on the wire is delivered (or reported) before close resolves.
      closed = true;
      await drain();
    },
    stats() {
      return { buffered, inFlight: inFlightCount, ...counters };
    },
  };
}
