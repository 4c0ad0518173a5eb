import type { OutcomeSample } from "../../domain/outcome.js";
import type { Variant } from "../../domain/rollout.js";
import { flushFailed, record, restoreBuckets, takeCleared, takeDirtyBuckets, windowStartMs, type BucketSnapshot } from "../../domain/sliding-window.js";
import type { WindowBucketRow } from "../../store/store.js";
import { entryOf, type EngineState, type Entry } from "./entries.js";

/**
 * The sliding windows of every rollout: outcomes go straight in (O(1) each); changed buckets
 * and evaluator state are flushed to the store (every second, by the server) and restored
 * from it at start.
 */

/**
 * Buckets older than this are dropped from the store whatever the rollout (the longest window is
 * 24 h), by a sweep every SWEEP_EVERY_MS; each flush drops the expired buckets of the windows it
 * writes, so only idle windows wait for the sweep.
 */
const STORE_RETENTION_MS = 25 * 3_600_000;
const SWEEP_EVERY_MS = 3_600_000;

/**
 * Buckets per flush transaction (about: one rollout's are never split). A flush of more — many
 * busy rollouts — is written in several transactions, a turn of the event loop between two,
 * each durable before the next starts; the flush resolves once all are written.
 */
export const FLUSH_CHUNK_BUCKETS = 256;

/** The window operations (see Engine for recordOutcomes and flush). */
export interface Windows {
  /** Restores every loaded rollout's window buckets from the store; returns how many were kept. */
  restore(): Promise<number>;
  recordOutcomes(name: string, samples: readonly OutcomeSample[]): { accepted: number; ignored: number };
  flush(): Promise<void>;
}

/** Returns the window operations over the engine's state. */
export function createWindows(state: EngineState): Windows {
  const { store, clock, observer, entries, unflushed } = state;
  let lastSweepAt = Number.NEGATIVE_INFINITY;
  // One flush at a time: a second (the timer's next, shutdown's last) waits for the one running,
  // so that two never take the same buckets or write them out of order.
  let flushing: Promise<void> | undefined;
  return {
    async restore() {
      const now = clock.now();
      const byWindow = new Map<string, BucketSnapshot[]>();
      for (const row of await store.loadWindowBuckets()) {
        const k = `${row.variant}\u0000${row.rollout}`;
        let list = byWindow.get(k);
        if (list === undefined) byWindow.set(k, (list = []));
        list.push({ startMs: row.startMs, data: row.data });
      }
      let restored = 0;
      for (const [k, snaps] of byWindow) {
        const [variant, name] = k.split("\u0000") as [Variant, string];
        const e = entries.get(name);
        if (e === undefined) continue;
        restored += restoreBuckets(e.windows[variant], snaps, now).restored;
        unflushed.add(e);
      }
      return restored;
    },

    recordOutcomes(name, samples) {
      const e = entryOf(state, name);
      const now = clock.now();
      let stableIn = 0;
      let stableOut = 0;
      let canaryIn = 0;
      let canaryOut = 0;
      const { stable, canary } = e.windows;
      for (const s of samples) {
        if (s.variant === "canary") {
          if (record(canary, s, now)) canaryIn++;
          else canaryOut++;
        } else if (record(stable, s, now)) stableIn++;
        else stableOut++;
      }
      if (stableIn + stableOut > 0) observer.outcomes?.(name, "stable", stableIn, stableOut);
      if (canaryIn + canaryOut > 0) observer.outcomes?.(name, "canary", canaryIn, canaryOut);
      if (stableIn + canaryIn > 0) unflushed.add(e);
      return { accepted: stableIn + canaryIn, ignored: stableOut + canaryOut };
    },

    flush() {
      const run = (flushing ?? Promise.resolve()).catch(() => undefined).then(flushOnce);
      flushing = run;
      void run.finally(() => {
        if (flushing === run) flushing = undefined;
      }).catch(() => undefined);
      return run;
    },
  };

  async function flushOnce(): Promise<void> {
    const now = clock.now();
    // Only rollouts whose windows or evaluator state changed since the last flush: an idle
    // rollout costs nothing here.
    const todo = [...unflushed];
    unflushed.clear();
    const sweep = now - lastSweepAt >= SWEEP_EVERY_MS;
    let next = 0;
    let wrote = false;
    while (next < todo.length) {
      const chunk = takeChunk(todo, next, now);
      next = chunk.end;
      const last = next >= todo.length;
      const { buckets, cleared, analysis, expired } = chunk;
      const empty = buckets.length === 0 && cleared.length === 0 && analysis.length === 0;
      if (!empty) {
        try {
          // The sweep rides on the flush's last write (never on a flush with nothing to write).
          await store.flushWindows({ buckets, cleared, analysis, expired, ...(sweep && last ? { expireBeforeMs: now - STORE_RETENTION_MS } : {}) });
          wrote = true;
        } catch (err) {
          // Nothing of this chunk was written (one transaction): mark it unflushed again, and the
          // rollouts not reached yet too, so that the next flush once the store is back writes
          // them, with whatever was recorded since. Earlier chunks are written and stay so.
          const live = (e: Entry) => entries.get(e.rollout.name) === e;
          for (const t of chunk.taken) if (live(t.e)) flushFailed(t.e.windows[t.variant], t.cleared, t.starts);
          for (const e of chunk.analysed) if (live(e)) e.analysisDirty = true;
          for (const e of todo.slice(chunk.start)) if (live(e)) unflushed.add(e);
          throw err;
        }
      }
      // A big flush (thousands of rollouts) is several transactions with a turn of the event
      // loop between them, so that calls are served meanwhile rather than after all of it.
      if (!last) await new Promise((resolve) => setImmediate(resolve));
    }
    if (sweep && wrote) lastSweepAt = now;
  }

  /**
   * Takes (encodes and marks clean) what the rollouts todo[start..] have to flush, until about
   * FLUSH_CHUNK_BUCKETS buckets: one rollout's writes are never split across two chunks. A
   * rollout deleted since the flush began is skipped (its buckets went with it).
   */
  function takeChunk(todo: readonly Entry[], start: number, now: number) {
    const buckets: WindowBucketRow[] = [];
    const cleared: { rollout: string; variant: Variant }[] = [];
    const analysis: { rollout: string; state: string }[] = [];
    const expired: { rollout: string; variant: Variant; beforeMs: number }[] = [];
    // What was taken from each entry, to give back if the write fails.
    const taken: { e: Entry; variant: Variant; cleared: boolean; starts: number[] }[] = [];
    const analysed: Entry[] = [];
    let i = start;
    for (; i < todo.length && buckets.length < FLUSH_CHUNK_BUCKETS; i++) {
      const e = todo[i]!;
      if (entries.get(e.rollout.name) !== e) continue;
      const name = e.rollout.name;
      for (const variant of ["stable", "canary"] as const) {
        const w = e.windows[variant];
        const wasCleared = takeCleared(w);
        if (wasCleared) cleared.push({ rollout: name, variant });
        const dirty = takeDirtyBuckets(w);
        if (wasCleared || dirty.length > 0) taken.push({ e, variant, cleared: wasCleared, starts: dirty.map((b) => b.startMs) });
        if (dirty.length === 0) continue;
        for (const b of dirty) buckets.push({ rollout: name, variant, startMs: b.startMs, data: b.data });
        expired.push({ rollout: name, variant, beforeMs: windowStartMs(w, now) });
      }
      if (e.analysisDirty) {
        e.analysisDirty = false;
        analysed.push(e);
        analysis.push({ rollout: name, state: JSON.stringify(e.analysis) });
      }
    }
    return { start, end: i, buckets, cleared, analysis, expired, taken, analysed };
  }
}
