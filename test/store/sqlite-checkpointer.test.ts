import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import type { Store } from "../../src/store/store.js";

/**
 * The server's SQLite store checkpoints the WAL from a worker thread (sqlite-checkpointer.ts),
 * never inside a commit on the event loop. Checked by the files' sizes, never by a duration.
 */
let dir: string;
const stores: Store[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

const PAGE = 4096;
/** Writes ~`pages` pages of window buckets, `perFlush` buckets of 3 KiB at a time. */
async function fill(store: Store, pages: number, from = 0): Promise<void> {
  const data = new Uint8Array(3000).fill(1);
  const perFlush = 50;
  for (let i = 0; i < Math.ceil(pages / perFlush); i++) {
    const buckets = Array.from({ length: perFlush }, (_, j) => ({ rollout: "r", variant: "canary" as const, startMs: (from + i * perFlush + j) * 1000, data }));
    await store.flushWindows({ buckets, cleared: [], analysis: [] });
  }
}

describe("WAL checkpoints in a worker thread", () => {
  it("leave commits alone: the WAL grows past SQLite's 1,000-page auto-checkpoint until the thread runs, which then copies it into the database", async () => {
    dir = mkdtempSync(join(tmpdir(), "rollgate-ckpt-"));
    const path = join(dir, "r.db");
    const warnings: string[] = [];
    // A thread that does not come round during the fill: no commit may checkpoint meanwhile.
    const idle = openSqliteStore(path, { checkpointThread: { warn: (m) => warnings.push(m), everyMs: 3_600_000 } });
    stores.push(idle);
    await fill(idle, 2500);
    // With the auto-checkpoint in commits, the WAL would restart at ~1,000 pages (~4 MiB).
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(2000 * PAGE);
    const dbBefore = statSync(path).size;
    await idle.close();
    stores.pop();

    // Closing checkpointed (the last connection); now a store whose thread runs often.
    const busy = openSqliteStore(path, { checkpointThread: { warn: (m) => warnings.push(m), everyMs: 50 } });
    stores.push(busy);
    expect(statSync(path).size).toBeGreaterThan(dbBefore); // everything is in the database file
    const dbAfterClose = statSync(path).size;
    await fill(busy, 1500, 10_000);
    // The thread copies the new pages into the database file, with no commit doing it.
    while (statSync(path).size <= dbAfterClose) await new Promise((r) => setTimeout(r, 20));
    expect((await busy.loadWindowBuckets()).length).toBe(Math.ceil(2500 / 50) * 50 + Math.ceil(1500 / 50) * 50);
    expect(warnings).toEqual([]);
  }, 60_000);
});
