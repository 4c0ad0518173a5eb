import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { verifyChain, type NewEvent } from "../../src/domain/audit-chain.js";
import { setFeature, setOverride } from "../../src/domain/rollout-machine.js";
import { MIGRATIONS } from "../../src/store/migrations.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import type { Store } from "../../src/store/store.js";
import { rolloutFixture } from "../helpers/rollouts.js";

const event = (rollout: string, reason: string): NewEvent => ({
  timeNs: 1_767_225_600_123_456_789n,
  rollout,
  type: "updated",
  actor: "op",
  reason,
  fingerprint: "f".repeat(64),
  snapshot: "{}",
});

const dirs: string[] = [];
function tempDb(): string {
  const dir = mkdtempSync(join(tmpdir(), "rollgate-store-"));
  dirs.push(dir);
  return join(dir, "nested", "rollgate.db");
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("sqlite store", () => {
  it("round-trips a rollout with its maps and appends chained events", async () => {
    const store = openSqliteStore(":memory:");
    const actor = { name: "op", now: 1 };
    const r = setOverride(setFeature(rolloutFixture(), "ui", true, actor).rollout, "k€y", "canary", actor).rollout;
    const appended = await store.commit({ put: r, events: [event("checkout", "one"), event("checkout", "two")] });
    expect(appended.map((e) => e.seq)).toEqual([1, 2]);
    expect(appended[1]!.prevHash).toBe(appended[0]!.hash);
    const [loaded] = await store.loadRollouts();
    expect(loaded!.rollout).toEqual(r);
    expect(loaded!.rollout.features.get("ui")).toBe(true);
    expect(loaded!.rollout.overrides.get("k€y")).toBe("canary");
    const events = await store.listEvents({ afterSeq: 0, limit: 10 });
    expect(events).toEqual(appended);
    expect(events[0]!.timeNs).toBe(1_767_225_600_123_456_789n);
    expect(verifyChain(events).ok).toBe(true);
    expect(await store.lastSeq()).toBe(2);
    await store.close();
  });

  it("keeps one chain per rollout and filters and pages events", async () => {
    const store = openSqliteStore(":memory:");
    await store.commit({ events: [event("a", "1"), event("b", "2"), event("a", "3")] });
    const a = await store.listEvents({ rollout: "a", afterSeq: 0, limit: 10 });
    expect(a.map((e) => e.seq)).toEqual([1, 3]);
    expect(a[1]!.prevHash).toBe(a[0]!.hash);
    expect((await store.listEvents({ afterSeq: 1, limit: 1 })).map((e) => e.seq)).toEqual([2]);
    await store.close();
  });

  it("deletes a rollout but keeps its events", async () => {
    const store = openSqliteStore(":memory:");
    await store.commit({ put: rolloutFixture(), events: [event("checkout", "c")] });
    await store.commit({ remove: "checkout", events: [event("checkout", "d")] });
    expect(await store.loadRollouts()).toEqual([]);
    expect((await store.listEvents({ rollout: "checkout", afterSeq: 0, limit: 10 })).length).toBe(2);
    await store.close();
  });

  it("rolls back a failed commit whole", async () => {
    const store = openSqliteStore(":memory:");
    const bad = { ...event("checkout", "x"), snapshot: null as unknown as string };
    await expect(store.commit({ put: rolloutFixture(), events: [event("checkout", "ok"), bad] })).rejects.toThrow();
    expect(await store.loadRollouts()).toEqual([]);
    expect(await store.lastSeq()).toBe(0);
    await store.close();
  });

  it("persists to a file with WAL, synchronous FULL and the schema version", async () => {
    const path = tempDb();
    const store = openSqliteStore(path);
    await store.commit({ put: rolloutFixture(), events: [event("checkout", "c")] });
    await store.close();
    const db = new Database(path, { readonly: true });
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    db.close();
    const again = openSqliteStore(path);
    expect((await again.loadRollouts()).map((s) => s.rollout.name)).toEqual(["checkout"]);
    await again.close();
  });

  it("refuses a database from a newer rollgate", () => {
    const path = tempDb();
    openSqliteStore(path).close();
    const db = new Database(path);
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    expect(() => openSqliteStore(path)).toThrow(/newer than this rollgate understands/);
  });

  it("makes the event log append-only through SQL", async () => {
    const path = tempDb();
    const store: Store = openSqliteStore(path);
    await store.commit({ events: [event("a", "1")] });
    const db = new Database(path);
    expect(() => db.prepare("UPDATE events SET reason = 'x'").run()).toThrow(/append-only/);
    expect(() => db.prepare("DELETE FROM events").run()).toThrow(/append-only/);
    db.close();
    await store.close();
  });

  it("stores window buckets and evaluator state, clears and expires them", async () => {
    const store = openSqliteStore(":memory:");
    await store.commit({ put: rolloutFixture(), events: [] });
    const data = new Uint8Array([1, 2, 3]);
    await store.flushWindows({
      buckets: [
        { rollout: "checkout", variant: "canary", startMs: 1000, data },
        { rollout: "checkout", variant: "stable", startMs: 1000, data },
        { rollout: "checkout", variant: "canary", startMs: 5000, data: new Uint8Array([9]) },
      ],
      cleared: [],
      analysis: [{ rollout: "checkout", state: '{"n":1}' }],
    });
    expect((await store.loadWindowBuckets()).length).toBe(3);
    expect((await store.loadRollouts())[0]!.analysis).toBe('{"n":1}');
    await store.flushWindows({ buckets: [], cleared: [{ rollout: "checkout", variant: "canary" }], analysis: [], expireBeforeMs: 2000 });
    const left = await store.loadWindowBuckets();
    expect(left).toEqual([]);
    await store.close();
  });

  it("fails every call once closed", async () => {
    const store = openSqliteStore(":memory:");
    await store.close();
    await expect(store.loadRollouts()).rejects.toThrow(/closed/);
  });
});
