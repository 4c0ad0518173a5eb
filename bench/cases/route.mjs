// Targets 1 and 3: Route over gRPC against the references, throughput by concurrency and
// latency at one call in flight; RouteBatch keys/s against single Route calls/s.
import { join } from "node:path";
import { h2load, h2loadCommand } from "../lib/h2load.mjs";
import { routeBatchFrame, routeFrame, writeBody } from "../lib/bodies.mjs";
import { createRollout, rollgateCommand, startRollgate } from "../lib/rollgate.mjs";
import { benchDir, commandText, cpuSeconds, runClient, SERVER_CORE, startPortServer, stop, CLIENT_CORE } from "../lib/util.mjs";

const ROUTE = "/rollgate.v1.DecisionService/Route";
const ROUTE_BATCH = "/rollgate.v1.DecisionService/RouteBatch";

/** The servers of the Route comparison, baseline first. */
export const SERVERS = [
  { id: "bare", label: "bare node:http2, hand-framed gRPC echo (reference)", script: "bare-http2.mjs" },
  { id: "grpcjs", label: "@grpc/grpc-js no-op Route", script: "grpc-js-noop.mjs" },
  { id: "connect", label: "connect-node no-op Route", script: "connect-noop.mjs" },
  { id: "rollgate", label: "rollgate Route (gRPC fast path)", fastPath: true },
  { id: "rollgate-connect", label: "rollgate Route via connect-node (--no-grpc-fast-path)", fastPath: false },
];

/** In-flight calls of the sweep, spread over min(4, n) connections. */
export const LEVELS = [1, 4, 16, 64];
const conns = (n) => Math.min(4, n);

async function startAll(dir) {
  const running = {};
  for (const s of SERVERS) {
    if (s.script !== undefined) {
      running[s.id] = await startPortServer(process.execPath, [join(benchDir, "refs", s.script)]);
    } else {
      const rg = await startRollgate({ fastPath: s.fastPath });
      await createRollout(rg.port, "checkout", { interval: "10s", window: "300s" });
      running[s.id] = rg;
    }
  }
  const stopAll = async () => {
    for (const r of Object.values(running)) await (r.stop ? r.stop() : stop(r.child));
  };
  return { running, stopAll, body: writeBody(dir, "route.bin", routeFrame("checkout", "user-12345")) };
}

/**
 * Runs the Route comparison: for each round, each in-flight level, each server in turn (so that
 * every figure sits beside its baseline in time), an h2load run; then latency at one call in
 * flight with a sequential Node client. Returns raw per-round figures.
 */
export async function routeCase({ dir, seconds, rounds, log }) {
  const { running, stopAll, body } = await startAll(dir);
  try {
    const rps = {}; // rps[server][level] = [round values]
    const cpuUs = {}; // CPU µs per call at the top level
    for (const s of SERVERS) {
      rps[s.id] = Object.fromEntries(LEVELS.map((l) => [l, []]));
      cpuUs[s.id] = [];
      // Warm-up: let each server's JIT settle before anything is measured.
      await h2load({ port: running[s.id].port, path: ROUTE, body, clients: 4, inFlight: 16, requests: s.id.includes("connect") ? 3000 : 20000 });
    }
    for (let round = 0; round < rounds; round++) {
      for (const level of LEVELS) {
        for (const s of SERVERS) {
          const r = running[s.id];
          const cpu0 = cpuSeconds(r.pid);
          const res = await h2load({ port: r.port, path: ROUTE, body, clients: conns(level), inFlight: level / conns(level), seconds, warmup: 0 });
          const cpu = cpuSeconds(r.pid) - cpu0;
          rps[s.id][level].push(res.rps);
          if (level === LEVELS.at(-1)) cpuUs[s.id].push((cpu * 1e6) / res.done);
        }
        log(`  route round ${round + 1}/${rounds} in-flight ${level}: ${SERVERS.map((s) => `${s.id} ${Math.round(rps[s.id][level].at(-1))}`).join(", ")}`);
      }
    }
    const latency = Object.fromEntries(SERVERS.map((s) => [s.id, { p50: [], p99: [], errors: 0 }]));
    for (let round = 0; round < rounds; round++) {
      for (const s of SERVERS) {
        const calls = s.id.includes("connect") ? 1500 : 3000;
        const l = await runClient("unary-latency.mjs", [running[s.id].port, ROUTE, body, calls, 300]);
        latency[s.id].p50.push(l.p50Us);
        latency[s.id].p99.push(l.p99Us);
        latency[s.id].errors += l.errors;
        if (l.errors > 0) throw new Error(`${s.id}: ${l.errors} calls failed (grpc-status ${l.lastStatus})`);
      }
      log(`  latency round ${round + 1}/${rounds}: ${SERVERS.map((s) => `${s.id} p50 ${Math.round(latency[s.id].p50.at(-1))} p99 ${Math.round(latency[s.id].p99.at(-1))} µs`).join(", ")}`);
    }
    const top = LEVELS.at(-1);
    const commands = [
      ...SERVERS.map((s) =>
        s.script !== undefined
          ? commandText(SERVER_CORE, "node", [`bench/refs/${s.script}`])
          : rollgateCommand({ fastPath: s.fastPath }),
      ),
      "# a rollout \"checkout\" (5% canary, 2 gates, 10 s interval) is created over Connect JSON before the run",
      h2loadCommand({ port: "<port>", path: ROUTE, body: "route.bin", clients: conns(top), inFlight: top / conns(top), seconds, warmup: 0 }) +
        `   # each in-flight level n: -c min(4,n) -m n/min(4,n)`,
      commandText(CLIENT_CORE, "node", ["bench/clients/unary-latency.mjs", "<port>", ROUTE, "route.bin", "3000", "300"]),
    ];
    return { rps, cpuUs, latency, commands };
  } finally {
    await stopAll();
  }
}

/**
 * Runs RouteBatch at 100 and 1,000 keys against single Route calls on one rollgate server,
 * interleaved round by round, all at the same calls in flight. Returns calls/s and keys/s.
 */
export async function routeBatchCase({ dir, seconds, rounds, log }) {
  const rg = await startRollgate({});
  try {
    await createRollout(rg.port, "checkout", { interval: "10s", window: "300s" });
    const bodies = {
      1: { path: ROUTE, body: writeBody(dir, "route.bin", routeFrame("checkout", "user-12345")) },
      100: { path: ROUTE_BATCH, body: writeBody(dir, "route-batch-100.bin", routeBatchFrame("checkout", 100)) },
      1000: { path: ROUTE_BATCH, body: writeBody(dir, "route-batch-1000.bin", routeBatchFrame("checkout", 1000)) },
    };
    const clients = 4;
    const inFlight = 4;
    for (const b of Object.values(bodies)) await h2load({ port: rg.port, ...b, clients, inFlight, requests: 2000 });
    // The batch answers must be real: check one of each with the Node client.
    for (const b of Object.values(bodies)) {
      const l = await runClient("unary-latency.mjs", [rg.port, b.path, b.body, 20, 0]);
      if (l.errors > 0) throw new Error(`${b.path}: grpc-status ${l.lastStatus}`);
    }
    const callsPerSec = { 1: [], 100: [], 1000: [] };
    for (let round = 0; round < rounds; round++) {
      for (const [size, b] of Object.entries(bodies)) {
        const res = await h2load({ port: rg.port, ...b, clients, inFlight, seconds, warmup: 0 });
        callsPerSec[size].push(res.rps);
      }
      log(`  route-batch round ${round + 1}/${rounds}: ${Object.keys(bodies).map((k) => `batch ${k}: ${Math.round(callsPerSec[k].at(-1) * Number(k))} keys/s`).join(", ")}`);
    }
    const commands = [
      rollgateCommand({}),
      h2loadCommand({ port: "<port>", path: ROUTE_BATCH, body: "route-batch-1000.bin", clients, inFlight, seconds, warmup: 0 }) + "   # also route-batch-100.bin, and route.bin on " + ROUTE,
    ];
    return { callsPerSec, clients, inFlight, commands };
  } finally {
    await rg.stop();
  }
}
