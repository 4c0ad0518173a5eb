// A real PostgreSQL, started by the tests and the benchmarks themselves: `initdb` into a
// temporary directory (as the `postgres` user through `runuser` when we are root, because
// initdb refuses root), then `pg_ctl start` on a free loopback port with its socket in the same
// directory. Nothing is mocked. One initdb'd cluster is kept as a template in .cache and copied
// for each start, so a process pays for initdb once per machine, not once per run.
import { execFileSync, spawnSync } from "node:child_process";
import { appendFileSync, chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../", import.meta.url));

/** @typedef {import("./postgres-cluster.d.mts").PostgresCluster} PostgresCluster */

const asRoot = process.getuid?.() === 0;

/** Returns the bin directory of the newest PostgreSQL under /usr/lib/postgresql, or throws. */
export function postgresBin() {
  const base = "/usr/lib/postgresql";
  const versions = existsSync(base)
    ? readdirSync(base)
        .filter((v) => existsSync(join(base, v, "bin", "initdb")) && existsSync(join(base, v, "bin", "pg_ctl")))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions[0] === undefined) {
    throw new Error(`no PostgreSQL server under ${base}/*/bin (apt-get install postgresql; .ci/run does it)`);
  }
  return join(base, versions[0], "bin");
}

/** Runs a PostgreSQL program, as the `postgres` user when we are root. */
function runPg(bin, program, args) {
  const cmd = asRoot ? "runuser" : join(bin, program);
  const argv = asRoot ? ["-u", "postgres", "--", join(bin, program), ...args] : args;
  const r = spawnSync(cmd, argv, { encoding: "utf8", timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${program} ${args.join(" ")} failed (${r.status ?? r.signal}): ${r.stderr}${r.stdout}`);
}

function chownToPostgres(path) {
  if (asRoot) execFileSync("chown", ["-R", "postgres:postgres", path]);
}

/** Returns a data directory initialised once per machine and PostgreSQL version, kept in .cache. */
function template(bin) {
  const version = bin.split("/").at(-2) ?? "x";
  const cache = join(repoRoot, ".cache");
  const path = join(cache, `postgres-template-${version}`);
  if (existsSync(join(path, "PG_VERSION"))) return path;
  mkdirSync(cache, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), "rollgate-pg-initdb-"));
  chownToPostgres(work);
  runPg(bin, "initdb", ["-D", join(work, "data"), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--no-instructions"]);
  try {
    renameSync(join(work, "data"), path);
  } catch {
    // Another test file made it first (rename is atomic), or .cache is on another device.
    if (!existsSync(join(path, "PG_VERSION"))) cpSync(join(work, "data"), path, { recursive: true });
  }
  rmSync(work, { recursive: true, force: true });
  return path;
}

/** Returns a loopback port that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = /** @type {import("node:net").AddressInfo} */ (s.address());
      s.close(() => resolve(port));
    });
  });
}

/** @type {Set<() => void>} */
const running = new Set();
// A test process that ends without its afterAll (a crash, a timeout) still stops its servers.
process.once("exit", () => {
  for (const stop of running) stop();
});

/**
 * Starts a fresh PostgreSQL cluster on a free loopback port; `stop()` it in afterAll. The
 * server runs with fsync off (a test machine's disk is not what is being tested): a process
 * crash (`kill`) still loses nothing committed, only a power cut would.
 */
/**
 * @param {{ listen?: readonly string[], hba?: readonly string[] }} [opts] more addresses to listen
 *   on beside 127.0.0.1, and pg_hba.conf lines to add for them (a network namespace's subnet)
 * @returns {Promise<PostgresCluster>}
 */
export async function startPostgres(opts = {}) {
  const bin = postgresBin();
  const dir = mkdtempSync(join(tmpdir(), "rollgate-pg-"));
  const data = join(dir, "data");
  cpSync(template(bin), data, { recursive: true });
  chmodSync(data, 0o700);
  chownToPostgres(dir);
  const port = await freePort();
  const logFile = join(dir, "postgres.log");
  if (opts.hba !== undefined && opts.hba.length > 0) appendFileSync(join(data, "pg_hba.conf"), `\n${opts.hba.join("\n")}\n`);
  const listen = ["127.0.0.1", ...(opts.listen ?? [])].join(",");
  const options = `-p ${port} -k ${dir} -c listen_addresses=${listen} -c fsync=off -c max_connections=200`;
  const start = () => runPg(bin, "pg_ctl", ["-D", data, "-l", logFile, "-w", "-t", "60", "-o", options, "start"]);
  const kill = () => {
    if (existsSync(join(data, "postmaster.pid"))) runPg(bin, "pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
  };
  start();
  const stop = () => {
    running.delete(stop);
    try {
      kill();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  running.add(stop);
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let n = 0;
  return {
    port,
    adminUrl,
    async createDatabase(prefix = "rollgate") {
      const name = `${prefix}_${process.pid}_${++n}`;
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name}"`);
      } finally {
        await client.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    kill,
    start,
    stop,
  };
}
