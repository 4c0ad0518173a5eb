/**
 * PostgreSQL schema migrations, applied in order, like SQLite's (`migrations.ts`): entry i brings
 * the schema from version i to i + 1 (the single row of `schema_version`). All of them run in one
 * transaction under an advisory lock, so replicas starting at once apply each exactly once.
 * Never edit an entry once released: append a new one.
 */
export const POSTGRES_MIGRATIONS: readonly string[] = [
  // 1: the whole schema of SQLite's versions 1 and 2, plus what several writers need: the chain
  // head (one row, locked by every commit that appends events, so appends are serialized and
  // `seq` rises in commit order) and window buckets keyed by the replica that wrote them.
  `
  CREATE TABLE rollouts (
    name       TEXT PRIMARY KEY,
    version    BIGINT NOT NULL,
    data       TEXT NOT NULL,
    updated_at BIGINT NOT NULL
  );
  CREATE TABLE events (
    seq         BIGINT PRIMARY KEY,
    time_ns     BIGINT NOT NULL,
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
  CREATE FUNCTION rollgate_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'events are append-only'; END $$;
  CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION rollgate_events_append_only();
  CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION rollgate_events_append_only();
  CREATE TABLE chain_head (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
  );
  INSERT INTO chain_head (id, seq) VALUES (1, 0);
  CREATE TABLE window_buckets (
    rollout  TEXT NOT NULL,
    variant  TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    replica  TEXT NOT NULL,
    data     BYTEA NOT NULL,
    PRIMARY KEY (rollout, variant, start_ms, replica)
  );
  CREATE INDEX window_buckets_by_replica ON window_buckets (replica);
  CREATE TABLE analysis_state (
    rollout TEXT PRIMARY KEY,
    data    TEXT NOT NULL
  );
  `,
];
