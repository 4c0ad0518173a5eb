import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { MIGRATIONS } from "../../src/store/migrations.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import type { Store } from "../../src/store/store.js";
import { rolloutFixture } from "../helpers/rollouts.js";
import { event, storeContract } from "./store-contract.js";

const dirs: string[] = [];
function tempDb(): string {
  const dir = mkdtempSync(join(tmpdir(), "rollgate-store-"));
  dirs.push(dir);
  return join(dir, "nested", "rollgate.db");
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

storeContract("sqlite", async () => openSqliteStore(":memory:"));

describe("sqlite store", () => {
  it("persists to a file with WAL and the schema version", async () => {
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
});
