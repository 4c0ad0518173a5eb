import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { verifyChain } from "../../src/domain/audit-chain.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import { rolloutFixture } from "../helpers/rollouts.js";
import { event } from "./store-contract.js";

/**
 * A file store commits at synchronous NORMAL and syncs the WAL on the thread pool: a commit
 * resolves only after that sync, and a failed sync is never acknowledged and stops the store's
 * writes. The WAL's fdatasync is held or failed here through node:fs/promises' FileHandle.
 */
const sync = vi.hoisted(() => ({
  calls: 0,
  /** When set, each datasync waits for it. */
  gate: undefined as Promise<void> | undefined,
  fail: false,
}));
vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  return {
    ...real,
    open: async (...args: Parameters<typeof real.open>) => {
      const handle = await real.open(...args);
      return Object.assign(Object.create(handle) as typeof handle, {
        datasync: async () => {
          sync.calls++;
          await sync.gate;
          if (sync.fail) throw Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" });
          return handle.datasync();
        },
        close: () => handle.close(),
      });
    },
  };
});

/** Waits (polling) until `ok` holds; a test's own timeout ends it otherwise. */
async function until(ok: () => boolean): Promise<void> {
  while (!ok()) await new Promise((r) => setTimeout(r, 5));
}

const dirs: string[] = [];
function tempDb(): string {
  const dir = mkdtempSync(join(tmpdir(), "rollgate-sync-"));
  dirs.push(dir);
  return join(dir, "rollgate.db");
}
afterEach(() => {
  sync.calls = 0;
  sync.gate = undefined;
  sync.fail = false;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("sqlite store, the commit's sync off the event loop", () => {
  it("resolves a commit only after the WAL sync that covers it, one sync shared by the commits made during one", async () => {
    const store = openSqliteStore(tempDb());
    let release!: () => void;
    sync.gate = new Promise<void>((r) => (release = r));
    let first = false;
    const a = store.commit({ put: rolloutFixture({ name: "a" }), events: [event("a", "1")] }).then(() => (first = true));
    await until(() => sync.calls === 1);
    // The commit is made (its WAL frames written) but waits for its sync.
    expect(first).toBe(false);
    expect(sync.calls).toBe(1);
    // Two more while the first sync is in flight: they share the next one.
    const b = store.commit({ put: rolloutFixture({ name: "b" }), events: [event("b", "1")] });
    const c = store.commit({ put: rolloutFixture({ name: "c" }), events: [event("c", "1")] });
    await new Promise((r) => setTimeout(r, 20));
    expect(sync.calls).toBe(1);
    release();
    await Promise.all([a, b, c]);
    expect(first).toBe(true);
    expect(sync.calls).toBe(2);
    await store.close();
  });

  it("does not acknowledge a commit whose sync failed, refuses later writes and pings, and reopens consistent", async () => {
    const path = tempDb();
    const store = openSqliteStore(path);
    await store.commit({ put: rolloutFixture({ name: "a" }), events: [event("a", "1")] });
    sync.fail = true;
    const failed = store.commit({ events: [event("a", "2")] });
    await expect(failed).rejects.toMatchObject({ kind: "unavailable", message: expect.stringMatching(/syncing the write-ahead log \(EIO\).*restart/) });
    sync.fail = false;
    // A sync that works again proves nothing about the pages the failed one may have dropped.
    await expect(store.commit({ events: [event("a", "3")] })).rejects.toMatchObject({ kind: "unavailable" });
    await expect(store.flushWindows({ buckets: [], cleared: [], analysis: [] })).rejects.toMatchObject({ kind: "unavailable" });
    await expect(store.ping!()).rejects.toMatchObject({ kind: "unavailable" });
    await store.close();
    // A restart reads back what the database holds: here the unacknowledged change made it (no
    // power was lost); either way the audit chain is whole.
    const again = openSqliteStore(path);
    const events = await again.listEvents({ afterSeq: 0, limit: 10 });
    expect(events.map((e) => e.reason)).toEqual(["1", "2"]);
    expect(verifyChain(events).ok).toBe(true);
    await again.commit({ events: [event("a", "4")] });
    await again.ping!();
    await again.close();
  });

  it("stops the store on a window flush's failed sync too: a later commit is refused, not synced after the gap", async () => {
    const store = openSqliteStore(tempDb());
    await store.commit({ put: rolloutFixture({ name: "a" }), events: [event("a", "1")] });
    sync.fail = true;
    const bucket = { rollout: "a", variant: "canary" as const, startMs: 0, data: new Uint8Array([1, 2, 3]) };
    await expect(store.flushWindows({ buckets: [bucket], cleared: [], analysis: [] })).rejects.toMatchObject({ kind: "unavailable" });
    sync.fail = false;
    await expect(store.commit({ events: [event("a", "2")] })).rejects.toMatchObject({ kind: "unavailable" });
    await expect(store.ping!()).rejects.toMatchObject({ kind: "unavailable" });
    await store.close();
  });

  it("closes only after the syncs already asked for, the one queued behind the running one included", async () => {
    const store = openSqliteStore(tempDb());
    let release1!: () => void;
    let release2!: () => void;
    sync.gate = new Promise<void>((r) => (release1 = r));
    const a = store.commit({ put: rolloutFixture({ name: "a" }), events: [event("a", "1")] });
    await until(() => sync.calls === 1);
    const b = store.commit({ put: rolloutFixture({ name: "b" }), events: [event("b", "1")] });
    await new Promise((r) => setTimeout(r, 20));
    const closed = store.close();
    // The second sync (b's) is held in its turn: a close that did not wait for it would close
    // the WAL's file under it, and b would fail though it is in the database.
    sync.gate = new Promise<void>((r) => (release2 = r));
    release1();
    await until(() => sync.calls === 2);
    await new Promise((r) => setTimeout(r, 20));
    release2();
    await expect(Promise.all([a, b, closed])).resolves.toBeDefined();
  });
});
