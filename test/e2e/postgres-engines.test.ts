// Several engines on one real PostgreSQL (started by this file), in one process so that the
// order of their reads and commits can be forced: what the replicas' feeds, windows and
// evaluator state do when another replica commits at the worst moment.
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditEvent } from "../../src/domain/audit-chain.js";
import { systemClock } from "../../src/domain/clock.js";
import { rollback, setWeight } from "../../src/domain/rollout-machine.js";
import { createEngine, type Engine } from "../../src/service/engine.js";
import { openPostgresStore, type PostgresStore } from "../../src/store/postgres-store.js";
import type { Store } from "../../src/store/store.js";
import { startPostgres, type PostgresCluster } from "../helpers/postgres.js";
import { specFixture } from "../helpers/rollouts.js";

let cluster: PostgresCluster;
beforeAll(async () => {
  cluster = await startPostgres();
});
afterAll(() => cluster?.stop());

const logger = pino({ level: "silent" });
const caller = { actor: "tester", reason: "test" };
const stores: PostgresStore[] = [];
afterAll(async () => {
  for (const s of stores) await s.close().catch(() => undefined);
});

async function replica(
  url: string,
  id: string,
  wrap: (s: PostgresStore) => Store = (s) => s,
  onEventGap: () => void = () => undefined,
): Promise<{ engine: Engine; store: PostgresStore }> {
  const store = await openPostgresStore({ url, replicaId: id });
  stores.push(store);
  const engine = createEngine({ store: wrap(store), clock: systemClock, logger, onEventGap });
  await engine.load();
  return { engine, store };
}

/** Collects every event a subscription delivers, as it arrives. */
function collect(engine: Engine): AuditEvent[] {
  const got: AuditEvent[] = [];
  void (async () => {
    for await (const e of engine.subscribeEvents(undefined)) got.push(e);
  })();
  return got;
}

const settle = () => new Promise((r) => setTimeout(r, 50));

describe("replicas on one PostgreSQL", () => {
  it("publishes another replica's event only once its change is applied, even when it commits between the reads", async () => {
    const url = await cluster.createDatabase();
    const a = await replica(url, "a");
    await a.engine.create(specFixture(), caller);
    // B's store commits A's change right after B has read the rollouts (the worst moment).
    let hook: (() => Promise<void>) | undefined;
    const b = await replica(url, "b", (s) => ({
      ...s,
      loadRollouts: async () => {
        const rows = await s.loadRollouts();
        const h = hook;
        hook = undefined;
        if (h !== undefined) await h();
        return rows;
      },
    }));
    const seen = collect(b.engine);
    // Every event B publishes finds its change already routed on B.
    const weightWhenPublished: number[] = [];
    void (async () => {
      for await (const e of b.engine.subscribeEvents(undefined)) {
        if (e.type === "weight_changed" || e.reason === "to 3000") weightWhenPublished.push(b.engine.get("checkout").weightBp);
      }
    })();
    hook = async () => {
      await a.engine.change("checkout", { actor: "tester", reason: "to 3000" }, (r, actor) => setWeight(r, 3000, actor));
    };
    await b.engine.reconcile();
    await settle();
    for (const e of seen) expect(e.reason).not.toBe("to 3000");
    await b.engine.reconcile();
    await settle();
    expect(seen.map((e) => e.reason)).toContain("to 3000");
    expect(b.engine.get("checkout").weightBp).toBe(3000);
    expect(weightWhenPublished).toEqual([3000]);
  }, 60_000);

  it("publishes events in seq order: an own event above another replica's unread one waits for the reconcile it asks for", async () => {
    const url = await cluster.createDatabase();
    const a = await replica(url, "a");
    await a.engine.create(specFixture({ name: "x", salt: "x" }), caller);
    await a.engine.create(specFixture({ name: "y", salt: "y" }), caller);
    let gaps = 0;
    const b = await replica(url, "b", undefined, () => gaps++);
    const seen = collect(b.engine);
    await a.engine.change("x", { actor: "tester", reason: "x on a" }, (r, actor) => setWeight(r, 2000, actor));
    await b.engine.change("y", { actor: "tester", reason: "y on b" }, (r, actor) => setWeight(r, 3000, actor));
    await settle();
    // Seq 4 (B's own) is not told before seq 3 (A's): a watcher resuming after 4 would miss 3.
    expect(seen.map((e) => e.seq)).toEqual([]);
    expect(gaps).toBe(1);
    await b.engine.reconcile();
    await settle();
    expect(seen.map((e) => [e.seq, e.reason])).toEqual([
      [3, "x on a"],
      [4, "y on b"],
    ]);
    expect(b.engine.get("x").weightBp).toBe(2000);
    // No gap: B's next own event goes out at once.
    await b.engine.change("y", { actor: "tester", reason: "again" }, (r, actor) => setWeight(r, 4000, actor));
    await settle();
    expect(seen.map((e) => e.seq)).toEqual([3, 4, 5]);
    expect(gaps).toBe(1);
  }, 60_000);

  it("keeps the window buckets a flush could not write while PostgreSQL was down, and writes them once it is back", async () => {
    const url = await cluster.createDatabase();
    const a = await replica(url, "a");
    await a.engine.create(specFixture(), caller);
    const now = Date.now();
    const outcome = (variant: "stable" | "canary", success: boolean) => ({ variant, success, latencyMs: 10, invariantViolations: 0, metrics: new Map(), key: "", timeMs: now });
    expect(a.engine.recordOutcomes("checkout", [outcome("canary", true), outcome("stable", true)]).accepted).toBe(2);
    cluster.kill();
    try {
      expect(a.engine.recordOutcomes("checkout", [outcome("canary", false)]).accepted).toBe(1);
      await expect(a.engine.flush()).rejects.toThrow();
      expect(a.engine.recordOutcomes("checkout", [outcome("canary", true)]).accepted).toBe(1);
      await expect(a.engine.flush()).rejects.toThrow();
    } finally {
      cluster.start();
    }
    for (let i = 0; i < 50; i++) {
      try {
        await a.engine.flush();
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    // A fresh replica "a" (a restart) restores what was flushed: every outcome, none twice.
    const again = await replica(url, "a");
    const h = again.engine.health("checkout");
    expect(h.samples).toEqual({ stable: 1, canary: 3 });
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      expect(Number((await c.query("SELECT count(*) AS n FROM window_buckets")).rows[0].n)).toBeGreaterThan(0);
    } finally {
      await c.end();
    }
  }, 60_000);

  it("a replica that is not the evaluator shows the evaluator's judgement of every replica's outcomes in Health and WatchHealth", async () => {
    const url = await cluster.createDatabase();
    const a = await replica(url, "a"); // the evaluator: its tick judges
    const b = await replica(url, "b"); // not the evaluator: its follow() only shows
    await a.engine.create(
      specFixture({
        gates: [{ name: "errors", minSamples: 10, onBreach: "rollback", check: { kind: "error_rate", max: 0.05 } }],
        analysis: { ...specFixture().analysis, intervalMs: 200, gracePeriodMs: 0, consecutiveBreaches: 3 },
      }),
      caller,
    );
    await b.engine.reconcile();
    const now = Date.now();
    const outcome = (variant: "stable" | "canary", success: boolean) => ({ variant, success, latencyMs: 10, invariantViolations: 0, metrics: new Map(), key: "", timeMs: now });
    // 20 canary outcomes (30% errors) and 20 stable ones at each replica: 40 of each in all.
    const batch = [...Array.from({ length: 20 }, (_, i) => outcome("canary", i >= 6)), ...Array.from({ length: 20 }, () => outcome("stable", true))];
    for (const r of [a, b]) expect(r.engine.recordOutcomes("checkout", batch).accepted).toBe(40);
    await Promise.all([a.engine.flush(), b.engine.flush()]);
    const seen: { canary: number; breaches: number }[] = [];
    void (async () => {
      for await (const c of b.engine.subscribeHealth("checkout")) seen.push({ canary: c.health.samples.canary, breaches: c.health.consecutiveBreaches });
    })();
    await new Promise((r) => setTimeout(r, 250));
    await a.engine.tick();
    await a.engine.flush(); // the evaluator's state (one breach recorded) is stored
    expect(a.engine.health("checkout").consecutiveBreaches).toBe(1);
    // Before b's round it knows only its own outcomes and none of the evaluator's counts.
    expect(b.engine.health("checkout").samples.canary).toBe(20);
    expect(b.engine.health("checkout").consecutiveBreaches).toBe(0);
    const logBefore = (await b.engine.listEvents("checkout", 0, 100)).map((e) => e.type);
    expect(logBefore).toEqual(["created", "gate_breach"]);
    await b.engine.follow();
    const h = b.engine.health("checkout");
    expect(h.samples).toEqual({ stable: 40, canary: 40 });
    expect(h.consecutiveBreaches).toBe(1);
    expect(h.gates.find((g) => g.name === "errors")).toMatchObject({ verdict: "fail", samples: 40, consecutiveBreaches: 1 });
    await settle();
    expect(seen.at(-1)).toEqual({ canary: 40, breaches: 1 });
    // Following decides nothing and writes nothing: the rollout and its log are as the evaluator left them.
    expect(b.engine.get("checkout").stage).toBe("canary");
    expect((await b.engine.listEvents("checkout", 0, 100)).map((e) => e.type)).toEqual(logBefore);
    // And the evaluator's Health merges b's outcomes too, not only at its tick.
    expect(a.engine.health("checkout").samples).toEqual({ stable: 40, canary: 40 });
    // A rollback starts the canary afresh on every replica: b shows none of the old canary's
    // outcomes, its own or the ones it last read from a, before its next round.
    await a.engine.change("checkout", caller, (r, actor) => rollback(r, actor));
    await b.engine.reconcile();
    expect(b.engine.get("checkout").stage).toBe("rolled_back");
    expect(b.engine.health("checkout").samples).toEqual({ stable: 40, canary: 0 });
  }, 60_000);

  it("runs one flush at a time: the timer's and shutdown's never overlap", async () => {
    const url = await cluster.createDatabase();
    let running = 0;
    let most = 0;
    let calls = 0;
    const a = await replica(url, "a", (s) => ({
      ...s,
      flushWindows: async (f) => {
        calls++;
        most = Math.max(most, ++running);
        try {
          await new Promise((r) => setTimeout(r, 100));
          await s.flushWindows(f);
        } finally {
          running--;
        }
      },
    }));
    await a.engine.create(specFixture(), caller);
    const outcome = { variant: "canary" as const, success: true, latencyMs: 10, invariantViolations: 0, metrics: new Map(), key: "" };
    const flushes: Promise<void>[] = [];
    for (let i = 0; i < 5; i++) {
      a.engine.recordOutcomes("checkout", [outcome]);
      flushes.push(a.engine.flush());
      // The next outcome arrives while this flush is still writing.
      await new Promise((r) => setTimeout(r, 30));
    }
    await Promise.all(flushes);
    expect(calls).toBeGreaterThan(1);
    expect(most).toBe(1);
    const again = await replica(url, "a");
    expect(again.engine.health("checkout").samples.canary).toBe(5);
  }, 60_000);

  it("the evaluator pauses while it cannot read the other replicas' windows, and says so in Health", async () => {
    const url = await cluster.createDatabase();
    const a = await replica(url, "a");
    await a.engine.create(specFixture({ analysis: { ...specFixture().analysis, intervalMs: 200 } }), caller);
    const seen: string[] = [];
    void (async () => {
      for await (const c of a.engine.subscribeHealth("checkout")) seen.push(c.health.message);
    })();
    await new Promise((r) => setTimeout(r, 300));
    await a.engine.tick();
    expect(a.engine.health("checkout").message).not.toContain("paused");
    cluster.kill();
    try {
      await new Promise((r) => setTimeout(r, 300));
      await a.engine.tick();
      expect(a.engine.health("checkout").message).toMatch(/^evaluation paused: the database is unreachable; /);
      expect(a.engine.allHealth()[0]?.message).toMatch(/^evaluation paused/);
      await settle();
      expect(seen.at(-1)).toMatch(/^evaluation paused/);
    } finally {
      cluster.start();
    }
    for (let i = 0; i < 50 && a.engine.health("checkout").message.includes("paused"); i++) {
      await new Promise((r) => setTimeout(r, 250));
      await a.engine.tick();
    }
    expect(a.engine.health("checkout").message).not.toContain("paused");
    await settle();
    expect(seen.at(-1)).not.toContain("paused");
  }, 60_000);

  it("a notification's reconcile reads back only the rollout it names, and any the new events name", async () => {
    const url = await cluster.createDatabase();
    const a = await replica(url, "a");
    for (const name of ["x", "y", "z"]) await a.engine.create(specFixture({ name, salt: name }), caller);
    const reads = { all: 0, one: [] as string[] };
    const b = await replica(url, "b", (s) => ({
      ...s,
      loadRollouts: () => {
        reads.all++;
        return s.loadRollouts();
      },
      loadRollout: (name: string) => {
        reads.one.push(name);
        return s.loadRollout(name);
      },
    }));
    const seen = collect(b.engine);
    reads.all = 0;
    await a.engine.change("x", { actor: "tester", reason: "x" }, (r, actor) => setWeight(r, 2000, actor));
    expect(await b.engine.reconcile(false, new Set(["x"]))).toBe(1);
    expect(reads).toEqual({ all: 0, one: ["x"] });
    expect(b.engine.get("x").weightBp).toBe(2000);
    // y changed too, its notification not here yet: its event is read, so y is read back with x.
    await a.engine.change("y", { actor: "tester", reason: "y" }, (r, actor) => setWeight(r, 3000, actor));
    await a.engine.delete("x", { actor: "tester", reason: "gone" });
    reads.one = [];
    expect(await b.engine.reconcile(false, new Set(["x"]))).toBe(2);
    expect(reads.all).toBe(0);
    expect(reads.one.sort()).toEqual(["x", "y"]);
    expect(b.engine.get("y").weightBp).toBe(3000);
    expect(() => b.engine.get("x")).toThrow();
    expect(b.engine.get("z").weightBp).toBe(500);
    await settle();
    expect(seen.map((e) => e.reason)).toEqual(["x", "y", "gone"]);
    // The full reconcile (the periodic safety net) still reads every rollout.
    await b.engine.reconcile();
    expect(reads.all).toBe(1);
  }, 60_000);
});
