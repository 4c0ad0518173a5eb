#!/usr/bin/env node
// A/B of gRPC Route on the fast path: this build against another build's dist/ (argv[2]) and the
// bare node:http2 echo, interleaved rounds in one run, by server CPU per call (/proc):
// `node bench/grpc-ab.mjs <other checkout with dist/ built> [rounds] [seconds]`.
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { routeFrame, writeBody } from "./lib/bodies.mjs";
import { h2load } from "./lib/h2load.mjs";
import { createRollout, startRollgate } from "./lib/rollgate.mjs";
import { benchDir, cpuSeconds, mmm, startPortServer, stop } from "./lib/util.mjs";

const [other, roundsArg = "6", secondsArg = "3"] = process.argv.slice(2);
if (other === undefined) throw new Error("usage: node bench/grpc-ab.mjs <other checkout with dist/ built> [rounds] [seconds]");
const rounds = Number(roundsArg);
const seconds = Number(secondsArg);
const dir = mkdtempSync(join(tmpdir(), "rollgate-grpc-ab-"));
const ROUTE = "/rollgate.v1.DecisionService/Route";
const body = writeBody(dir, "route.bin", routeFrame("checkout", "user-12345"));
const servers = {
  bare: await startPortServer(process.execPath, [join(benchDir, "refs", "bare-http2.mjs")]),
  now: await startRollgate({}),
  other: await startRollgate({ cli: join(other, "dist", "src", "cli", "main.js") }),
};
try {
  await createRollout(servers.now.port, "checkout", { interval: "10s", window: "300s" });
  await createRollout(servers.other.port, "checkout", { interval: "10s", window: "300s" });
  const opts = (s) => ({ port: s.port, path: ROUTE, body, clients: 4, inFlight: 16 });
  for (const s of Object.values(servers)) await h2load({ ...opts(s), requests: 20000 });
  const cpu = { bare: [], now: [], other: [] };
  const load = [loadavg()[0]];
  for (let round = 0; round < rounds; round++) {
    // Alternate the order so that neither build always runs right after the other.
    const order = round % 2 === 0 ? ["bare", "now", "other"] : ["bare", "other", "now"];
    for (const k of order) {
      const pid = servers[k].pid;
      const c0 = cpuSeconds(pid);
      const r = await h2load({ ...opts(servers[k]), seconds, warmup: 0.3 });
      cpu[k].push(((cpuSeconds(pid) - c0) / r.done) * 1e6);
    }
    load.push(loadavg()[0]);
    process.stdout.write(`round ${round + 1}: ${Object.entries(cpu).map(([k, v]) => `${k} ${v.at(-1).toFixed(1)} µs`).join(", ")}  (load ${loadavg()[0].toFixed(1)})\n`);
  }
  const m = Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, mmm(v)]));
  const ratios = (k) => mmm(cpu.bare.map((b, i) => b / cpu[k][i]));
  process.stdout.write(`${JSON.stringify({ cpuUs: m, ratioNow: ratios("now"), ratioOther: ratios("other"), load }, null, 0)}\n`);
} finally {
  for (const s of Object.values(servers)) await (s.stop === undefined ? stop(s.child) : s.stop());
  rmSync(dir, { recursive: true, force: true });
}
