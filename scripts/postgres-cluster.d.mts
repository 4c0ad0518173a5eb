// Types of postgres-cluster.mjs (the tests import it from TypeScript).

/** A PostgreSQL cluster this process started. */
export interface PostgresCluster {
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:PORT/postgres`, the maintenance database. */
  readonly adminUrl: string;
  /** Creates an empty database and returns its URL. */
  createDatabase(prefix?: string): Promise<string>;
  /** `pg_ctl stop -m immediate` (as a crash would): the data directory stays, `start` again recovers it. */
  kill(): void;
  /** Starts the stopped cluster again on the same port and data directory. */
  start(): void;
  /** Stops the cluster and removes its directory. */
  stop(): void;
}

/** Returns the bin directory of the newest PostgreSQL under /usr/lib/postgresql, or throws. */
export function postgresBin(): string;
/** Returns a loopback port that was free a moment ago. */
export function freePort(): Promise<number>;
/**
 * Starts a fresh PostgreSQL cluster on a free loopback port (fsync off: a process crash loses
 * nothing committed, only a power cut would); `stop()` it when done.
 */
export function startPostgres(opts?: {
  /** More addresses to listen on beside 127.0.0.1 (a network namespace's side of a veth pair). */
  readonly listen?: readonly string[];
  /** pg_hba.conf lines to add, e.g. `host all all 10.0.0.0/30 trust`. */
  readonly hba?: readonly string[];
}): Promise<PostgresCluster>;
