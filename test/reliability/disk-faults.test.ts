import { execFileSync, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { repoRoot } from "../helpers/servers.js";
import { postJson, sleep, startChild, type ChildServer } from "./abuse-kit.js";

/**
 * Disk faults under a real server (child process) on SQLite: a full filesystem (a tmpfs with a
 * size limit: needs root, skipped otherwise) and another process holding the write lock.
 * Control-plane changes fail with RESOURCE_EXHAUSTED/UNAVAILABLE and change nothing, /readyz
 * says why, Route and RecordOutcome go on, and it all recovers without a restart.
 */

const isRoot = process.getuid?.() === 0;
const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups.reverse()) {
    try {
      c();
    } catch {
      // best effort
    }
  }
});

async function readyz(s: ChildServer): Promise<{ status: number; body: string }> {
  const r = await fetch(`${s.url}/readyz`);
  return { status: r.status, body: await r.text() };
}

async function waitReady(s: ChildServer, status: number, ms = 10_000): Promise<{ status: number; body: string }> {
  const until = Date.now() + ms;
  for (;;) {
    const r = await readyz(s);
    if (r.status === status || Date.now() > until) return r;
    await sleep(100);
  }
}

/** What a rejected change must leave alone: the rollout and the event log. */
async function state(s: ChildServer): Promise<string> {
  const [list, events] = await Promise.all([
    postJson(s.url, "rollgate.v1.RolloutService/ListRollouts", {}),
    postJson(s.url, "rollgate.v1.RolloutService/ListEvents", { limit: 1000 }),
  ]);
  return JSON.stringify([list.json, events.json]);
}

/** Route and RecordOutcome still answer. */
async function dataPlaneWorks(s: ChildServer, rollout: string): Promise<void> {
  const route = await postJson(s.url, "rollgate.v1.DecisionService/Route", { rollout, key: "user-1" });
  expect(route.status, JSON.stringify(route.json)).toBe(200);
  const outcome = await postJson(s.url, "rollgate.v1.DecisionService/RecordOutcome", {
    rollout,
    outcomes: [{ variant: "VARIANT_CANARY", success: true, latencyMs: 12 }],
  });
  expect(outcome.status, JSON.stringify(outcome.json)).toBe(200);
}

describe.skipIf(!isRoot)("a full disk", () => {
  it("changes fail RESOURCE_EXHAUSTED and change nothing; /readyz says disk full; all recovers once space is freed", { timeout: 90_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "rollgate-full-"));
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", dir]);
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    cleanups.push(() => execFileSync("umount", ["-l", dir]));
    const s = await startChild([], { db: join(dir, "rollgate.db") });
    cleanups.push(() => void s.stop());
    expect((await postJson(s.url, "rollgate.v1.RolloutService/CreateRollout", { rollout: { name: "full", stableVersion: "v1", canaryVersion: "v2" } })).status).toBe(200);

    // Fill the filesystem to the last byte.
    const filler = join(dir, "filler");
    const fd = openSync(filler, "w");
    const block = Buffer.alloc(64 * 1024, 1);
    try {
      for (;;) writeSync(fd, block);
    } catch {
      for (;;) {
        try {
          writeSync(fd, block, 0, 512);
        } catch {
          break;
        }
      }
    }
    closeSync(fd);

    const before = await state(s);
    const spec = { name: "full-2", stableVersion: "v1", canaryVersion: "v2" };
    for (let i = 0; i < 20; i++) {
      const r = await postJson(s.url, "rollgate.v1.RolloutService/CreateRollout", { rollout: { ...spec, name: `full-${i}` }, reason: "fill" });
      if (r.status === 200) continue; // pages the WAL had free still took it: fill on
      expect(r.json.code).toBe("resource_exhausted");
      expect(String(r.json.message)).toMatch(/^database: disk full \(SQLITE_FULL\); the change was not made/);
      break;
    }
    const mid = await state(s);
    const rejected = await postJson(s.url, "rollgate.v1.RolloutService/SetWeight", { name: "full", weightBp: 2500, reason: "full" });
    expect(rejected.json.code).toBe("resource_exhausted");
    expect(await state(s)).toBe(mid);
    void before;
    const ready = await waitReady(s, 503);
    expect(ready).toEqual({ status: 503, body: "not ready: database: disk full (SQLITE_FULL)\n" });
    await dataPlaneWorks(s, "full");
    await sleep(1500); // a window flush and evaluator round on the full disk
    expect(s.alive()).toBe(true);

    rmSync(filler);
    expect(await waitReady(s, 200)).toEqual({ status: 200, body: "ready\n" });
    const after = await postJson(s.url, "rollgate.v1.RolloutService/SetWeight", { name: "full", weightBp: 2500, reason: "space again" });
    expect(after.status, JSON.stringify(after.json)).toBe(200);
    await dataPlaneWorks(s, "full");
  });
});

describe.skipIf(!isRoot)("a database file that cannot be written", () => {
  it("changes fail UNAVAILABLE and change nothing; /readyz says why; writable again, all recovers", { timeout: 90_000 }, async () => {
    // ext4 on a loop device: `chattr +i` makes the files immutable to root too, at once, for
    // already-open descriptors (ext4 checks it on every write); tmpfs has no such flag and a
    // read-only remount is refused while the server has the files open for writing.
    const dir = mkdtempSync(join(tmpdir(), "rollgate-ro-"));
    const img = `${dir}.img`;
    execFileSync("truncate", ["-s", "16M", img]);
    execFileSync("mkfs.ext4", ["-q", "-F", img]);
    execFileSync("mount", ["-o", "loop", img, dir]);
    cleanups.push(() => rmSync(img, { force: true }));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    cleanups.push(() => execFileSync("umount", ["-l", dir]));
    const db = join(dir, "rollgate.db");
    const s = await startChild([], { db });
    cleanups.push(() => void s.stop());
    expect((await postJson(s.url, "rollgate.v1.RolloutService/CreateRollout", { rollout: { name: "ro", stableVersion: "v1", canaryVersion: "v2" } })).status).toBe(200);
    const files = [db, `${db}-wal`];
    execFileSync("chattr", ["+i", ...files]);
    cleanups.push(() => execFileSync("chattr", ["-i", ...files]));

    const before = await state(s);
    const rejected = await postJson(s.url, "rollgate.v1.RolloutService/SetWeight", { name: "ro", weightBp: 2500, reason: "read-only" });
    expect(rejected.json.code, JSON.stringify(rejected.json)).toBe("unavailable");
    expect(String(rejected.json.message)).toMatch(/^database: (read-only|I\/O error) \(SQLITE_[A-Z_]+\); the change was not made/);
    expect(await state(s)).toBe(before);
    const ready = await waitReady(s, 503);
    expect(ready.status).toBe(503);
    expect(ready.body).toMatch(/^not ready: database: (read-only|I\/O error) \(SQLITE_[A-Z_]+\)\n$/);
    await dataPlaneWorks(s, "ro");
    await sleep(1500);
    expect(s.alive()).toBe(true);

    execFileSync("chattr", ["-i", ...files]);
    expect(await waitReady(s, 200)).toEqual({ status: 200, body: "ready\n" });
    const after = await postJson(s.url, "rollgate.v1.RolloutService/SetWeight", { name: "ro", weightBp: 2500, reason: "writable again" });
    expect(after.status, JSON.stringify(after.json)).toBe(200);
  });
});

/** Holds SQLite's write lock (BEGIN IMMEDIATE) from another process for `ms`; resolves once it is held. */
function holdWriteLock(db: string, ms: number): Promise<{ released: Promise<void> }> {
  const script = `const D=require("better-sqlite3");const d=new D(process.argv[1]);d.exec("BEGIN IMMEDIATE");console.log("held");setTimeout(()=>{d.exec("ROLLBACK");d.close();},${ms});`;
  const child = spawn(process.execPath, ["-e", script, db], { cwd: repoRoot, stdio: ["ignore", "pipe", "inherit"] });
  cleanups.push(() => child.kill("SIGKILL"));
  const done = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // Wrapped: a promise resolved with a promise would wait for that one.
  return new Promise((resolve) => child.stdout.once("data", () => resolve({ released: done })));
}

describe("another process holding the write lock", () => {
  it("a brief lock is waited for; a long one fails UNAVAILABLE in bounded time, /readyz says so, and it recovers", { timeout: 90_000 }, async () => {
    const s = await startChild();
    cleanups.push(() => void s.stop());
    const db = join(s.dir, "rollgate.db");
    expect((await postJson(s.url, "rollgate.v1.RolloutService/CreateRollout", { rollout: { name: "locked", stableVersion: "v1", canaryVersion: "v2" } })).status).toBe(200);

    // Held for 1 s: the change waits and succeeds.
    const brief = await holdWriteLock(db, 1000);
    const waited = await postJson(s.url, "rollgate.v1.RolloutService/SetWeight", { name: "locked", weightBp: 1000, reason: "brief lock" });
    expect(waited.status, JSON.stringify(waited.json)).toBe(200);
    await brief.released;

    // Held for 10 s: the change fails UNAVAILABLE after about 5 s (LOCK_WAIT_MS) — while the lock
    // is still held, so it did not wait for it to go — and changes nothing.
    const long = await holdWriteLock(db, 10_000);
    const before = await state(s);
    const started = Date.now();
    const failed = await postJson(s.url, "rollgate.v1.RolloutService/SetWeight", { name: "locked", weightBp: 2000, reason: "long lock" });
    const tookMs = Date.now() - started;
    console.log(`long lock: the change failed after ${tookMs} ms`);
    expect(failed.json.code, JSON.stringify(failed.json)).toBe("unavailable");
    expect(String(failed.json.message)).toMatch(/^database: locked by another process for over \d+(\.\d)? s \(SQLITE_BUSY\); the change was not made/);
    expect(await state(s)).toBe(before);
    expect(await waitReady(s, 503)).toEqual({ status: 503, body: "not ready: database: locked by another process (SQLITE_BUSY)\n" });
    await dataPlaneWorks(s, "locked");
    await long.released;

    expect(await waitReady(s, 200)).toEqual({ status: 200, body: "ready\n" });
    const after = await postJson(s.url, "rollgate.v1.RolloutService/SetWeight", { name: "locked", weightBp: 2000, reason: "lock gone" });
    expect(after.status, JSON.stringify(after.json)).toBe(200);
    expect(s.alive()).toBe(true);
  });
});
