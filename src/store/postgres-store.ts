import pg from "pg";
import { chainEvent, type AuditEvent, type EventType } from "../domain/audit-chain.js";
import { DomainError } from "../domain/errors.js";
import type { Variant } from "../domain/rollout.js";
import { POSTGRES_MIGRATIONS } from "./postgres-migrations.js";
import { redactUrl } from "./redact-url.js";
import { decodeRollout, encodeRollout } from "./rollout-codec.js";
import type { Commit, CommitResult, EventQuery, Store, StoredRollout, WindowBucketRow, WindowFlush } from "./store.js";
import { checkVersion, dependencyRefused, versionRequirement } from "./version-check.js";

export { redactUrl } from "./redact-url.js";

/** Where and how to open the PostgreSQL store. */
export interface PostgresStoreOptions {
  /** A `postgres://` or `postgresql://` URL. */
  readonly url: string;
  /** This process's replica id: the window buckets it writes and loads are keyed by it. */
  readonly replicaId: string;
  /** Connection attempts at open before giving up (default 8). */
  readonly connectAttempts?: number;
  /** Delay before the second attempt, doubled each time up to 5 s (default 250 ms). */
  readonly retryDelayMs?: number;
  /** Told of each failed attempt that will be retried. */
  readonly onRetry?: (attempt: number, delayMs: number, err: Error) => void;
  /** Told of errors on idle connections (the database restarted or went away); they are not fatal. */
  readonly onIdleError?: (err: Error) => void;
  /** Most connections this store opens (default 8). */
  readonly maxConnections?: number;
}

/** The PostgreSQL store: the `Store` contract plus the replica id it was opened with. */
export interface PostgresStore extends Store {
  readonly replicaId: string;
  /** Resolves when the database answers; rejects (`unavailable`) when it does not. For /readyz. */
  ping(): Promise<void>;
  /** Returns one rollout with its evaluator state, undefined when there is none (a NOTIFY's reconcile). */
  loadRollout(name: string): Promise<StoredRollout | undefined>;
  /** Returns the window buckets every other replica has flushed, for a merged evaluation. */
  loadPeerWindowBuckets(): Promise<PeerBucketRow[]>;
  /** Returns every rollout's stored evaluator state (JSON), by rollout name: what a replica that is not the evaluator shows. */
  loadAnalysisStates(): Promise<Map<string, string>>;
  /**
   * Subscribes to the changes every writer commits (LISTEN on `CHANGES_CHANNEL`, its own
   * connection). A lost connection is reopened with backoff; `onReconnect` is called after each
   * reopening, when notifications may have been missed and the caller should reconcile.
   */
  watchChanges(onChange: (change: ChangeNotice) => void, onReconnect?: () => void): ChangeWatch;
  /** Returns this replica's claim to be the one evaluator (a session advisory lock on its own connection). */
  leadership(): Leadership;
}

/** A window bucket with the replica that wrote it. */
export interface PeerBucketRow extends WindowBucketRow {
  readonly replica: string;
}

/** What a commit notifies: the rollout it touched, the last `seq` it appended (0: none), and its writer. */
export interface ChangeNotice {
  readonly rollout: string;
  readonly seq: number;
  readonly replica: string;
}

/** A running LISTEN subscription. */
export interface ChangeWatch {
  /** Resolves once the first LISTEN is in place. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

/**
 * The evaluator's lock: at most one replica holds it at a time. It is tied to one database
 * session, so it is released when the holder closes it, when its process dies (the server sees
 * the socket close), or when its connection is lost; `held` turns false then and the holder must
 * stop judging. A deposed holder that still tries to apply a decision is stopped by the
 * rollout's expected version.
 */
export interface Leadership {
  /** True while the lock is held on a live connection. */
  readonly held: boolean;
  /** Takes the lock if it is free; resolves whether this replica holds it. Never waits for it. */
  tryAcquire(): Promise<boolean>;
  /** Gives the lock up and closes its connection. */
  release(): Promise<void>;
}

/**
 * How long the evaluator's lock outlives its holder's last sign of life when the holder vanishes
 * without closing its connection (a host lost, a network partition): PostgreSQL ends the session
 * after this (TCP keepalives and user timeout on the lock's session), and the holder itself stops
 * judging when its once-a-second check on that session takes longer. Another replica takes over
 * within about this plus its one-second campaign.
 */
export const LEASE_MS = 3000;

/** The advisory-lock namespace of rollgate ("roll"), with one key per purpose. */
export const LOCK_NAMESPACE = 0x726f6c6c;
export const LOCK_MIGRATIONS = 1;
export const LOCK_LEADER = 2;

/** The NOTIFY channel every commit signals on, with `{"rollout": name, "seq": last seq}`. */
export const CHANGES_CHANNEL = "rollgate_changes";

/** A window_buckets row as node-postgres returns it (BIGINT as a string, BYTEA as a Buffer). */
interface BucketDbRow {
  rollout: string;
  variant: string;
  start_ms: string;
  data: Buffer;
}

/** Returns the store's form of a window_buckets row (the data viewed, not copied). */
function bucketRowOf(b: BucketDbRow): WindowBucketRow {
  return {
    rollout: b.rollout,
    variant: b.variant as Variant,
    startMs: Number(b.start_ms),
    data: new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength),
  };
}

interface EventRow {
  seq: string;
  time_ns: string;
  rollout: string;
  type: string;
  actor: string;
  reason: string;
  fingerprint: string;
  snapshot: string;
  prev_hash: string;
  hash: string;
}

/**
 * Opens the PostgreSQL store at `url`, retrying the first connection a bounded number of times
 * (each failure reported to `onRetry`), then applies the migrations under an advisory lock.
 * Rejects when the database cannot be reached after the last attempt.
 */
export async function openPostgresStore(options: PostgresStoreOptions): Promise<PostgresStore> {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.maxConnections ?? 8,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
    application_name: `rollgate ${options.replicaId}`.slice(0, 63),
  });
  // An idle connection that breaks (the database restarted) must not take the process down.
  pool.on("error", (err) => options.onIdleError?.(err));
  const replica = options.replicaId;

  try {
    await connectWithRetry(pool, options);
    await migrate(pool);
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw e;
  }

  const transaction = <T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> => inTransaction(pool, fn);

  async function commitTx(change: Commit): Promise<AuditEvent[]> {
    return transaction((c) => applyChange(c, change));
  }

  /** Group commit (Store.commitMany): each change in its own savepoint of one transaction. */
  async function commitManyTx(changes: readonly Commit[]): Promise<CommitResult[]> {
    return transaction(async (c) => {
      const results: CommitResult[] = [];
      for (const change of changes) {
        if (change.dependsOn !== undefined && results[change.dependsOn]?.error !== undefined) {
          results.push({ error: dependencyRefused(change) });
          continue;
        }
        await c.query("SAVEPOINT change");
        try {
          results.push({ events: await applyChange(c, change) });
          await c.query("RELEASE SAVEPOINT change");
        } catch (e) {
          if (!(e instanceof DomainError)) throw e;
          // Its writes and its NOTIFY are undone; the group goes on.
          await c.query("ROLLBACK TO SAVEPOINT change");
          await c.query("RELEASE SAVEPOINT change");
          results.push({ error: e });
        }
      }
      return results;
    });
  }

  /** Applies one change on a connection inside a transaction (see commitTx); returns its events. */
  async function applyChange(c: pg.PoolClient, change: Commit): Promise<AuditEvent[]> {
    // Lock order: chain head first, then the rollout row, in every transaction.
    let seq = 0;
    if (change.events.length > 0) {
      const head = await c.query<{ seq: string }>({ name: "head", text: "SELECT seq FROM chain_head WHERE id = 1 FOR UPDATE" });
      seq = Number(head.rows[0]?.seq ?? 0);
    }
    const req = versionRequirement(change);
    if (change.put !== undefined) {
      const r = change.put;
      const row = [r.name, r.version, encodeRollout(r), r.updatedAt];
      const done =
        req?.exact === 0
          ? await c.query({
              name: "insert-rollout",
              text: "INSERT INTO rollouts (name, version, data, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
              values: row,
            })
          : req?.exact !== undefined
            ? await c.query({
                name: "update-rollout-at",
                text: "UPDATE rollouts SET version = $2, data = $3, updated_at = $4 WHERE name = $1 AND version = $5",
                values: [...row, req.exact],
              })
            : await c.query({
                // Conditional on the stored version, evaluated on the row as it is once any
                // concurrent writer's transaction has ended.
                name: "upsert-rollout",
                text:
                  "INSERT INTO rollouts (name, version, data, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE " +
                  "SET version = excluded.version, data = excluded.data, updated_at = excluded.updated_at WHERE rollouts.version < excluded.version",
                values: row,
              });
      if (done.rowCount !== 1 && req !== undefined) {
        checkVersion(req, await storedVersion(c, r.name));
        throw new Error(`rollout "${r.name}" was not written`);
      }
    }
    if (change.remove !== undefined) {
      const name = change.remove;
      const done =
        req?.exact === undefined
          ? await c.query({ name: "delete-rollout", text: "DELETE FROM rollouts WHERE name = $1", values: [name] })
          : await c.query({
              name: "delete-rollout-at",
              text: "DELETE FROM rollouts WHERE name = $1 AND version = $2",
              values: [name, req.exact],
            });
      if (done.rowCount !== 1 && req !== undefined) {
        checkVersion(req, await storedVersion(c, name));
        throw new Error(`rollout "${name}" was not deleted`);
      }
      await c.query({ name: "delete-buckets", text: "DELETE FROM window_buckets WHERE rollout = $1", values: [name] });
      await c.query({ name: "delete-analysis", text: "DELETE FROM analysis_state WHERE rollout = $1", values: [name] });
    }
    const lastHash = new Map<string, string>();
    const appended: AuditEvent[] = [];
    for (const e of change.events) {
      let prev = lastHash.get(e.rollout);
      if (prev === undefined) {
        const row = await c.query<{ hash: string }>({
          name: "last-hash",
          text: "SELECT hash FROM events WHERE rollout = $1 ORDER BY seq DESC LIMIT 1",
          values: [e.rollout],
        });
        prev = row.rows[0]?.hash ?? "";
      }
      seq += 1;
      const chained = chainEvent(e, seq, prev);
      await c.query({
        name: "insert-event",
        text:
          "INSERT INTO events (seq, time_ns, rollout, type, actor, reason, fingerprint, snapshot, prev_hash, hash) " +
          "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        values: [
          chained.seq,
          chained.timeNs.toString(),
          chained.rollout,
          chained.type,
          chained.actor,
          chained.reason,
          chained.fingerprint,
          chained.snapshot,
          chained.prevHash,
          chained.hash,
        ],
      });
      lastHash.set(e.rollout, chained.hash);
      appended.push(chained);
    }
    if (appended.length > 0) {
      await c.query({ name: "advance-head", text: "UPDATE chain_head SET seq = $1 WHERE id = 1", values: [seq] });
    }
    const touched = change.put?.name ?? change.remove ?? change.events[0]?.rollout;
    if (touched !== undefined) {
      // Delivered to listeners only when the transaction commits.
      await c.query({
        name: "notify",
        text: "SELECT pg_notify($1, $2)",
        values: [CHANGES_CHANNEL, JSON.stringify({ rollout: touched, seq, replica })],
      });
    }
    return appended;
  }

  // The evaluator's lock of this store, once asked for (see evaluates).
  let claim: Leadership | undefined;
  /**
   * True when this replica owns the state all replicas share — the evaluator state, every
   * replica's windows: it holds the evaluator lock, or it never asked for it (a lone writer).
   * A replica that is not the evaluator writes only its own buckets, so that applying a change
   * that starts the canary afresh neither empties the others' windows nor overwrites the
   * evaluator's analysis state with its own fresh one.
   */
  const evaluates = () => claim === undefined || claim.held;

  async function flushTx(flush: WindowFlush): Promise<void> {
    const shared = evaluates();
    await transaction(async (c) => {
      // A cleared window (a rollback, a new canary version): each replica deletes its own rows
      // when it applies the change; the evaluator deletes every replica's (those of a replica
      // that died or has not applied the change yet included).
      if (flush.cleared.length > 0) {
        await c.query({
          name: "clear-windows",
          text:
            "DELETE FROM window_buckets w USING unnest($1::text[], $2::text[]) AS x(rollout, variant) " +
            "WHERE w.rollout = x.rollout AND w.variant = x.variant AND ($3 OR w.replica = $4)",
          values: [flush.cleared.map((x) => x.rollout), flush.cleared.map((x) => x.variant), shared, replica],
        });
      }
      if (flush.buckets.length > 0) {
        await c.query({
          name: "put-buckets",
          text:
            "INSERT INTO window_buckets (rollout, variant, start_ms, replica, data) " +
            "SELECT x.rollout, x.variant, x.start_ms, $4, x.data FROM unnest($1::text[], $2::text[], $3::bigint[], $5::bytea[]) AS x(rollout, variant, start_ms, data) " +
            "ON CONFLICT (rollout, variant, start_ms, replica) DO UPDATE SET data = excluded.data",
          values: [
            flush.buckets.map((b) => b.rollout),
            flush.buckets.map((b) => b.variant),
            flush.buckets.map((b) => b.startMs),
            replica,
            flush.buckets.map((b) => Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength)),
          ],
        });
      }
      if (flush.analysis.length > 0 && shared) {
        await c.query({
          name: "put-analysis",
          text:
            "INSERT INTO analysis_state (rollout, data) SELECT * FROM unnest($1::text[], $2::text[]) " +
            "ON CONFLICT (rollout) DO UPDATE SET data = excluded.data",
          values: [flush.analysis.map((a) => a.rollout), flush.analysis.map((a) => a.state)],
        });
      }
      // Expiry is by time, so it holds for every replica's buckets of that window.
      const expired = flush.expired ?? [];
      if (expired.length > 0) {
        await c.query({
          name: "expire-windows",
          text:
            "DELETE FROM window_buckets w USING unnest($1::text[], $2::text[], $3::bigint[]) AS x(rollout, variant, before_ms) " +
            "WHERE w.rollout = x.rollout AND w.variant = x.variant AND w.start_ms < x.before_ms",
          values: [expired.map((x) => x.rollout), expired.map((x) => x.variant), expired.map((x) => x.beforeMs)],
        });
      }
      if (flush.expireBeforeMs !== undefined) {
        await c.query({ name: "expire-all", text: "DELETE FROM window_buckets WHERE start_ms < $1", values: [flush.expireBeforeMs] });
      }
    });
  }

  let open = true;
  /** Runs a store call: refused once closed; a lost database becomes `unavailable`. */
  async function call<T>(fn: () => Promise<T>): Promise<T> {
    if (!open) throw new Error("store is closed");
    try {
      return await fn();
    } catch (e) {
      throw asUnavailable(e);
    }
  }

  function watchChanges(onChange: (change: ChangeNotice) => void, onReconnect?: () => void): ChangeWatch {
    let client: pg.Client | undefined;
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    let markReady: () => void = () => undefined;
    const ready = new Promise<void>((resolve) => (markReady = resolve));
    let connectedOnce = false;
    let delay = 100;
    const connect = async (): Promise<void> => {
      const c = new pg.Client({ connectionString: options.url, connectionTimeoutMillis: 5000, application_name: `rollgate ${replica} listen`.slice(0, 63) });
      let lost = false;
      const onLost = () => {
        if (lost) return;
        lost = true;
        if (client === c) client = undefined;
        c.end().catch(() => undefined);
        schedule();
      };
      c.on("error", onLost);
      c.on("end", onLost);
      c.on("notification", (n) => {
        if (n.channel !== CHANGES_CHANNEL || n.payload === undefined) return;
        try {
          const p = JSON.parse(n.payload) as { rollout: string; seq: number; replica: string };
          onChange({ rollout: p.rollout, seq: Number(p.seq), replica: p.replica });
        } catch {
          // Not ours: ignore.
        }
      });
      try {
        await c.connect();
        await c.query(`LISTEN ${CHANGES_CHANNEL}`);
      } catch {
        onLost();
        return;
      }
      if (stopped) {
        await c.end().catch(() => undefined);
        return;
      }
      client = c;
      delay = 100;
      if (connectedOnce) onReconnect?.();
      connectedOnce = true;
      markReady();
    };
    const schedule = () => {
      if (stopped || timer !== undefined) return;
      timer = setTimeout(() => {
        timer = undefined;
        void connect();
      }, delay);
      delay = Math.min(delay * 2, 2000);
    };
    void connect();
    return {
      ready,
      async close() {
        stopped = true;
        if (timer !== undefined) clearTimeout(timer);
        const c = client;
        client = undefined;
        await c?.end().catch(() => undefined);
      },
    };
  }

  function leadership(): Leadership {
    const l = createLeadership();
    claim = l;
    return l;
  }

  function createLeadership(): Leadership {
    let client: pg.Client | undefined;
    let held = false;
    const drop = (c: pg.Client) => {
      if (client !== c) return;
      client = undefined;
      held = false;
      c.end().catch(() => undefined);
    };
    return {
      get held() {
        return held && client !== undefined;
      },
      async tryAcquire() {
        if (!open) return false;
        if (client === undefined) {
          // A holder that vanishes without closing its socket (its host lost, a partition) must
          // not keep the lock for the kernel's default hours: TCP keepalives both ways, and on
          // the server's side of this session a user timeout, so that PostgreSQL ends the
          // session (releasing the lock) within about LEASE_MS of the last sign of life.
          const c = new pg.Client({
            connectionString: options.url,
            connectionTimeoutMillis: 5000,
            query_timeout: LEASE_MS,
            keepAlive: true,
            keepAliveInitialDelayMillis: 1000,
            application_name: `rollgate ${replica} leader`.slice(0, 63),
          });
          c.on("error", () => drop(c));
          c.on("end", () => drop(c));
          client = c;
          try {
            await c.connect();
            await c.query(
              `SET tcp_keepalives_idle = 1; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = ${Math.max(1, Math.round(LEASE_MS / 1000) - 1)}; SET tcp_user_timeout = ${LEASE_MS}`,
            );
          } catch {
            drop(c);
            return false;
          }
        }
        const c = client;
        try {
          // Held already: a round trip on the lock's own session proves it is still alive (a
          // holder cut off from the database stops judging once this times out).
          const res = held
            ? await c.query<{ ok: boolean }>("SELECT true AS ok")
            : await c.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1, $2) AS ok", [LOCK_NAMESPACE, LOCK_LEADER]);
          held = res.rows[0]?.ok === true && client === c;
        } catch {
          drop(c);
        }
        return held;
      },
      async release() {
        const c = client;
        if (c === undefined) return;
        held = false;
        client = undefined;
        // Closing the session releases its advisory locks.
        await c.end().catch(() => undefined);
      },
    };
  }

  return {
    replicaId: replica,
    ping: () =>
      call(async () => {
        await pool.query("SELECT 1");
      }),
    loadPeerWindowBuckets: () =>
      call(async () => {
        const res = await pool.query<BucketDbRow & { replica: string }>(
          "SELECT rollout, variant, start_ms, replica, data FROM window_buckets WHERE replica <> $1",
          [replica],
        );
        return res.rows.map((b): PeerBucketRow => ({ ...bucketRowOf(b), replica: b.replica }));
      }),
    loadAnalysisStates: () =>
      call(async () => {
        const res = await pool.query<{ rollout: string; data: string }>({ name: "load-analysis-states", text: "SELECT rollout, data FROM analysis_state" });
        return new Map(res.rows.map((r) => [r.rollout, r.data]));
      }),
    watchChanges,
    leadership,
    loadRollouts: () =>
      call(async () => {
        const res = await pool.query<{ name: string; data: string; analysis: string | null }>(
          "SELECT r.name, r.data, a.data AS analysis FROM rollouts r LEFT JOIN analysis_state a ON a.rollout = r.name ORDER BY r.name",
        );
        return res.rows.map(
          (row): StoredRollout =>
            row.analysis === null ? { rollout: decodeRollout(row.data) } : { rollout: decodeRollout(row.data), analysis: row.analysis },
        );
      }),
    loadRollout: (name) =>
      call(async () => {
        const res = await pool.query<{ data: string; analysis: string | null }>({
          name: "load-rollout",
          text: "SELECT r.data, a.data AS analysis FROM rollouts r LEFT JOIN analysis_state a ON a.rollout = r.name WHERE r.name = $1",
          values: [name],
        });
        const row = res.rows[0];
        if (row === undefined) return undefined;
        return row.analysis === null ? { rollout: decodeRollout(row.data) } : { rollout: decodeRollout(row.data), analysis: row.analysis };
      }),
    commit: (change) => call(() => commitTx(change)),
    commitMany: (changes) => call(() => commitManyTx(changes)),
    listEvents: (q: EventQuery) =>
      call(async () => {
        const res =
          q.rollout === undefined
            ? await pool.query<EventRow>({
                name: "events-all",
                text: "SELECT * FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
                values: [q.afterSeq, q.limit],
              })
            : await pool.query<EventRow>({
                name: "events-of",
                text: "SELECT * FROM events WHERE rollout = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                values: [q.rollout, q.afterSeq, q.limit],
              });
        return res.rows.map(toEvent);
      }),
    lastSeq: () =>
      call(async () => {
        const res = await pool.query<{ seq: string }>("SELECT seq FROM chain_head WHERE id = 1");
        return Number(res.rows[0]?.seq ?? 0);
      }),
    loadWindowBuckets: () =>
      call(async () => {
        const res = await pool.query<BucketDbRow>(
          "SELECT rollout, variant, start_ms, data FROM window_buckets WHERE replica = $1",
          [replica],
        );
        return res.rows.map(bucketRowOf);
      }),
    flushWindows: (flush) => call(() => flushTx(flush)),
    async close() {
      if (!open) return;
      open = false;
      await pool.end();
    },
  };
}

async function connectWithRetry(pool: pg.Pool, options: PostgresStoreOptions): Promise<void> {
  const attempts = Math.max(1, options.connectAttempts ?? 8);
  let delay = options.retryDelayMs ?? 250;
  for (let attempt = 1; ; attempt++) {
    try {
      await pool.query("SELECT 1");
      return;
    } catch (e) {
      const err = e as Error;
      if (attempt >= attempts || !isConnectionError(err)) {
        throw new Error(`cannot reach PostgreSQL at ${redactUrl(options.url)} after ${attempt} attempt(s): ${err.message}`, { cause: err });
      }
      options.onRetry?.(attempt, delay, err);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }
}

/** Runs `fn` in one transaction on one connection of `pool`; a failure rolls it back whole. */
async function inTransaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  // A connection that breaks while checked out emits "error" on the client (the pool only
  // listens on idle ones); the failed query reports it, this keeps it from being uncaught.
  const onError = (err: Error) => (broken = err);
  client.on("error", onError);
  try {
    await client.query("BEGIN");
    const result = await fn(client);
    await client.query("COMMIT");
    return result;
  } catch (e) {
    if (broken === undefined) await client.query("ROLLBACK").catch((err: Error) => (broken = err));
    throw e;
  } finally {
    client.off("error", onError);
    // A broken connection is discarded, not returned to the pool.
    client.release(broken);
  }
}

/** Applies the pending migrations in one transaction, under an advisory lock held until it ends. */
async function migrate(pool: pg.Pool): Promise<void> {
  await inTransaction(pool, async (c) => {
    await c.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_NAMESPACE, LOCK_MIGRATIONS]);
    await c.query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
    const row = await c.query<{ version: number }>("SELECT version FROM schema_version");
    let current = row.rows[0]?.version;
    if (current === undefined) {
      await c.query("INSERT INTO schema_version (version) VALUES (0)");
      current = 0;
    }
    if (current > POSTGRES_MIGRATIONS.length) {
      throw new Error(
        `database schema version ${current} is newer than this rollgate understands (${POSTGRES_MIGRATIONS.length}); upgrade rollgate`,
      );
    }
    for (let v = current; v < POSTGRES_MIGRATIONS.length; v++) {
      await c.query(POSTGRES_MIGRATIONS[v] ?? "");
      await c.query("UPDATE schema_version SET version = $1", [v + 1]);
    }
  });
}

/** Returns the stored version of a rollout, undefined when there is none. */
async function storedVersion(c: pg.PoolClient, name: string): Promise<number | undefined> {
  const res = await c.query<{ version: string }>({ name: "rollout-version", text: "SELECT version FROM rollouts WHERE name = $1", values: [name] });
  const v = res.rows[0]?.version;
  return v === undefined ? undefined : Number(v);
}

/** True for errors that mean the database cannot be reached or went away, not that a query was wrong. */
export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string") {
    // SQLSTATE class 08 (connection exception), 57P01–57P03 (shutdown, cannot connect now).
    if (/^08/.test(code) || /^57P0[1-3]$/.test(code)) return true;
    if (["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"].includes(code)) return true;
  }
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connection is closed/i.test(err.message);
}

function asUnavailable(e: unknown): unknown {
  if (e instanceof DomainError || !isConnectionError(e)) return e;
  return new DomainError("unavailable", `the database is unavailable: ${(e as Error).message}`);
}

function toEvent(row: EventRow): AuditEvent {
  return {
    seq: Number(row.seq),
    timeNs: BigInt(row.time_ns),
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
