// Issue 15: what OpenTelemetry tracing costs gRPC Route on the fast path. Servers with tracing
// off (twice: an A/A control of the noise), on (every call a span, OTLP/HTTP JSON to a local sink
// that reads and discards what it is sent) and on but sampled out (OTEL_TRACES_SAMPLER=always_off),
// optionally beside a build from another tree (`--otel-baseline=<tree>`: its dist/, e.g. the
// commit before tracing), all on the server core in turn, interleaved round by round.
import { createServer } from "node:http";
import { join } from "node:path";
import { h2load, h2loadCommand } from "../lib/h2load.mjs";
import { routeFrame, writeBody } from "../lib/bodies.mjs";
import { createRollout, rollgateCommand, startRollgate } from "../lib/rollgate.mjs";
import { cpuSeconds, runClient } from "../lib/util.mjs";

/** In flight: 4 HTTP/2 connections × 16 streams, as the route case's 64. */
const CONNS = 4;
const STREAMS = 16;

/** An OTLP/HTTP sink on a loopback port: answers 200 to every export and counts the spans' bytes only. */
async function startSink() {
  let exports = 0;
  let bytes = 0;
  const server = createServer((req, res) => {
    req.on("data", (c) => (bytes += c.length));
    req.on("end", () => {
      exports++;
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    stats: () => ({ exports, bytes }),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Runs the servers, interleaved, `rounds` times; returns calls/s and server CPU µs per call of each. */
export async function otelCase({ dir, seconds, rounds, log, baseline }) {
  const sink = await startSink();
  const on = { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url };
  const variants = [
    { key: "off", label: "tracing off (no OTEL_* variables)", opts: {} },
    { key: "on", label: "tracing on: every call a span, OTLP/HTTP JSON to a local sink", opts: { env: on } },
    { key: "sampledOut", label: "tracing on, sampled out (OTEL_TRACES_SAMPLER=always_off)", opts: { env: { ...on, OTEL_TRACES_SAMPLER: "always_off" } } },
    { key: "offAgain", label: "tracing off again (A/A control)", opts: {} },
    ...(baseline === undefined ? [] : [{ key: "baseline", label: `baseline build (${baseline.label}), no tracing code`, opts: { cli: join(baseline.tree, "dist", "src", "cli", "main.js") } }]),
  ];
  const servers = {};
  try {
    for (const v of variants) {
      servers[v.key] = await startRollgate(v.opts);
      await createRollout(servers[v.key].port, "checkout", { interval: "10s", window: "300s" });
    }
    const body = writeBody(dir, "otel-route.bin", routeFrame("checkout", "user-12345"));
    const path = "/rollgate.v1.DecisionService/Route";
    const optsOf = (port) => ({ port, path, body, clients: CONNS, inFlight: STREAMS });
    // Answers must be real (grpc-status 0) before anything is timed, then a warm-up.
    for (const v of variants) {
      const l = await runClient("unary-latency.mjs", [servers[v.key].port, path, body, 20, 0]);
      if (l.errors > 0) throw new Error(`${v.key}: grpc-status ${l.lastStatus}`);
      await h2load({ ...optsOf(servers[v.key].port), requests: 5000 });
    }
    const callsPerSec = Object.fromEntries(variants.map((v) => [v.key, []]));
    const serverCpuUs = Object.fromEntries(variants.map((v) => [v.key, []]));
    for (let round = 0; round < rounds; round++) {
      for (const v of variants) {
        const pid = servers[v.key].child.pid;
        const cpu0 = cpuSeconds(pid);
        const res = await h2load({ ...optsOf(servers[v.key].port), seconds, warmup: 0 });
        callsPerSec[v.key].push(res.rps);
        serverCpuUs[v.key].push(((cpuSeconds(pid) - cpu0) / res.done) * 1e6);
      }
      log(`  otel round ${round + 1}/${rounds}: ${variants.map((v) => `${v.key} ${Math.round(callsPerSec[v.key].at(-1))}/s (${serverCpuUs[v.key].at(-1).toFixed(1)} µs CPU/call)`).join(", ")}`);
    }
    // Each variant against tracing off in the same round (the machine's load moves between rounds).
    const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
    const ratios = {};
    for (const v of variants) {
      const rps = callsPerSec[v.key].map((x, i) => x / callsPerSec.off[i]);
      const cpu = serverCpuUs[v.key].map((x, i) => x / serverCpuUs.off[i]);
      // The least CPU per call a variant needed in any round is the figure least disturbed by other load.
      const bestCpu = Math.min(...serverCpuUs[v.key]);
      ratios[v.key] = {
        rps: median(rps),
        rpsMin: Math.min(...rps),
        rpsMax: Math.max(...rps),
        cpu: median(cpu),
        cpuMin: Math.min(...cpu),
        cpuMax: Math.max(...cpu),
        bestCpuUs: bestCpu,
        bestCpu: bestCpu / Math.min(...serverCpuUs.off),
      };
      log(
        `  ${v.key.padEnd(10)} req/s median ${Math.round(median(callsPerSec[v.key]))}, × off ${ratios[v.key].rps.toFixed(2)} (${ratios[v.key].rpsMin.toFixed(2)}–${ratios[v.key].rpsMax.toFixed(2)}); ` +
          `CPU/call median ${median(serverCpuUs[v.key]).toFixed(1)} µs, × off ${ratios[v.key].cpu.toFixed(2)} (${ratios[v.key].cpuMin.toFixed(2)}–${ratios[v.key].cpuMax.toFixed(2)}); ` +
          `least CPU/call ${bestCpu.toFixed(1)} µs, × off's least ${ratios[v.key].bestCpu.toFixed(2)}`,
      );
    }
    const { exports, bytes } = sink.stats();
    log(`  sink: ${exports} exports, ${(bytes / 2 ** 20).toFixed(1)} MiB of OTLP JSON`);
    const commands = [
      rollgateCommand({}),
      `OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:<sink> ${rollgateCommand({})}`,
      `OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:<sink> OTEL_TRACES_SAMPLER=always_off ${rollgateCommand({})}`,
      h2loadCommand({ ...optsOf("<port>"), seconds, warmup: 0 }).replaceAll(dir, "<tmp>"),
    ];
    return { labels: Object.fromEntries(variants.map((v) => [v.key, v.label])), callsPerSec, serverCpuUs, ratios, sink: { exports, bytes }, commands };
  } finally {
    for (const s of Object.values(servers)) await s.stop();
    await sink.close();
  }
}
