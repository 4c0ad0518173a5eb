/**
 * Schema migrations, applied in order. Entry i brings the schema from version i to i + 1
 * (SQLite's `user_version`). Never edit an entry once released: append a new one.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: rollouts and the append-only audit log.
  `
  CREATE TABLE rollouts (
    name       TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    data       TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE events (
    seq         INTEGER PRIMARY KEY,
    time_ns     INTEGER NOT NULL,
    rollout     TEXT NOT NULL,
    type        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    snapshot    TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
  );
  CREATE INDEX events_by_rollout ON events (rollout, seq);
  -- Defence in depth beside the hash chain: the log cannot be edited through SQL by accident.
  CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
  CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
  `,
  // 2: sliding-window buckets and evaluator state, flushed every second.
  `
  CREATE TABLE window_buckets (
    rollout  TEXT NOT NULL,
    variant  TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    data     BLOB NOT NULL,
    PRIMARY KEY (rollout, variant, start_ms)
  ) WITHOUT ROWID;
  CREATE TABLE analysis_state (
    rollout TEXT PRIMARY KEY,
    data    TEXT NOT NULL
  );
  `,
];
