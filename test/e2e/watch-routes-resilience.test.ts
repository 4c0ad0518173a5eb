import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createLocalRollgateClient, createRollgateClient, type RouteResult } from "../../clients/typescript/src/index.js";
import { ANALYSIS_DEFAULTS } from "../../src/domain/rollout.js";
import { aggregate, createWindow, restoreBuckets } from "../../src/domain/sliding-window.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import { spawnServer, tempDir, type ServerProcess } from "../helpers/servers.js";

/**
 * Local mode survives its server: a real server process on a real port, killed with SIGKILL,
 * restarted on the same database and port. The client keeps answering the same decisions for
 * 30 s of wall time without an error, keeps the outcomes recorded meanwhile (up to its bound,
 * counting what it drops), and after the restart picks up a SetWeight and delivers the outcomes.
 */

const OUTAGE_MS = 30_000;
const KEYS = Array.from({ length: 1000 }, (_, i) => (i % 50 === 0 ? `ключ-${i}-🚀` : `user-${i}`));
/** A bound below what the outage records, so that drops happen and are counted. */
const MAX_BUFFERED = 8000;

const tmp = tempDir();
const db = join(tmp.dir, "rollgate.db");
const processes: ServerProcess[] = [];
afterAll(() => {
  for (const p of processes) p.child.kill("SIGKILL");
  tmp.cleanup();
});

const plain = (r: RouteResult) => ({ ...r, features: [...r.features] });

/** Outcomes of a rollout in the windows the server has flushed to the database (read beside it). */
async function flushedSamples(path: string, rollout: string): Promise<number> {
  const store = openSqliteStore(path);
  try {
    const rows = (await store.loadWindowBuckets()).filter((r) => r.rollout === rollout);
    let count = 0;
    for (const variant of new Set(rows.map((r) => r.variant))) {
      const w = createWindow(ANALYSIS_DEFAULTS.windowMs, ANALYSIS_DEFAULTS.intervalMs);
      restoreBuckets(w, rows.filter((r) => r.variant === variant), Date.now());
      count += aggregate(w, Date.now()).count;
    }
    return count;
  } finally {
    await store.close();
  }
}

describe("local mode through a server crash", () => {
  it("answers the same decisions through kill -9, keeps outcomes, and picks up changes after the restart", { timeout: 58_000 }, async () => {
    const first = await spawnServer(["--listen", "127.0.0.1:0", "--db", db]);
    processes.push(first);
    const url = `http://127.0.0.1:${first.port}`;
    const admin = createRollgateClient({ baseUrl: url });
    await admin.rollouts.createRollout({
      rollout: { name: "resilient", stableVersion: "v1", canaryVersion: "v2", features: { "new-ui": true } },
      reason: "resilience test",
    });
    await admin.rollouts.setOverride({ name: "resilient", key: "user-1", variant: 2 });
    await admin.rollouts.setWeight({ name: "resilient", weightBp: 2500 });
    // Paused: no automatic step while outcomes arrive.
    await admin.rollouts.pause({ name: "resilient", reason: "hold the weight" });

    const errors: string[] = [];
    const local = createLocalRollgateClient({
      baseUrl: url,
      retry: { maxAttempts: 1 },
      outcomes: { flushIntervalMs: 250, maxBuffered: MAX_BUFFERED, onError: () => undefined },
      local: { reconnect: { initialBackoffMs: 100, maxBackoffMs: 400 }, staleAfterMs: 5000, logger: { warn: () => undefined } },
    });
    try {
      expect(await local.ready(10_000)).toBe(true);
      const before = KEYS.map((k) => plain(local.route("resilient", k)));
      const remote = await admin.routeBatch("resilient", KEYS);
      expect(before).toEqual(remote.map(plain));
      expect(before.some((r) => r.variant === "canary") && before.some((r) => r.variant === "stable")).toBe(true);

      // Outcomes before the outage, delivered and flushed to the database (every second).
      for (let i = 0; i < 200; i++) local.recordOutcome("resilient", { variant: before[i]!.variant, success: true, latencyMs: 5 });
      await local.flush();
      // The server writes its windows to the database every second: wait until all 200 are there.
      await expect.poll(() => flushedSamples(db, "resilient"), { timeout: 15_000, interval: 100 }).toBe(200);
      const samplesBefore = (await admin.health("resilient")).samples!;
      const sentBefore = local.stats().outcomes.sent;
      expect(sentBefore).toBe(200);

      first.child.kill("SIGKILL");
      expect((await first.exited).signal).toBe("SIGKILL");

      // 30 s without a server: every key still gets the same answer, synchronously, no error.
      const until = Date.now() + OUTAGE_MS;
      let rounds = 0;
      let recorded = 200;
      while (Date.now() < until) {
        for (let i = 0; i < KEYS.length; i++) {
          let got: RouteResult;
          try {
            got = local.route("resilient", KEYS[i]!);
          } catch (e) {
            errors.push(String(e));
            continue;
          }
          if (got.variant !== before[i]!.variant || got.version !== before[i]!.version || got.reason !== before[i]!.reason) {
            errors.push(`round ${rounds}: ${KEYS[i]} went ${got.variant}/${got.reason}, was ${before[i]!.variant}/${before[i]!.reason}`);
          }
        }
        for (let i = 0; i < 100; i++) local.recordOutcome("resilient", { variant: before[i]!.variant, success: true, latencyMs: 7 });
        recorded += 100;
        rounds++;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      // However fast the loop went, record past the bound so that the drop counting is exercised.
      while (recorded - sentBefore < MAX_BUFFERED + 2000) {
        local.recordOutcome("resilient", { variant: before[0]!.variant, success: true, latencyMs: 7 });
        recorded++;
      }
      expect(errors).toEqual([]);
      expect(rounds).toBeGreaterThan(20);
      const during = local.stats();
      expect(during).toMatchObject({ ready: true, source: "server", connected: false, stale: true });
      expect(during.sinceLastHeardMs).toBeGreaterThan(OUTAGE_MS - 6000);
      expect(during.reconnects).toBeGreaterThan(0);
      // Outcomes recorded meanwhile are held, up to the bound; the rest are counted as dropped.
      expect(during.outcomes.sent).toBe(sentBefore);
      expect(during.outcomes.buffered + during.outcomes.inFlight).toBeLessThanOrEqual(MAX_BUFFERED);
      expect(during.outcomes.buffered + during.outcomes.inFlight + during.outcomes.dropped).toBe(recorded - sentBefore);
      expect(during.outcomes.dropped).toBeGreaterThan(0);

      // Restart on the same database and port; a SetWeight reaches the client.
      const second = await spawnServer(["--listen", `127.0.0.1:${first.port}`, "--db", db]);
      processes.push(second);
      await admin.rollouts.setWeight({ name: "resilient", weightBp: 7500 });
      await expect.poll(() => local.route("resilient", "user-2").weightBp, { timeout: 15_000, interval: 20 }).toBe(7500);
      const after = await admin.routeBatch("resilient", KEYS);
      expect(KEYS.map((k) => plain(local.route("resilient", k)))).toEqual(after.map(plain));
      expect(local.stats()).toMatchObject({ connected: true, stale: false, source: "server" });

      // The outcomes held through the outage are delivered and accepted.
      await local.flush();
      const final = local.stats().outcomes;
      expect(final.buffered + final.inFlight).toBe(0);
      expect(final.sent + final.dropped).toBe(recorded);
      expect(final.sent - sentBefore).toBe(during.outcomes.buffered + during.outcomes.inFlight);
      expect(final.accepted).toBe(final.sent);
      const samplesAfter = (await admin.health("resilient")).samples!;
      expect(samplesAfter.stable + samplesAfter.canary - (samplesBefore.stable + samplesBefore.canary)).toBe(BigInt(final.sent - sentBefore));
    } finally {
      await local.close();
      await admin.close();
    }
  });
});
