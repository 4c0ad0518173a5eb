// The Store contract, run against every implementation (SQLite and PostgreSQL): what the engine
// relies on, whatever is underneath.
import { describe, expect, it } from "vitest";
import { verifyChain, type NewEvent } from "../../src/domain/audit-chain.js";
import { DomainError } from "../../src/domain/errors.js";
import { setFeature, setOverride, setWeight } from "../../src/domain/rollout-machine.js";
import type { Store } from "../../src/store/store.js";
import { rolloutFixture } from "../helpers/rollouts.js";

/** An event of `rollout` with `reason`, as the engine would append it. */
export const event = (rollout: string, reason: string): NewEvent => ({
  timeNs: 1_767_225_600_123_456_789n,
  rollout,
  type: "updated",
  actor: "op",
  reason,
  fingerprint: "f".repeat(64),
  snapshot: "{}",
});

const actor = { name: "op", now: 1 };

/** Resolves with the DomainError kind a promise rejects with. */
async function kindOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof DomainError) return e.kind;
    throw e;
  }
  throw new Error("expected a DomainError");
}

/** Registers the contract tests; `open` returns a new, empty store each time. */
export function storeContract(name: string, open: () => Promise<Store>): void {
  describe(`${name} store contract`, () => {
    it("round-trips a rollout with its maps and appends chained events", async () => {
      const store = await open();
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
      const store = await open();
      await store.commit({ events: [event("a", "1"), event("b", "2"), event("a", "3")] });
      const a = await store.listEvents({ rollout: "a", afterSeq: 0, limit: 10 });
      expect(a.map((e) => e.seq)).toEqual([1, 3]);
      expect(a[1]!.prevHash).toBe(a[0]!.hash);
      expect((await store.listEvents({ afterSeq: 1, limit: 1 })).map((e) => e.seq)).toEqual([2]);
      await store.commit({ events: [event("a", "4")] });
      const all = await store.listEvents({ afterSeq: 0, limit: 10 });
      expect(all.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
      expect(verifyChain(all).ok).toBe(true);
      await store.close();
    });

    it("deletes a rollout but keeps its events", async () => {
      const store = await open();
      await store.commit({ put: rolloutFixture(), events: [event("checkout", "c")] });
      await store.commit({ remove: "checkout", events: [event("checkout", "d")] });
      expect(await store.loadRollouts()).toEqual([]);
      expect((await store.listEvents({ rollout: "checkout", afterSeq: 0, limit: 10 })).length).toBe(2);
      await store.close();
    });

    it("rolls back a failed commit whole", async () => {
      const store = await open();
      const bad = { ...event("checkout", "x"), snapshot: null as unknown as string };
      await expect(store.commit({ put: rolloutFixture(), events: [event("checkout", "ok"), bad] })).rejects.toThrow();
      expect(await store.loadRollouts()).toEqual([]);
      expect(await store.lastSeq()).toBe(0);
      await store.close();
    });

    it("commits a group of changes in order, each refused change alone, the rest chained across it", async () => {
      const store = await open();
      const v1 = rolloutFixture();
      const v2 = setWeight(v1, 1000, actor).rollout;
      const v3 = setWeight(v2, 2000, actor).rollout;
      const other = { ...rolloutFixture(), name: "other" };
      const results = await store.commitMany([
        { put: v1, expectedVersion: 0, events: [event("checkout", "created")] },
        // Sees the create before it in the same transaction.
        { put: v2, expectedVersion: 1, events: [event("checkout", "to 1000")] },
        // Refused (the stored version is 2 by now): rolled back alone, with its event.
        { put: setWeight(v1, 3000, actor).rollout, expectedVersion: 1, events: [event("checkout", "lost")] },
        // Computed from the refused one: refused too, though its expected version is the stored one.
        { put: setWeight(setWeight(v1, 3000, actor).rollout, 4000, actor).rollout, expectedVersion: 2, dependsOn: 2, events: [event("checkout", "lost too")] },
        { put: other, expectedVersion: 0, events: [event("other", "created")] },
        { put: rolloutFixture(), expectedVersion: 0, events: [event("checkout", "again")] },
        { remove: "nothing", events: [event("nothing", "gone")] },
        { put: v3, expectedVersion: 2, events: [event("checkout", "to 2000")] },
        { events: [event("checkout", "note")] },
      ]);
      expect(results.map((r) => r.error?.kind ?? "ok")).toEqual(["ok", "ok", "aborted", "aborted", "ok", "already_exists", "not_found", "ok", "ok"]);
      const appended = results.flatMap((r) => r.events ?? []);
      expect(appended.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
      const events = await store.listEvents({ afterSeq: 0, limit: 20 });
      expect(events).toEqual(appended);
      expect(events.map((e) => e.reason)).toEqual(["created", "to 1000", "created", "to 2000", "note"]);
      expect(verifyChain(events).ok).toBe(true);
      const chain = await store.listEvents({ rollout: "checkout", afterSeq: 0, limit: 20 });
      expect(chain[2]!.prevHash).toBe(chain[1]!.hash);
      const loaded = await store.loadRollouts();
      expect(loaded.map((l) => l.rollout)).toEqual([v3, other]);
      expect(await store.lastSeq()).toBe(5);
      // The next single commit goes on from the group.
      const [next] = await store.commit({ events: [event("checkout", "after")] });
      expect(next!.seq).toBe(6);
      expect(next!.prevHash).toBe(events[4]!.hash);
      await store.close();
    });

    it("fails a group whole when a change fails with anything but a refusal, and writes nothing", async () => {
      const store = await open();
      await store.commit({ put: rolloutFixture(), events: [event("checkout", "created")] });
      const bad = { ...event("checkout", "x"), snapshot: null as unknown as string };
      const v2 = setWeight(rolloutFixture(), 1000, actor).rollout;
      await expect(
        store.commitMany([
          { put: v2, expectedVersion: 1, events: [event("checkout", "to 1000")] },
          { put: { ...rolloutFixture(), name: "other" }, expectedVersion: 0, events: [event("other", "created"), bad] },
        ]),
      ).rejects.toThrow();
      expect((await store.loadRollouts()).map((l) => l.rollout)).toEqual([rolloutFixture()]);
      expect(await store.lastSeq()).toBe(1);
      expect(await store.commitMany([])).toEqual([]);
      await store.close();
    });

    it("refuses a change to a version that is not the stored one, and changes nothing", async () => {
      const store = await open();
      const v1 = rolloutFixture();
      await store.commit({ put: v1, events: [event("checkout", "created")] });
      const v2 = setWeight(v1, 1000, actor).rollout;
      const v2b = setWeight(v1, 2000, actor).rollout;
      await store.commit({ put: v2, events: [event("checkout", "to 1000")] });
      // A second writer that started from version 1 too.
      expect(await kindOf(store.commit({ put: v2b, events: [event("checkout", "to 2000")] }))).toBe("aborted");
      expect(await kindOf(store.commit({ put: rolloutFixture(), events: [event("checkout", "again")] }))).toBe("already_exists");
      expect(await kindOf(store.commit({ put: setWeight(v2, 3000, actor).rollout, expectedVersion: 1, events: [] }))).toBe("aborted");
      expect(await kindOf(store.commit({ remove: "checkout", expectedVersion: 1, events: [event("checkout", "gone")] }))).toBe(
        "aborted",
      );
      expect(await kindOf(store.commit({ remove: "nothing", events: [event("nothing", "gone")] }))).toBe("not_found");
      const [loaded] = await store.loadRollouts();
      expect(loaded!.rollout).toEqual(v2);
      expect(await store.lastSeq()).toBe(2);
      // The expected version, when given, is what counts.
      await store.commit({ put: setWeight(v2, 3000, actor).rollout, expectedVersion: 2, events: [] });
      await store.commit({ remove: "checkout", expectedVersion: 3, events: [event("checkout", "gone")] });
      expect(await store.loadRollouts()).toEqual([]);
      // A rollout deleted and created again starts at version 1 and continues its chain.
      await store.commit({ put: v1, expectedVersion: 0, events: [event("checkout", "created again")] });
      const chain = await store.listEvents({ rollout: "checkout", afterSeq: 0, limit: 10 });
      expect(chain.map((e) => e.reason)).toEqual(["created", "to 1000", "gone", "created again"]);
      expect(verifyChain(chain).ok).toBe(true);
      await store.close();
    });

    it("stores window buckets and evaluator state, clears and expires them", async () => {
      const store = await open();
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

    it("overwrites a bucket, drops a window's expired buckets, and a deleted rollout's windows and state", async () => {
      const store = await open();
      await store.commit({ put: rolloutFixture(), events: [] });
      const at = (startMs: number, byte: number) => ({ rollout: "checkout", variant: "stable" as const, startMs, data: new Uint8Array([byte]) });
      await store.flushWindows({ buckets: [at(1000, 1), at(2000, 2), at(3000, 3)], cleared: [], analysis: [{ rollout: "checkout", state: "{}" }] });
      await store.flushWindows({
        buckets: [at(3000, 4)],
        cleared: [],
        analysis: [{ rollout: "checkout", state: '{"n":2}' }],
        expired: [{ rollout: "checkout", variant: "stable", beforeMs: 2500 }],
      });
      const rows = await store.loadWindowBuckets();
      expect(rows.map((b) => [b.startMs, [...b.data]])).toEqual([[3000, [4]]]);
      expect((await store.loadRollouts())[0]!.analysis).toBe('{"n":2}');
      await store.commit({ remove: "checkout", events: [] });
      expect(await store.loadWindowBuckets()).toEqual([]);
      await store.commit({ put: rolloutFixture(), events: [] });
      expect((await store.loadRollouts())[0]!.analysis).toBeUndefined();
      await store.close();
    });

    it("fails every call once closed", async () => {
      const store = await open();
      await store.close();
      await expect(store.loadRollouts()).rejects.toThrow(/closed/);
      await expect(store.commit({ events: [event("a", "1")] })).rejects.toThrow(/closed/);
    });
  });
}
