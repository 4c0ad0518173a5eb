// Group commit (docs/design.md, "Group commit"): changes staged in one event-loop turn, or while
// a commit is in flight, share one transaction; each is answered only after that commit, a
// refused change fails alone, a failed commit fails the whole group and changes nothing in memory.
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { verifyChain } from "../../src/domain/audit-chain.js";
import { manualClock } from "../../src/domain/clock.js";
import { DomainError } from "../../src/domain/errors.js";
import { setWeight } from "../../src/domain/rollout-machine.js";
import { createEngine, type Engine } from "../../src/service/engine.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import type { Commit, Store } from "../../src/store/store.js";
import { specFixture } from "../helpers/rollouts.js";

const caller = { actor: "op", reason: "test" };
const to = (bp: number) => (r: Parameters<typeof setWeight>[0], actor: Parameters<typeof setWeight>[2]) => setWeight(r, bp, actor);

interface Env {
  engine: Engine;
  base: Store;
  groups: Commit[][];
  /** Set to make the next commitMany wait for it (or fail with it). */
  gate: { hold?: Promise<void> | undefined; fail?: Error | undefined };
  logLines: string[];
  flushes: number[];
}

let stores: Store[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

async function env(): Promise<Env> {
  const base = openSqliteStore(":memory:");
  stores.push(base);
  const groups: Commit[][] = [];
  const gate: Env["gate"] = {};
  const store: Store = {
    ...base,
    async commitMany(changes) {
      groups.push([...changes]);
      const { hold, fail } = gate;
      gate.hold = undefined;
      gate.fail = undefined;
      await hold;
      if (fail !== undefined) throw fail;
      return base.commitMany(changes);
    },
  };
  const logLines: string[] = [];
  const flushes: number[] = [];
  const logger = pino({ level: "info" }, { write: (s: string) => logLines.push(s) });
  const engine = createEngine({ store, clock: manualClock(Date.UTC(2026, 0, 1)), logger, flushLog: () => flushes.push(logLines.length) });
  await engine.load();
  return { engine, base, groups, gate, logLines, flushes };
}

/** Waits two turns of the event loop: a group staged before it has started committing. */
async function turns(): Promise<void> {
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
}

async function kind(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof DomainError) return e.kind;
    return `error: ${(e as Error).message}`;
  }
  return "ok";
}

describe("group commit", () => {
  it("commits changes staged in the same turn in one transaction, each answered after it, in order", async () => {
    const t = await env();
    await t.engine.create(specFixture(), caller);
    expect(t.groups).toHaveLength(1);
    let release!: () => void;
    t.gate.hold = new Promise((r) => (release = r));
    const weights = [600, 700, 800, 900, 1000, 1100, 1200, 1300];
    let answered = 0;
    const changes = weights.map((w) => t.engine.change("checkout", caller, to(w)).then((r) => (answered++, r)));
    // Let the group start: it waits in commitMany, and nothing is visible or answered yet.
    await turns();
    expect(t.groups).toHaveLength(2);
    expect(t.groups[1]!.map((c) => c.put?.weightBp)).toEqual(weights);
    expect(t.groups[1]!.map((c) => c.expectedVersion)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(answered).toBe(0);
    expect(t.engine.get("checkout").version).toBe(1);
    expect(t.engine.routeTable("checkout")).toBe(t.engine.routeTable("checkout"));
    const linesBefore = t.logLines.length;
    release();
    const done = await Promise.all(changes);
    expect(done.map((r) => r.version)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    expect(t.engine.get("checkout")).toMatchObject({ version: 9, weightBp: 1300 });
    // Every change's line was written out (flushLog) before the answers.
    expect(t.logLines.length - linesBefore).toBe(8);
    expect(t.flushes.at(-1)).toBe(t.logLines.length);
    const events = await t.base.listEvents({ afterSeq: 0, limit: 20 });
    expect(events.map((e) => e.reason)).toEqual(["test", ...weights.map(() => "test")]);
    expect(verifyChain(events).ok).toBe(true);
  });

  it("changes staged while a commit is in flight form the next group", async () => {
    const t = await env();
    await t.engine.create(specFixture(), caller);
    let release!: () => void;
    t.gate.hold = new Promise((r) => (release = r));
    const first = t.engine.change("checkout", caller, to(600));
    await turns();
    const later = [700, 800, 900].map((w) => t.engine.change("checkout", caller, to(w)));
    await turns();
    expect(t.groups).toHaveLength(2);
    release();
    expect((await first).version).toBe(2);
    expect((await Promise.all(later)).map((r) => r.version)).toEqual([3, 4, 5]);
    expect(t.groups.map((g) => g.length)).toEqual([1, 1, 3]);
  });

  it("fails a refused change alone; a change staged on top of it is refused too; the others commit", async () => {
    const t = await env();
    await t.engine.create(specFixture(), caller);
    await t.engine.create(specFixture({ name: "other" }), caller);
    // Another writer on the same database moves "checkout" to version 2 behind the engine's back.
    const stored = (await t.base.loadRollouts()).find((s) => s.rollout.name === "checkout")!.rollout;
    await t.base.commit({ put: setWeight(stored, 5000, { name: "elsewhere", now: 1 }).rollout, expectedVersion: 1, events: [] });
    const results = await Promise.all([
      kind(t.engine.change("checkout", caller, to(600))),
      kind(t.engine.change("other", caller, to(600))),
      kind(t.engine.change("checkout", caller, to(700))),
      // Refused before the store (the transition throws): alone, too.
      kind(
        t.engine.change("other", caller, () => {
          throw new DomainError("invalid_argument", "bad weight");
        }),
      ),
      kind(t.engine.change("other", caller, to(800))),
    ]);
    expect(results).toEqual(["aborted", "ok", "aborted", "invalid_argument", "ok"]);
    expect(t.groups.at(-1)!.length).toBe(4);
    expect(t.engine.get("checkout").version).toBe(1);
    expect(t.engine.get("other")).toMatchObject({ version: 3, weightBp: 800 });
    // Nothing of the refused changes stays: the next change is computed from the committed state.
    await t.engine.reconcile();
    expect((await t.engine.change("checkout", caller, to(900))).version).toBe(3);
  });

  it("fails every change of a group whose commit fails, with the same error, and changes nothing in memory", async () => {
    const t = await env();
    await t.engine.create(specFixture(), caller);
    const events = t.engine.subscribeEvents(undefined)[Symbol.asyncIterator]();
    const table = t.engine.routeTable("checkout");
    const broken = new Error("disk I/O error");
    t.gate.fail = broken;
    const results = await Promise.all([
      t.engine.change("checkout", caller, to(600)).catch((e: unknown) => e),
      t.engine.create(specFixture({ name: "new" }), caller).catch((e: unknown) => e),
      t.engine.delete("checkout", caller).catch((e: unknown) => e),
    ]);
    expect(results).toEqual([broken, broken, broken]);
    expect(t.engine.get("checkout").version).toBe(1);
    expect(t.engine.routeTable("checkout")).toBe(table);
    expect(t.engine.list().map((r) => r.name)).toEqual(["checkout"]);
    expect(await t.base.lastSeq()).toBe(1);
    // The next group starts from the committed state.
    expect((await t.engine.change("checkout", caller, to(700))).version).toBe(2);
    const seen = await events.next();
    expect(seen.value).toMatchObject({ seq: 2, type: "weight_changed" });
    await events.return?.();
  });

  it("fails a change computed from one whose group failed, without sending it", async () => {
    const t = await env();
    await t.engine.create(specFixture(), caller);
    let release!: () => void;
    t.gate.hold = new Promise((r) => (release = r));
    t.gate.fail = new Error("connection lost");
    const first = kind(t.engine.change("checkout", caller, to(600)));
    await turns();
    // Staged while the first is in flight, on top of it.
    const second = kind(t.engine.change("checkout", caller, to(700)));
    await turns();
    release();
    expect(await first).toBe("error: connection lost");
    expect(await second).toBe("aborted");
    expect(t.groups).toHaveLength(2);
    expect(t.engine.get("checkout").version).toBe(1);
    expect((await t.engine.change("checkout", caller, to(800))).version).toBe(2);
  });

  it("answers an unchanged transition from committed state only; create and delete of one name in one group", async () => {
    const t = await env();
    await t.engine.create(specFixture(), caller);
    const [a, same, later] = await Promise.all([
      t.engine.change("checkout", caller, to(600)),
      t.engine.change("checkout", caller, to(600)),
      t.engine.change("checkout", caller, to(700)),
    ]);
    expect(a.version).toBe(2);
    // Unchanged once the first has committed, and answered before the change after it is prepared.
    expect(same).toMatchObject({ version: 2, weightBp: 600 });
    expect(later).toMatchObject({ version: 3, weightBp: 700 });
    expect(t.engine.get("checkout").weightBp).toBe(700);
    const [, gone, again] = await Promise.all([
      t.engine.change("checkout", caller, to(900)),
      t.engine.delete("checkout", caller),
      t.engine.create(specFixture(), caller),
    ]);
    expect(gone).toBeUndefined();
    expect(again.version).toBe(1);
    expect(t.engine.get("checkout")).toMatchObject({ version: 1, weightBp: 500 });
    const chain = await t.base.listEvents({ rollout: "checkout", afterSeq: 0, limit: 20 });
    expect(chain.map((e) => e.type)).toEqual(["created", "weight_changed", "weight_changed", "weight_changed", "deleted", "created"]);
    expect(verifyChain(chain).ok).toBe(true);
  });
});
