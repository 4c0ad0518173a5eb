import { describe, expect, it } from "vitest";
import { runSuite } from "./soak-run.js";

/**
 * Repeated crashes, short version (issue 16): `npm run chaos` with 3 SIGKILLs of the server under
 * the soak's load (reduced rates), each followed by a restart on the same database. Fails when
 * an acknowledged control-plane change is missing after the restarts, the audit hash chain does
 * not verify, the database is not sound after a crash, or a crash loses more than 5 s of
 * outcomes (windows are flushed every second; 5 s is far past any flush running late on a busy
 * machine, and a flush that never ran loses everything since the start).
 */
describe("chaos (short)", () => {
  it("keeps every acknowledged change, the hash chain and the database across 3 kill -9s", async () => {
    const r = await runSuite(
      "chaos.mjs",
      ["--crashes", "3", "--seed", "7", "--route-rate", "1000", "--outcome-rate", "10000", "--watch-health", "50", "--watch-routes", "5"],
      150_000,
    );
    expect(r.changes.acked).toBeGreaterThan(0);
    expect(r.missing).toEqual([]);
    expect(r.stale).toEqual([]);
    expect(r.unstable).toEqual([]);
    expect(r.verify.ok).toBe(true);
    expect(r.verify.checked).toBe(r.events);
    expect(r.integrity.afterEachCrash).toEqual(["ok", "ok", "ok"]);
    expect(r.integrity.final).toBe("ok");
    expect(r.loss.perCrash).toHaveLength(3);
    for (const c of r.loss.perCrash) expect(c.lostSeconds).toBeLessThanOrEqual(5);
  }, 180_000);
});
