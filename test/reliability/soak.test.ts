import { describe, expect, it } from "vitest";
import { runSuite } from "./soak-run.js";

/**
 * The soak's short version (issue 16): 30 s of the mixed load of `npm run soak` (Route,
 * RecordOutcome, WatchHealth and WatchRoutes streams, control-plane churn, evaluations every
 * second) at a fifth of its rates, on a server in a child process. Fails on a leak (the live
 * heap, after a mark-compact, or RSS growing by more than half between the second and the last
 * quarter: a leak of ~100 bytes per call shows as tens of MiB here, while GC and allocator
 * noise stay within a few) and on any error, never on timing (the event-loop delay is reported
 * by `npm run soak`, not asserted here).
 */
describe("soak (short)", () => {
  it("runs a mixed load for 30 s without an error or a growing heap", async () => {
    const r = await runSuite(
      "soak.mjs",
      ["--duration", "30s", "--sample", "1s", "--window", "5s", "--route-rate", "1000", "--outcome-rate", "10000", "--watch-health", "100", "--watch-routes", "5"],
      120_000,
    );
    expect(r.clientErrors).toEqual({ route: 0, outcomes: 0, health: 0, routes: 0, changes: 0 });
    expect(r.serverErrors).toEqual({});
    // Every kind of traffic really ran.
    expect(r.totals.routes).toBeGreaterThan(0);
    expect(r.totals.outcomes).toBeGreaterThan(0);
    expect(r.totals.healthMessages).toBeGreaterThan(0);
    expect(r.totals.routesMessages).toBeGreaterThan(0);
    expect(r.totals.changes).toBeGreaterThan(0);
    expect(r.totals.streamsOpenAtEnd).toEqual({ health: 100, routes: 5 });
    expect(r.heap.growth).toBeLessThan(0.5);
    expect(r.rss.growth).toBeLessThan(0.5);
  }, 150_000);
});
