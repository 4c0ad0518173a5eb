// Starting rollgate as a process pinned to the server core, and creating rollouts over Connect.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchDir, cliPath, repoRoot, commandText, connectJson, SERVER_CORE, startPortServer, stop } from "./util.mjs";

/** Node flags and serve flags of a rollgate server process. */
function argv({ fastPath = true, connectFastPath = true, cpuProfDir, probe = false, db, cli = cliPath, extra = [] }) {
  const node = [];
  if (probe) node.push("--expose-gc", "--import", join(benchDir, "lib", "probe.mjs"));
  if (cpuProfDir !== undefined) node.push("--cpu-prof", "--cpu-prof-dir", cpuProfDir);
  const serve = ["serve", "--listen", "127.0.0.1:0", "--db", db];
  if (!fastPath) serve.push("--no-grpc-fast-path");
  if (!connectFastPath) serve.push("--no-connect-fast-path");
  return [...node, cli, ...serve, ...extra];
}

/** Returns the command line of a rollgate server, for RESULTS.md (`<tmp>` for the temporary database). */
export function rollgateCommand(opts = {}) {
  return commandText(opts.core ?? SERVER_CORE, "node", argv({ ...opts, db: opts.dbUrl ?? "<tmp>/rollgate.db" })).replace(process.execPath, "node").replaceAll(repoRoot, "");
}

/**
 * Starts `node dist/src/cli/main.js serve` on 127.0.0.1:0 with a fresh temporary database,
 * pinned to the server core; resolves once it logs "ready". `stop()` ends it (SIGTERM, so a
 * --cpu-prof profile is written) and removes the database. With `dbUrl` (a postgres:// URL) it
 * serves that database instead; `core` pins it elsewhere, `extra` adds serve flags, `env` adds
 * environment variables, `cli` runs another build's dist/src/cli/main.js.
 */
export async function startRollgate(opts = {}) {
  const dir = mkdtempSync(join(tmpdir(), "rollgate-bench-"));
  const db = opts.dbUrl ?? join(dir, "rollgate.db");
  const server = await startPortServer(process.execPath, argv({ ...opts, db }), { readyMsg: "ready", core: opts.core, ...(opts.env === undefined ? {} : { env: opts.env }) });
  return {
    ...server,
    url: `http://127.0.0.1:${server.port}`,
    async stop() {
      await stop(server.child, 10_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A rollout spec in Connect JSON: 5% canary, an error-rate and a latency gate, `interval` evaluation. */
export function rolloutSpec(name, { interval = "1s", window = "60s", gates = true } = {}) {
  return {
    name,
    stableVersion: "v1",
    canaryVersion: "v2",
    features: { "new-checkout": true },
    gates: gates
      ? [
          { name: "errors", minSamples: "100", errorRate: { max: 0.05 } },
          { name: "p99", minSamples: "100", latency: { quantile: 0.99, maxRatio: 1.5 } },
        ]
      : [],
    // Auto-promotion off: the rollout stays in CANARY and is evaluated every interval.
    analysis: { interval, window, autoPromote: false },
  };
}

/** Creates a rollout over Connect JSON (HTTP/1.1). */
export function createRollout(port, name, opts) {
  return connectJson(port, "rollgate.v1.RolloutService/CreateRollout", { rollout: rolloutSpec(name, opts) });
}
