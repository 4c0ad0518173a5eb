import { mkdirSync } from "node:fs";
import { open as openFile, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { chainEvent, type AuditEvent, type EventType } from "../domain/audit-chain.js";
import { DomainError } from "../domain/errors.js";
import type { Variant } from "../domain/rollout.js";
import { MIGRATIONS } from "./migrations.js";
import { isDomainError } from "../domain/errors.js";
import { startCheckpointer } from "./sqlite-checkpointer.js";
import { BUSY_TIMEOUT_MS, LOCK_WAIT_MS, checkWritable, writeWithRetry } from "./sqlite-faults.js";
import { decodeRollout, encodeRollout } from "./rollout-codec.js";
import type { Commit, CommitResult, EventQuery, Store, StoredRollout, WindowBucketRow, WindowFlush } from "./store.js";
import { checkVersion, dependencyRefused, versionRequirement } from "./version-check.js";

interface EventRow {
  seq: bigint;
  time_ns: bigint;
  rollout: string;
  type: string;
  actor: string;
  reason: string;
  fingerprint: string;
  snapshot: string;
  prev_hash: string;
  hash: string;
}

/** The database file could not be opened or migrated; `path` is the file, `cause` the reason. */
export class StoreOpenError extends Error {
  override readonly name = "StoreOpenError";
  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    super(`cannot open the SQLite database ${path}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

function openDatabase(path: string): Database.Database {
  let db: Database.Database | undefined;
  try {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    db = new Database(path);
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    // Opening may wait for another process's lock; once serving, a busy wait blocks the event
    // loop, so it is short and writes retry asynchronously (sqlite-faults.ts).
    db.pragma(`busy_timeout = ${LOCK_WAIT_MS}`);
    migrate(db);
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    // From here every write's WAL frames are synced by the store itself, off the event loop
    // (openSqliteStore: durably); the migrations above were FULL commits.
    db.pragma("synchronous = NORMAL");
    return db;
  } catch (e) {
    db?.close();
    // SQLite's own words ("file is not a database") name no file: say which one.
    throw new StoreOpenError(path, e);
  }
}

/**
 * Opens (creating if needed) the SQLite store at `path` (":memory:" for tests): WAL journal,
 * every commit and flush resolving only once its WAL frames are synced (a FULL commit's
 * guarantee, the sync off the event loop: see durably) so that it survives power loss,
 * migrations applied. Throws a
 * StoreOpenError naming the path when the file cannot be opened as a database.
 */
export function openSqliteStore(path: string, opts: { checkpointThread?: { warn: (msg: string) => void; everyMs?: number } } = {}): Store {
  const db = openDatabase(path);
  // The server's store checkpoints the WAL from a worker thread, not inside a commit (sqlite-checkpointer.ts).
  const checkpointer = opts.checkpointThread === undefined || path === ":memory:" ? undefined : startCheckpointer(db, path, opts.checkpointThread.warn, opts.checkpointThread.everyMs);

  const st = {
    putRollout: db.prepare(
      "INSERT INTO rollouts (name, version, data, updated_at) VALUES (?, ?, ?, ?) " +
        "ON CONFLICT (name) DO UPDATE SET version = excluded.version, data = excluded.data, updated_at = excluded.updated_at",
    ),
    deleteRollout: db.prepare("DELETE FROM rollouts WHERE name = ?"),
    rolloutVersion: db.prepare<[string], { version: number }>("SELECT version FROM rollouts WHERE name = ?"),
    deleteBuckets: db.prepare("DELETE FROM window_buckets WHERE rollout = ?"),
    deleteVariantBuckets: db.prepare("DELETE FROM window_buckets WHERE rollout = ? AND variant = ?"),
    deleteAnalysis: db.prepare("DELETE FROM analysis_state WHERE rollout = ?"),
    lastHash: db.prepare<[string], { hash: string }>("SELECT hash FROM events WHERE rollout = ? ORDER BY seq DESC LIMIT 1"),
    lastSeq: db.prepare<[], { seq: number | null }>("SELECT MAX(seq) AS seq FROM events"),
    insertEvent: db.prepare(
      "INSERT INTO events (seq, time_ns, rollout, type, actor, reason, fingerprint, snapshot, prev_hash, hash) " +
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    eventsAll: db.prepare<[number, number], EventRow>("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?").safeIntegers(true),
    eventsOf: db
      .prepare<[string, number, number], EventRow>("SELECT * FROM events WHERE rollout = ? AND seq > ? ORDER BY seq LIMIT ?")
      .safeIntegers(true),
    rollouts: db.prepare<[], { name: string; data: string; analysis: string | null }>(
      "SELECT r.name, r.data, a.data AS analysis FROM rollouts r LEFT JOIN analysis_state a ON a.rollout = r.name ORDER BY r.name",
    ),
    buckets: db.prepare<[], { rollout: string; variant: string; start_ms: number; data: Buffer }>(
      "SELECT rollout, variant, start_ms, data FROM window_buckets",
    ),
    putBucket: db.prepare(
      "INSERT INTO window_buckets (rollout, variant, start_ms, data) VALUES (?, ?, ?, ?) " +
        "ON CONFLICT (rollout, variant, start_ms) DO UPDATE SET data = excluded.data",
    ),
    expireBuckets: db.prepare("DELETE FROM window_buckets WHERE start_ms < ?"),
    // A range of the primary key (rollout, variant, start_ms): no table scan.
    expireWindowBuckets: db.prepare("DELETE FROM window_buckets WHERE rollout = ? AND variant = ? AND start_ms < ?"),
    putAnalysis: db.prepare(
      "INSERT INTO analysis_state (rollout, data) VALUES (?, ?) ON CONFLICT (rollout) DO UPDATE SET data = excluded.data",
    ),
  };

  const commitTx = db.transaction((change: Commit): AuditEvent[] => {
    const req = versionRequirement(change);
    if (req !== undefined) checkVersion(req, st.rolloutVersion.get(req.name)?.version);
    if (change.put !== undefined) {
      const r = change.put;
      st.putRollout.run(r.name, r.version, encodeRollout(r), r.updatedAt);
    }
    if (change.remove !== undefined) {
      st.deleteRollout.run(change.remove);
      st.deleteBuckets.run(change.remove);
      st.deleteAnalysis.run(change.remove);
    }
    let seq = st.lastSeq.get()?.seq ?? 0;
    return change.events.map((e) => {
      seq += 1;
      const chained = chainEvent(e, seq, st.lastHash.get(e.rollout)?.hash ?? "");
      st.insertEvent.run(
        chained.seq,
        chained.timeNs,
        chained.rollout,
        chained.type,
        chained.actor,
        chained.reason,
        chained.fingerprint,
        chained.snapshot,
        chained.prevHash,
        chained.hash,
      );
      return chained;
    });
  });

  // Called inside commitManyTx, commitTx runs as a savepoint (better-sqlite3 nests transactions
  // that way): a refused change is rolled back alone, the group goes on.
  const commitManyTx = db.transaction((changes: readonly Commit[]): CommitResult[] => {
    const results: CommitResult[] = [];
    for (const change of changes) {
      if (change.dependsOn !== undefined && results[change.dependsOn]?.error !== undefined) {
        results.push({ error: dependencyRefused(change) });
        continue;
      }
      try {
        results.push({ events: commitTx(change) });
      } catch (e) {
        if (!(e instanceof DomainError)) throw e;
        results.push({ error: e });
      }
    }
    return results;
  });

  const flushTx = db.transaction((flush: WindowFlush) => {
    for (const c of flush.cleared) st.deleteVariantBuckets.run(c.rollout, c.variant);
    for (const b of flush.buckets) st.putBucket.run(b.rollout, b.variant, b.startMs, Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength));
    for (const a of flush.analysis) st.putAnalysis.run(a.rollout, a.state);
    for (const x of flush.expired ?? []) st.expireWindowBuckets.run(x.rollout, x.variant, x.beforeMs);
    if (flush.expireBeforeMs !== undefined) st.expireBuckets.run(flush.expireBeforeMs);
  });

  let open = true;
  // The WAL file, opened once for the syncs after NORMAL commits (see durably).
  let wal: Promise<FileHandle> | undefined;
  const syncWal = async () => {
    // Read-only is enough for fdatasync (Linux), and works when only the database file is writable.
    wal ??= openFile(`${path}-wal`, "r");
    try {
      await (await wal).datasync();
    } catch (e) {
      // Closed: the store refuses writes from now on (synced), so no later sync uses it.
      const failed = wal;
      wal = undefined;
      void failed.then((h) => h.close()).catch(() => undefined);
      throw e;
    }
  };
  // Group sync: a sync covers every commit made before it started, so a commit made while one
  // is in flight waits for the next, which all such commits share.
  let syncing: Promise<void> | undefined;
  let nextSync: Promise<void> | undefined;
  const syncCovering = (): Promise<void> => {
    if (syncing === undefined) {
      syncing = syncWal().finally(() => (syncing = undefined));
      return syncing;
    }
    nextSync ??= syncing
      .catch(() => undefined)
      .then(() => {
        nextSync = undefined;
        return syncCovering();
      });
    return nextSync;
  };
  const ensureOpen = () => {
    if (!open) throw new Error("store is closed");
  };
  // A write failed on a disk fault: the next ping probes with a real write to see it recover.
  let faulted = false;
  // A control-plane commit's sync failed: what every later write and ping fail with (see durably).
  let broken: DomainError | undefined;
  const write = async <T>(fn: () => T): Promise<T> => {
    if (broken !== undefined) throw broken;
    try {
      const out = await writeWithRetry(fn);
      faulted = false;
      return out;
    } catch (e) {
      if (isDomainError(e) && (e.kind === "unavailable" || e.kind === "resource_exhausted")) faulted = true;
      throw e;
    }
  };
  /**
   * Runs a write transaction durably without holding the event loop for its fsync: it commits at
   * synchronous NORMAL (the WAL frames written, not synced), then the WAL is synced on libuv's
   * thread pool, shared with the commits and flushes around it (syncCovering), and the promise
   * resolves only after that sync, as a FULL commit returns only after its own. Callers act on
   * the result (apply it in memory, answer, publish) only then, so nothing of it is visible or
   * acknowledged before it is durable. A crash before the sync loses at most the commits that
   * were never acknowledged (the WAL keeps a prefix of them: the audit chain stays whole); SQLite
   * keeps the database consistent either way (NORMAL syncs the WAL before every checkpoint).
   *
   * If the sync fails, the commit is in the database but perhaps not on disk, and after a failed
   * fsync Linux may have dropped the pages it did not write, so a later sync that succeeds
   * proves nothing. The commit is not acknowledged, and the store refuses every later write and
   * ping (UNAVAILABLE, `/readyz` not ready) until the process restarts and reads back what the
   * disk holds: the registry then matches the database again (PostgreSQL stops on a failed fsync
   * for the same reason).
   */
  const durably = async <T>(fn: () => T): Promise<T> => {
    if (path === ":memory:") return write(fn);
    const out = await write(fn);
    await synced();
    return out;
  };
  /**
   * Waits for a sync covering every write made so far. A failed sync stops the store's writes
   * (see durably) whichever write it covered, a window flush's too: the WAL frames it may have
   * dropped sit before every later commit's, and SQLite's recovery stops at the first frame that
   * does not check out, so a commit synced later could still be lost.
   */
  const synced = async (): Promise<void> => {
    try {
      await syncCovering();
    } catch (e) {
      broken ??= new DomainError(
        "unavailable",
        `database: I/O error syncing the write-ahead log (${(e as { code?: string }).code ?? String(e)}); ` +
          "changes since the last good sync may not be on disk: restart rollgate to read back the database",
      );
      faulted = true;
      throw broken;
    }
  };

  return {
    async loadRollouts(): Promise<StoredRollout[]> {
      ensureOpen();
      return st.rollouts.all().map((row) =>
        row.analysis === null ? { rollout: decodeRollout(row.data) } : { rollout: decodeRollout(row.data), analysis: row.analysis },
      );
    },
    async commit(change) {
      ensureOpen();
      return durably(() => commitTx(change));
    },
    async commitMany(changes) {
      ensureOpen();
      return durably(() => commitManyTx(changes));
    },
    async listEvents(q: EventQuery) {
      ensureOpen();
      const rows = q.rollout === undefined ? st.eventsAll.all(q.afterSeq, q.limit) : st.eventsOf.all(q.rollout, q.afterSeq, q.limit);
      return rows.map(toEvent);
    },
    async lastSeq() {
      ensureOpen();
      return Number(st.lastSeq.get()?.seq ?? 0);
    },
    async loadWindowBuckets(): Promise<WindowBucketRow[]> {
      ensureOpen();
      return st.buckets.all().map((b) => ({
        rollout: b.rollout,
        variant: b.variant as Variant,
        startMs: b.start_ms,
        data: new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength),
      }));
    },
    async flushWindows(flush) {
      ensureOpen();
      // Durable as a control-plane commit (see durably and synced): a write that fails (a full
      // disk, a lock) is given back and retried by the engine; a sync that fails stops the store.
      if (path === ":memory:") return write(() => flushTx(flush));
      await write(() => flushTx(flush));
      await synced();
    },
    /** Resolves when the database can be written (for /readyz); rejects with the fault (sqlite-faults.ts). */
    async ping() {
      ensureOpen();
      if (broken !== undefined) throw broken;
      checkWritable(db, faulted);
      faulted = false;
    },
    async close() {
      if (!open) return;
      open = false;
      // Every sync already asked for, the one waiting behind the running one too (its commits
      // are in the database: their callers are answered by it, not by a closed file).
      while (syncing !== undefined || nextSync !== undefined) await (nextSync ?? syncing)!.catch(() => undefined);
      await checkpointer?.stop();
      db.close();
      if (wal !== undefined) await (await wal.catch(() => undefined))?.close();
    },
  };
}

function migrate(db: Database.Database): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(
      `database schema version ${current} is newer than this rollgate understands (${MIGRATIONS.length}); upgrade rollgate`,
    );
  }
  db.transaction(() => {
    for (let v = current; v < MIGRATIONS.length; v++) {
      db.exec(MIGRATIONS[v] ?? "");
      db.pragma(`user_version = ${v + 1}`);
    }
  })();
}

function toEvent(row: EventRow): AuditEvent {
  return {
    seq: Number(row.seq),
    timeNs: row.time_ns,
    rollout: row.rollout,
    type: row.type as EventType,
    actor: row.actor,
    reason: row.reason,
    fingerprint: row.fingerprint,
    snapshot: row.snapshot,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}
