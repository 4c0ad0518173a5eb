// Issue 14: OFREP single evaluations over HTTP/1.1 beside Connect JSON Route over HTTP/1.1 and
// gRPC Route (fast path) over HTTP/2, against one server in the same rounds, interleaved.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { h2load, h2loadCommand } from "../lib/h2load.mjs";
import { routeFrame, writeBody } from "../lib/bodies.mjs";
import { createRollout, rollgateCommand, startRollgate } from "../lib/rollgate.mjs";
import { cpuSeconds, runClient } from "../lib/util.mjs";

/** In flight for every protocol: 16 HTTP/1.1 connections, or 4 HTTP/2 connections × 4 streams. */
const H1_CONNS = 16;
const H2_CONNS = 4;
const H2_STREAMS = 4;
/** Evaluations per round of the in-process provider client. */
const PROVIDER_CALLS = 200_000;

/** The three ways of asking where key "user-12345" of "checkout" goes. */
function cases(dir, port) {
  const json = (name, value) => {
    const path = join(dir, name);
    writeFileSync(path, JSON.stringify(value));
    return path;
  };
  return {
    ofrep: {
      label: "OFREP POST /ofrep/v1/evaluate/flags/checkout (HTTP/1.1, JSON)",
      opts: { port, path: "/ofrep/v1/evaluate/flags/checkout", body: json("ofrep.json", { context: { targetingKey: "user-12345" } }), headers: ["content-type: application/json"], h1: true, clients: H1_CONNS, inFlight: 1 },
    },
    connectJson: {
      label: "Connect JSON Route (HTTP/1.1)",
      opts: { port, path: "/rollgate.v1.DecisionService/Route", body: json("route.json", { rollout: "checkout", key: "user-12345" }), headers: ["content-type: application/json"], h1: true, clients: H1_CONNS, inFlight: 1 },
    },
    grpc: {
      label: "gRPC Route (HTTP/2, fast path)",
      opts: { port, path: "/rollgate.v1.DecisionService/Route", body: writeBody(dir, "route.bin", routeFrame("checkout", "user-12345")), clients: H2_CONNS, inFlight: H2_STREAMS },
    },
  };
}

/** Runs the three, interleaved, `rounds` times; returns calls/s and server CPU µs per call of each. */
export async function ofrepCase({ dir, seconds, rounds, log }) {
  const rg = await startRollgate({});
  try {
    await createRollout(rg.port, "checkout", { interval: "10s", window: "300s" });
    const all = cases(dir, rg.port);
    // Answers must be real before anything is timed: OFREP and Connect JSON agree with gRPC Route.
    const ofrep = await (await fetch(`${rg.url}/ofrep/v1/evaluate/flags/checkout`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ context: { targetingKey: "user-12345" } }) })).json();
    const route = await (await fetch(`${rg.url}/rollgate.v1.DecisionService/Route`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ rollout: "checkout", key: "user-12345" }) })).json();
    if (ofrep.value !== route.version || typeof ofrep.variant !== "string") throw new Error(`OFREP ${JSON.stringify(ofrep)} disagrees with Route ${JSON.stringify(route)}`);
    const l = await runClient("unary-latency.mjs", [rg.port, all.grpc.opts.path, all.grpc.opts.body, 20, 0]);
    if (l.errors > 0) throw new Error(`gRPC Route: grpc-status ${l.lastStatus}`);
    for (const c of Object.values(all)) await h2load({ ...c.opts, requests: 2000 });
    const callsPerSec = Object.fromEntries(Object.keys(all).map((k) => [k, []]));
    const serverCpuUs = Object.fromEntries(Object.keys(all).map((k) => [k, []]));
    for (let round = 0; round < rounds; round++) {
      for (const [k, c] of Object.entries(all)) {
        const cpu0 = cpuSeconds(rg.child.pid);
        const res = await h2load({ ...c.opts, seconds, warmup: 0 });
        const cpu = cpuSeconds(rg.child.pid) - cpu0;
        callsPerSec[k].push(res.rps);
        serverCpuUs[k].push((cpu / res.done) * 1e6);
      }
      log(`  ofrep round ${round + 1}/${rounds}: ${Object.keys(all).map((k) => `${k} ${Math.round(callsPerSec[k].at(-1))}/s (${serverCpuUs[k].at(-1).toFixed(0)} µs server CPU/call)`).join(", ")}`);
    }
    // The in-process provider through @openfeature/server-sdk beside the local client's own route.
    const provider = await runClient("openfeature-provider.mjs", [rg.port, "checkout", rounds, PROVIDER_CALLS]);
    for (const k of ["route", "provider"]) log(`  in-process ${k}: ${provider.wallNs[k].map((x) => x.toFixed(0)).join(", ")} ns wall, ${provider.cpuNs[k].map((x) => x.toFixed(0)).join(", ")} ns CPU per evaluation`);
    const commands = [
      rollgateCommand({}),
      ...Object.values(all).map((c) => h2loadCommand({ ...c.opts, port: "<port>", seconds, warmup: 0 }).replaceAll(dir, "<tmp>")),
      `taskset -c 1 node bench/clients/openfeature-provider.mjs <port> checkout ${rounds} ${PROVIDER_CALLS}`,
    ];
    return { labels: Object.fromEntries(Object.entries(all).map(([k, c]) => [k, c.label])), callsPerSec, serverCpuUs, provider, commands };
  } finally {
    await rg.stop();
  }
}
