// Issue 17: the Connect protocol on the fast path beside its baselines, in the same rounds,
// interleaved: Connect JSON Route over HTTP/1.1 (POST and GET) against a bare node:http server
// answering a fixed JSON body; Connect binary Route over h2c and gRPC Route against the bare
// node:http2 echo; each rollgate figure also via connect-node (--no-connect-fast-path), the
// "before" figure. With ROLLGATE_BENCH_UNLEASH_EDGE=<unleash-edge binary> (or one on PATH), Unleash
// Edge's frontend API answering the same question over HTTP/1.1 (1 worker, offline mode) in the
// same rounds: reported beside the bare server, optional, never needed.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { loadavg } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { RouteRequestSchema } from "../../dist/gen/rollgate/v1/decision_service_pb.js";
import { h2load, h2loadCommand } from "../lib/h2load.mjs";
import { routeFrame, writeBody } from "../lib/bodies.mjs";
import { createRollout, rollgateCommand, startRollgate } from "../lib/rollgate.mjs";
import { benchDir, commandText, cpuSeconds, mmm, SERVER_CORE, sleep, spawnPinned, startPortServer, stop } from "../lib/util.mjs";

/** HTTP/1.1: 64 connections, one request each in flight; HTTP/2: 4 connections × 16 streams. */
const H1 = { h1: true, clients: 64, inFlight: 1 };
const H2 = { clients: 4, inFlight: 16 };
const ROUTE = "/rollgate.v1.DecisionService/Route";

/** The ratios reported, each a case over its baseline, and the issue's target for it. */
export const CONNECT_RATIOS = [
  { id: "connect-json-h1", over: "bare-h1", goal: 0.5 },
  { id: "connect-get-h1", over: "bare-h1", goal: 0.5 },
  { id: "connect-json-h1-node", over: "bare-h1" },
  { id: "connect-get-h1-node", over: "bare-h1" },
  { id: "connect-proto-h2", over: "bare-h2", goal: 0.5 },
  { id: "connect-proto-h2-node", over: "bare-h2" },
  { id: "grpc-h2", over: "bare-h2", goal: 0.75 },
  // With ROLLGATE_BENCH_BEFORE=<a checkout with dist/ built>: gRPC and Connect JSON Route at that commit, same run.
  { id: "grpc-h2-before", over: "bare-h2", optional: true },
  { id: "connect-json-h1-before", over: "bare-h1", optional: true },
  // With Unleash Edge found (see the module comment): its frontend API for one flag and user.
  { id: "unleash-edge-h1", over: "bare-h1", optional: true },
];

/** The Unleash Edge binary to compare with, or undefined: ROLLGATE_BENCH_UNLEASH_EDGE, else `unleash-edge` on PATH. */
function unleashEdgeBinary() {
  if (process.env.ROLLGATE_BENCH_UNLEASH_EDGE !== undefined) return process.env.ROLLGATE_BENCH_UNLEASH_EDGE;
  try {
    return execFileSync("sh", ["-c", "command -v unleash-edge"], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const UNLEASH_TOKEN = "*:development.rollgate-bench";
/** The flag Unleash Edge serves: "checkout" on for 5% of users by userId, as the rollgate rollout routes 5% to the canary. */
const UNLEASH_FEATURES = {
  version: 1,
  features: [
    {
      name: "checkout",
      type: "release",
      enabled: true,
      project: "default",
      stale: false,
      impressionData: false,
      strategies: [{ name: "flexibleRollout", constraints: [], parameters: { rollout: "5", stickiness: "userId", groupId: "checkout" }, variants: [] }],
      variants: [],
    },
  ],
};

function unleashArgs(port, features) {
  return ["-p", String(port), "-i", "127.0.0.1", "-w", "1", "offline", "-b", features, "--frontend-tokens", UNLEASH_TOKEN, "--tokens", UNLEASH_TOKEN];
}

/** Starts Unleash Edge (1 worker, offline, on the server core) on a free port once it answers the question; resolves { child, port, pid, version }. */
async function startUnleashEdge(bin, dir) {
  const features = join(dir, "unleash-features.json");
  writeFileSync(features, JSON.stringify(UNLEASH_FEATURES));
  const port = await new Promise((resolve, reject) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port: p } = s.address();
      s.close(() => resolve(p));
    });
    s.once("error", reject);
  });
  const child = spawnPinned(SERVER_CORE, bin, unleashArgs(port, features));
  child.stdout.resume();
  child.stderr.resume();
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}${UNLEASH_PATH}`, { headers: { authorization: UNLEASH_TOKEN } });
      const body = await r.json();
      if (r.status === 200 && body.name === "checkout") break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      await stop(child);
      throw new Error(`Unleash Edge (${bin}) did not answer on port ${port}`);
    }
    await sleep(100);
  }
  let version = "unleash-edge";
  try {
    version = execFileSync(bin, ["--version"], { encoding: "utf8" }).trim();
  } catch {
    /* the figure stands without it */
  }
  return { child, port, pid: child.pid, version };
}

const UNLEASH_PATH = "/api/frontend/features/checkout?userId=user-12345";

function cases(dir, ports, before, unleash) {
  const file = (name, bytes) => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };
  const request = { rollout: "checkout", key: "user-12345" };
  const json = file("route.json", JSON.stringify(request));
  const proto = file("route.pb", toBinary(RouteRequestSchema, create(RouteRequestSchema, request)));
  const grpc = writeBody(dir, "route.bin", routeFrame("checkout", "user-12345"));
  const get = `${ROUTE}?${new URLSearchParams({ connect: "v1", encoding: "json", message: JSON.stringify(request) }).toString()}`;
  const jsonType = ["content-type: application/json"];
  const protoType = ["content-type: application/proto"];
  return {
    "bare-h1": { label: "bare node:http, fixed JSON answer (HTTP/1.1)", opts: { port: ports.bareH1, path: ROUTE, body: json, headers: jsonType, ...H1 } },
    "connect-json-h1": { label: "rollgate Connect JSON POST Route, fast path (HTTP/1.1)", opts: { port: ports.fast, path: ROUTE, body: json, headers: jsonType, ...H1 } },
    "connect-json-h1-node": { label: "rollgate Connect JSON POST Route, connect-node (HTTP/1.1)", opts: { port: ports.node, path: ROUTE, body: json, headers: jsonType, ...H1 } },
    "connect-get-h1": { label: "rollgate Connect GET Route ?encoding=json, fast path (HTTP/1.1)", opts: { port: ports.fast, path: get, headers: [], ...H1 } },
    "connect-get-h1-node": { label: "rollgate Connect GET Route ?encoding=json, connect-node (HTTP/1.1)", opts: { port: ports.node, path: get, headers: [], ...H1 } },
    "bare-h2": { label: "bare node:http2, hand-framed gRPC echo (h2c)", opts: { port: ports.bareH2, path: ROUTE, body: grpc, ...H2 } },
    "connect-proto-h2": { label: "rollgate Connect binary Route, fast path (h2c)", opts: { port: ports.fast, path: ROUTE, body: proto, headers: protoType, ...H2 } },
    "connect-proto-h2-node": { label: "rollgate Connect binary Route, connect-node (h2c)", opts: { port: ports.node, path: ROUTE, body: proto, headers: protoType, ...H2 } },
    "grpc-h2": { label: "rollgate gRPC Route, fast path (h2c)", opts: { port: ports.fast, path: ROUTE, body: grpc, ...H2 } },
    ...(before === undefined
      ? {}
      : {
          "grpc-h2-before": { label: `rollgate gRPC Route, fast path, at ${before.commit} (h2c)`, opts: { port: ports.before, path: ROUTE, body: grpc, ...H2 } },
          "connect-json-h1-before": { label: `rollgate Connect JSON POST Route, fast path, at ${before.commit} (HTTP/1.1)`, opts: { port: ports.before, path: ROUTE, body: json, headers: jsonType, ...H1 } },
        }),
    ...(unleash === undefined
      ? {}
      : {
          "unleash-edge-h1": {
            label: `${unleash.version} (Rust, actix, 1 worker, offline), GET /api/frontend/features/checkout?userId=… (HTTP/1.1)`,
            opts: { port: ports.unleash, path: UNLEASH_PATH, headers: [`authorization: ${UNLEASH_TOKEN}`], ...H1 },
          },
        }),
  };
}

/** Runs every case once per round, interleaved; returns req/s, server CPU µs per call and the ratios of each round. */
export async function connectCase({ dir, seconds, rounds, log }) {
  const bareH1 = await startPortServer(process.execPath, [join(benchDir, "refs", "bare-http1.mjs")]);
  const bareH2 = await startPortServer(process.execPath, [join(benchDir, "refs", "bare-http2.mjs")]);
  const fast = await startRollgate({});
  const node = await startRollgate({ connectFastPath: false });
  const beforeDir = process.env.ROLLGATE_BENCH_BEFORE;
  const before = beforeDir === undefined ? undefined : await startRollgate({ cli: join(beforeDir, "dist", "src", "cli", "main.js") });
  if (before !== undefined) before.commit = process.env.ROLLGATE_BENCH_BEFORE_COMMIT ?? beforeDir;
  const unleashBin = unleashEdgeBinary();
  let unleash;
  if (unleashBin !== undefined) {
    try {
      unleash = await startUnleashEdge(unleashBin, dir);
    } catch (e) {
      log(`  Unleash Edge left out: ${e.message}`);
    }
  }
  const pids = {
    [bareH1.port]: bareH1.pid,
    [bareH2.port]: bareH2.pid,
    [fast.port]: fast.pid,
    [node.port]: node.pid,
    ...(before === undefined ? {} : { [before.port]: before.pid }),
    ...(unleash === undefined ? {} : { [unleash.port]: unleash.pid }),
  };
  try {
    for (const rg of [fast, node, ...(before === undefined ? [] : [before])]) await createRollout(rg.port, "checkout", { interval: "10s", window: "300s" });
    // The answers must be real before anything is timed: both paths agree, over POST and GET.
    const answers = [];
    for (const rg of [fast, node]) {
      const post = await fetch(`${rg.url}${ROUTE}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ rollout: "checkout", key: "user-12345" }) });
      const get = await fetch(`${rg.url}${ROUTE}?connect=v1&encoding=json&message=${encodeURIComponent(JSON.stringify({ rollout: "checkout", key: "user-12345" }))}`);
      if (post.status !== 200 || get.status !== 200) throw new Error(`Route answered ${post.status} (POST), ${get.status} (GET)`);
      answers.push(JSON.stringify(await post.json()), JSON.stringify(await get.json()));
    }
    if (new Set(answers).size !== 1) throw new Error(`the paths disagree: ${answers.join(" | ")}`);
    const all = cases(dir, { bareH1: bareH1.port, bareH2: bareH2.port, fast: fast.port, node: node.port, before: before?.port, unleash: unleash?.port }, before, unleash);
    const ratioCases = CONNECT_RATIOS.filter((r) => all[r.id] !== undefined);
    for (const c of Object.values(all)) await h2load({ ...c.opts, requests: c.opts.port === node.port ? 3000 : 20000 });
    const rps = Object.fromEntries(Object.keys(all).map((k) => [k, []]));
    const cpuUs = Object.fromEntries(Object.keys(all).map((k) => [k, []]));
    const ratios = Object.fromEntries(ratioCases.map((r) => [r.id, []]));
    // CPU per call: the baseline's server CPU per call over the case's. On a machine busy with
    // other work a server gets an uneven share of its core, and this ratio stays steadier than req/s.
    const cpuRatios = Object.fromEntries(ratioCases.map((r) => [r.id, []]));
    for (let round = 0; round < rounds; round++) {
      for (const [k, c] of Object.entries(all)) {
        const pid = pids[c.opts.port];
        const cpu0 = cpuSeconds(pid);
        const res = await h2load({ ...c.opts, seconds, warmup: 0.3 });
        const cpu = cpuSeconds(pid) - cpu0;
        rps[k].push(res.rps);
        cpuUs[k].push((cpu / res.done) * 1e6);
      }
      for (const r of ratioCases) ratios[r.id].push(rps[r.id].at(-1) / rps[r.over].at(-1));
      for (const r of ratioCases) cpuRatios[r.id].push(cpuUs[r.over].at(-1) / cpuUs[r.id].at(-1));
      log(`  connect round ${round + 1}/${rounds}: ${Object.keys(all).map((k) => `${k} ${Math.round(rps[k].at(-1))}`).join(", ")}`);
      log(`    server CPU µs/call: ${Object.keys(all).map((k) => `${k} ${cpuUs[k].at(-1).toFixed(1)}`).join(", ")}`);
      log(`    ratios (req/s | CPU per call): ${ratioCases.map((r) => `${r.id}/${r.over} ${ratios[r.id].at(-1).toFixed(2)} | ${cpuRatios[r.id].at(-1).toFixed(2)}`).join(", ")}`);
    }
    const summary = Object.fromEntries(Object.keys(all).map((k) => [k, { label: all[k].label, rps: mmm(rps[k]), cpuUs: mmm(cpuUs[k]) }]));
    // The figures RESULTS.md quotes, over all rounds: medians (min–max), each ratio beside its goal.
    const load = loadavg().map((x) => x.toFixed(2)).join(" ");
    const f = (m, d = 0) => `${m.median.toFixed(d)} (${m.min.toFixed(d)}–${m.max.toFixed(d)})`;
    log(`  connect summary over ${rounds} rounds (load average at the end: ${load}):`);
    for (const [k, v] of Object.entries(summary)) log(`    ${k.padEnd(22)} req/s ${f(v.rps)}, server CPU µs/call ${f(v.cpuUs, 1)}`);
    const verdicts = ratioCases.map((r) => {
      const byRps = mmm(ratios[r.id]);
      const byCpu = mmm(cpuRatios[r.id]);
      const verdict = r.goal === undefined ? "" : `goal ≥ ${r.goal}: ${byRps.median >= r.goal ? "met" : "missed"} by req/s, ${byCpu.median >= r.goal ? "met" : "missed"} by CPU per call`;
      log(`    ${`${r.id}/${r.over}`.padEnd(30)} req/s ${f(byRps, 2)} | CPU per call ${f(byCpu, 2)} ${verdict}`);
      return { id: r.id, over: r.over, goal: r.goal, rps: byRps, cpu: byCpu };
    });
    const commands = [
      commandText(SERVER_CORE, "node", ["bench/refs/bare-http1.mjs"]),
      commandText(SERVER_CORE, "node", ["bench/refs/bare-http2.mjs"]),
      rollgateCommand({}),
      rollgateCommand({ connectFastPath: false }),
      "# a rollout \"checkout\" (5% canary, 2 gates, 10 s interval) is created on both rollgate servers over Connect JSON before the run",
      "# ROLLGATE_BENCH_BEFORE=<a checkout with dist/ built> ROLLGATE_BENCH_BEFORE_COMMIT=<its commit> adds gRPC Route at that commit, started the same way",
      ...(unleash === undefined
        ? []
        : [
            `# ${unleash.version}, built with: SWAGGER_UI_DOWNLOAD_URL=file://<zip of swagger-ui-dist@5.17.14 as swagger-ui-5.17.14/dist/> cargo install unleash-edge --locked --no-default-features; the flag file is UNLEASH_FEATURES in bench/cases/connect.mjs`,
            commandText(SERVER_CORE, "unleash-edge", unleashArgs("<port>", "<tmp>/unleash-features.json")),
          ]),
      ...Object.entries(all).map(([k, c]) => `${h2loadCommand({ ...c.opts, port: `<${k}>`, seconds, warmup: 0.3 }).replaceAll(dir, "<tmp>")}`),
    ];
    return { rps, cpuUs, ratios, cpuRatios, summary, verdicts, load, commands };
  } finally {
    await fast.stop();
    await node.stop();
    await before?.stop();
    if (unleash !== undefined) await stop(unleash.child);
    await stop(bareH1.child);
    await stop(bareH2.child);
  }
}
