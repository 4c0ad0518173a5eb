// A real PostgreSQL for the tests, started by the tests (scripts/postgres-cluster.mjs, which the
// benchmarks use too): `initdb` as the `postgres` user when we are root, `pg_ctl start` on a free
// loopback port. Nothing is mocked.
export { freePort, postgresBin, startPostgres, type PostgresCluster } from "../../scripts/postgres-cluster.mjs";
