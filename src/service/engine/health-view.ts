import { countsBelongTo, evaluate, type Evaluation } from "../../domain/analysis.js";
import { acts } from "../../domain/decision.js";
import type { RolloutHealth } from "../../domain/health.js";
import type { Variant } from "../../domain/rollout.js";
import { aggregate, createWindow, restoreBuckets, snapshotBuckets, type SlidingWindow } from "../../domain/sliding-window.js";
import type { Entry } from "./entries.js";

/**
 * A rollout's health between evaluations, the one view of it that Health, WatchHealth, the
 * audit snapshots and deletion all show. `preview` is the evaluation it is built from (also
 * what a Promote without force is checked against).
 */

/**
 * Returns the window of one variant as every replica sees it together: this replica's own, merged
 * with the other replicas' last-read buckets when there are any (exactly: buckets and latency
 * sketches merge).
 */
function windowOf(e: Entry, variant: Variant, now: number): SlidingWindow {
  const own = e.windows[variant];
  const theirs = e.peers?.[variant];
  if (theirs === undefined || theirs.length === 0) return own;
  const w = createWindow(e.rollout.analysis.windowMs, e.rollout.analysis.intervalMs);
  restoreBuckets(w, [...snapshotBuckets(own, now), ...theirs], now);
  return w;
}

/** Returns the evaluation of an entry at `now`, without keeping its state: a preview. */
export function preview(e: Entry, now: number): Evaluation {
  return evaluate({
    rollout: e.rollout,
    canary: aggregate(windowOf(e, "canary", now), now),
    stable: aggregate(windowOf(e, "stable", now), now),
    state: e.analysis,
    now,
  });
}

/**
 * Returns a rollout's health at `now`: every gate's current values, the consecutive-breach
 * counts the evaluator has actually recorded (a preview would count the current failure once
 * more), and, when the data as it stands would make the evaluator act, that action at its next
 * scheduled evaluation.
 */
export function healthView(e: Entry, now: number): RolloutHealth {
  const ev = preview(e, now);
  // The same test the evaluator uses: counts of an earlier step (or weight) are not this step's.
  const stored = new Map(countsBelongTo(e.analysis, e.rollout) ? e.analysis.gates.map((g) => [g.name, g.consecutive] as const) : []);
  const gates = ev.health.gates.map((g) => ({ ...g, consecutiveBreaches: stored.get(g.name) ?? 0 }));
  return {
    ...ev.health,
    gates,
    consecutiveBreaches: gates.reduce((m, g) => Math.max(m, g.consecutiveBreaches), 0),
    ...(acts(ev) ? { nextAction: ev.decision, nextActionAt: Math.max(e.nextEvalAt, now) } : {}),
  };
}
