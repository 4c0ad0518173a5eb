// The soak and chaos load generator (issue 16): one process, meant to run pinned to the client
// core, driving one rollgate server with a mixed load until SIGTERM or `seconds` pass:
//   - Route on the gRPC fast path (raw HTTP/2, prior knowledge), `routeRate` calls per second;
//   - RecordOutcome, `outcomeRate` outcomes per second in batches of `outcomeBatch`;
//   - `watchHealth` WatchHealth streams and `watchRoutes` WatchRoutes streams, reopened when they end;
//   - control-plane churn over Connect JSON (HTTP/1.1), `churnRate` changes per second: SetWeight,
//     Pause/Resume, rollouts created and deleted; every acknowledged change (with the version the
//     server returned) is appended to `changeLog` when given.
// Every `reportMs` it prints one JSON line of cumulative counters on stdout; the last line
// (`"final": true`) adds the same. It reconnects whenever the server goes away (chaos kills it):
// calls that fail meanwhile are counted apart (`*.down`) from those that fail while connected.
//
// Usage: node load.mjs '<json options>' (see DEFAULTS).
import { appendFileSync } from "node:fs";
import { connect } from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  HealthUpdateSchema,
  RecordOutcomeRequestSchema,
  RecordOutcomeResponseSchema,
  RouteRequestSchema,
  WatchHealthRequestSchema,
  WatchRoutesRequestSchema,
  WatchRoutesResponseSchema,
} from "../../dist/gen/rollgate/v1/decision_service_pb.js";
import { Variant } from "../../dist/gen/rollgate/v1/rollout_pb.js";

const DEFAULTS = {
  port: 0,
  seconds: 600,
  /** Rollouts that exist before the load starts (the orchestrator creates them): routed, fed, watched. */
  rollouts: ["soak-0", "soak-1", "soak-2", "soak-3"],
  routeRate: 5000,
  outcomeRate: 50_000,
  outcomeBatch: 500,
  watchHealth: 200,
  watchRoutes: 10,
  /** Control-plane changes per second. */
  churnRate: 4,
  /** Churned rollouts alive at once (created, changed, deleted oldest first). */
  churnLive: 5,
  changeLog: "",
  reportMs: 1000,
  seed: 1,
  /** Calls in flight at most per kind: past that a tick is skipped (counted), never queued. */
  maxInflight: 256,
};
const opts = { ...DEFAULTS, ...JSON.parse(process.argv[2] ?? "{}") };
const base = `http://127.0.0.1:${opts.port}`;
const t0 = Date.now();

let seed = opts.seed >>> 0 || 1;
/** A seeded uniform [0,1) (LCG), so that a run's churn is repeatable. */
const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);

function frame(bytes) {
  const f = Buffer.allocUnsafe(5 + bytes.length);
  f[0] = 0;
  f.writeUInt32BE(bytes.length, 1);
  f.set(bytes, 5);
  return f;
}

/** Splits gRPC frames out of a stream's chunks; calls `onMessage(bytes)` per whole message. */
function deframer(onMessage) {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (buf.length < 5 + len) break;
      onMessage(buf.subarray(5, 5 + len));
      buf = buf.subarray(5 + len);
    }
  };
}

const stats = {
  route: { ok: 0, err: 0, down: 0, skipped: 0, lastError: "" },
  outcomes: { calls: 0, acked: 0, ignored: 0, err: 0, down: 0, skipped: 0, lastError: "" },
  health: { open: 0, opened: 0, messages: 0, err: 0, down: 0, lastError: "" },
  routes: { open: 0, opened: 0, messages: 0, err: 0, down: 0, lastError: "" },
  changes: { ok: 0, err: 0, down: 0, lastError: "", byOp: {} },
  reconnects: 0,
};
/** Outcomes acknowledged per second since start, per rollout (chaos measures loss against it). */
const ackedPerSecond = new Map();

// --- HTTP/2 sessions (one for unary data-plane calls, one for streams), reconnecting ---------

/** True from a session's first failure until a new one connects: errors meanwhile are "down". */
let down = false;
const sessions = { unary: undefined, streams: undefined };
function session(kind) {
  let s = sessions[kind];
  if (s !== undefined && !s.closed && !s.destroyed) return s;
  s = connect(base);
  sessions[kind] = s;
  s.on("error", () => {
    down = true;
  });
  s.on("connect", () => {
    if (down) stats.reconnects++;
    down = false;
  });
  s.once("close", () => {
    if (sessions[kind] === s) sessions[kind] = undefined;
  });
  s.setMaxListeners(0);
  return s;
}

const GRPC_HEADERS = { ":method": "POST", "content-type": "application/grpc", te: "trailers" };

/** One unary gRPC call; `done(status, bytes)` gets the grpc-status ("transport" on a broken call). */
function unary(path, body, done) {
  let status;
  const chunks = [];
  let req;
  try {
    req = session("unary").request({ ...GRPC_HEADERS, ":path": path });
  } catch {
    return done("transport", undefined);
  }
  req.on("response", (h) => h["grpc-status"] !== undefined && (status = String(h["grpc-status"])));
  req.on("trailers", (t) => (status = String(t["grpc-status"])));
  req.on("data", (c) => chunks.push(c));
  req.on("error", () => undefined);
  req.on("close", () => {
    const b = Buffer.concat(chunks);
    done(status ?? "transport", b.length >= 5 ? b.subarray(5) : undefined);
  });
  req.end(body);
}

function countFailure(s, status, detail) {
  if (down || status === "transport" || status === "14") s.down++;
  else {
    s.err++;
    s.lastError = detail;
  }
}

// --- Route ------------------------------------------------------------------------------------

const routeFrames = [];
for (let i = 0; i < 256; i++) {
  const rollout = opts.rollouts[i % opts.rollouts.length];
  routeFrames.push(frame(toBinary(RouteRequestSchema, create(RouteRequestSchema, { rollout, key: `user-${i * 7919}` }))));
}
let routeInflight = 0;
let routeN = 0;

// --- RecordOutcome ----------------------------------------------------------------------------

const outcomeFrames = opts.rollouts.map((rollout, r) => {
  let x = (opts.seed * 31 + r) >>> 0 || 1;
  const u = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 4294967296);
  const outcomes = Array.from({ length: opts.outcomeBatch }, (_, i) => ({
    variant: i % 2 === 0 ? Variant.STABLE : Variant.CANARY,
    success: u() >= 0.01,
    latencyMs: 5 + Math.round(u() * u() * 20000) / 100,
  }));
  return { rollout, body: frame(toBinary(RecordOutcomeRequestSchema, create(RecordOutcomeRequestSchema, { rollout, outcomes }))) };
});
let outcomeInflight = 0;
let outcomeN = 0;

// The data plane runs off one 10 ms timer; each tick catches up with the rate since start, so
// a late tick (a busy core) sends more rather than lowering the rate.
const TICK_MS = 10;
let routeDue = 0;
let outcomeDue = 0;
let lastTick = performance.now();
const dataTimer = setInterval(() => {
  const now = performance.now();
  const dt = Math.min(1000, now - lastTick);
  lastTick = now;
  routeDue += (opts.routeRate * dt) / 1000;
  outcomeDue += (opts.outcomeRate / opts.outcomeBatch) * (dt / 1000);
  while (routeDue >= 1) {
    routeDue--;
    if (routeInflight >= opts.maxInflight) {
      stats.route.skipped++;
      continue;
    }
    routeInflight++;
    unary("/rollgate.v1.DecisionService/Route", routeFrames[routeN++ & 255], (status) => {
      routeInflight--;
      if (status === "0") stats.route.ok++;
      else countFailure(stats.route, status, `Route grpc-status ${status}`);
    });
  }
  while (outcomeDue >= 1) {
    outcomeDue--;
    if (outcomeInflight >= opts.maxInflight) {
      stats.outcomes.skipped++;
      continue;
    }
    outcomeInflight++;
    const f = outcomeFrames[outcomeN++ % outcomeFrames.length];
    unary("/rollgate.v1.DecisionService/RecordOutcome", f.body, (status, bytes) => {
      outcomeInflight--;
      stats.outcomes.calls++;
      if (status !== "0" || bytes === undefined) return countFailure(stats.outcomes, status, `RecordOutcome grpc-status ${status}`);
      const r = fromBinary(RecordOutcomeResponseSchema, bytes);
      stats.outcomes.acked += r.accepted;
      stats.outcomes.ignored += r.ignored;
      const sec = Math.floor((Date.now() - t0) / 1000);
      let per = ackedPerSecond.get(f.rollout);
      if (per === undefined) ackedPerSecond.set(f.rollout, (per = []));
      per[sec] = (per[sec] ?? 0) + r.accepted;
    });
  }
}, TICK_MS);

// --- Streams ------------------------------------------------------------------------------------

let stopping = false;
function watch(kind, path, body, schema, s) {
  if (stopping) return;
  let req;
  try {
    req = session("streams").request({ ...GRPC_HEADERS, ":path": path });
  } catch {
    setTimeout(() => watch(kind, path, body, schema, s), 200);
    return;
  }
  let status;
  let counted = false;
  req.on("response", (h) => {
    if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
    s.open++;
    s.opened++;
    counted = true;
  });
  req.on(
    "data",
    deframer((bytes) => {
      fromBinary(schema, bytes);
      s.messages++;
    }),
  );
  req.on("trailers", (t) => (status = String(t["grpc-status"])));
  req.on("error", () => undefined);
  req.on("close", () => {
    if (counted) s.open--;
    // A stream ends only when the server goes away, or its rollout is deleted (churned ones).
    if (!stopping && status !== "0") countFailure(s, status ?? "transport", `${kind} ended with grpc-status ${status}`);
    setTimeout(() => watch(kind, path, body, schema, s), status === "0" ? 0 : 200);
  });
  req.end(body);
}
for (let i = 0; i < opts.watchHealth; i++) {
  const rollout = opts.rollouts[i % opts.rollouts.length];
  const body = frame(toBinary(WatchHealthRequestSchema, create(WatchHealthRequestSchema, { rollout })));
  watch("WatchHealth", "/rollgate.v1.DecisionService/WatchHealth", body, HealthUpdateSchema, stats.health);
}
for (let i = 0; i < opts.watchRoutes; i++) {
  const body = frame(toBinary(WatchRoutesRequestSchema, create(WatchRoutesRequestSchema, {})));
  watch("WatchRoutes", "/rollgate.v1.DecisionService/WatchRoutes", body, WatchRoutesResponseSchema, stats.routes);
}

// --- Control-plane churn ------------------------------------------------------------------------

/** One Connect JSON call; resolves with the parsed answer, or throws {status, code}. */
async function control(method, body) {
  let res;
  try {
    res = await fetch(`${base}/rollgate.v1.RolloutService/${method}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (e) {
    throw Object.assign(new Error(`${method}: ${e.cause?.code ?? e.message}`), { transport: true });
  }
  const text = await res.text().catch(() => "");
  if (res.status !== 200) throw Object.assign(new Error(`${method}: HTTP ${res.status} ${text.slice(0, 200)}`), { transport: res.status === 503 });
  return JSON.parse(text);
}

const churned = [];
/** Rollouts whose last change has an unknown outcome (the server died during it). */
const suspect = new Set();
let churnN = 0;
const paused = new Map(opts.rollouts.map((r) => [r, false]));

/** Appends an acknowledged (or failed, `acked: false`) change to the change log. */
function logChange(entry) {
  if (opts.changeLog !== "") appendFileSync(opts.changeLog, `${JSON.stringify({ at: Date.now(), ...entry })}\n`);
}

function rolloutOf(answer) {
  const r = answer.rollout;
  return { version: Number(r.version), weightBp: r.weightBp ?? 0, paused: r.paused === true };
}

async function churnOnce() {
  const pick = rnd();
  let op;
  let rollout;
  let call;
  if (pick < 0.15 && churned.length < opts.churnLive) {
    op = "create";
    rollout = `churn-${opts.seed}-${churnN++}`;
    call = () =>
      control("CreateRollout", {
        rollout: {
          name: rollout,
          stableVersion: "v1",
          canaryVersion: "v2",
          gates: [{ name: "errors", minSamples: "100", errorRate: { max: 0.05 } }],
          analysis: { interval: "1s", window: "60s", autoPromote: false },
        },
        reason: "soak churn",
      });
  } else if (pick < 0.3 && churned.length > 0) {
    op = "delete";
    rollout = churned[0];
    call = () => control("DeleteRollout", { name: rollout, reason: "soak churn" });
  } else if (pick < 0.45) {
    rollout = opts.rollouts[Math.floor(rnd() * opts.rollouts.length)];
    op = paused.get(rollout) ? "resume" : "pause";
    call = () => control(op === "pause" ? "Pause" : "Resume", { name: rollout, reason: "soak churn" });
  } else {
    op = "setWeight";
    const pool = churned.length > 0 && rnd() < 0.3 ? churned : opts.rollouts;
    rollout = pool[Math.floor(rnd() * pool.length)];
    const weightBp = 100 + Math.floor(rnd() * 4900);
    call = () => control("SetWeight", { name: rollout, weightBp, reason: "soak churn" });
  }
  try {
    const answer = await call();
    stats.changes.ok++;
    stats.changes.byOp[op] = (stats.changes.byOp[op] ?? 0) + 1;
    suspect.delete(rollout);
    if (op === "create") churned.push(rollout);
    if (op === "delete") churned.shift();
    if (op === "pause" || op === "resume") paused.set(rollout, op === "pause");
    logChange({ op, rollout, acked: true, ...(op === "delete" ? {} : rolloutOf(answer)) });
  } catch (e) {
    // A refusal right after a change whose outcome is unknown (the server died during it) is
    // that change having committed: e.g. Pause refused as already paused. Not an error.
    if (down || e.transport || suspect.has(rollout)) stats.changes.down++;
    else {
      stats.changes.err++;
      stats.changes.lastError = e.message;
    }
    if (down || e.transport) suspect.add(rollout);
    // Unknown outcome: the change may or may not have committed before the server died.
    logChange({ op, rollout, acked: false, error: e.message });
    // Learn the truth before the next change to it (a create or delete that did commit).
    try {
      const state = rolloutOf(await control("GetRollout", { name: rollout }));
      if (op === "create" && !churned.includes(rollout)) churned.push(rollout);
      paused.set(rollout, state.paused);
    } catch (g) {
      if (op === "delete" && /HTTP 404/.test(g.message) && churned[0] === rollout) churned.shift();
    }
  }
}

let churning = true;
const churner = (async () => {
  const period = 1000 / opts.churnRate;
  while (churning) {
    const started = performance.now();
    await churnOnce();
    const wait = period - (performance.now() - started);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
})();

// --- Reporting ------------------------------------------------------------------------------------

const report = (extra = {}) =>
  process.stdout.write(`${JSON.stringify({ t: Date.now() - t0, ...stats, inflight: { route: routeInflight, outcomes: outcomeInflight }, ...extra })}\n`);
const reporter = setInterval(report, opts.reportMs);

async function finish() {
  if (stopping) return;
  stopping = true;
  churning = false;
  clearInterval(dataTimer);
  clearInterval(reporter);
  await Promise.race([churner, new Promise((r) => setTimeout(r, 11_000))]);
  // Let calls in flight settle (bounded).
  const until = Date.now() + 5000;
  while ((routeInflight > 0 || outcomeInflight > 0) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  report({ final: true, ackedPerSecond: Object.fromEntries(ackedPerSecond) });
  for (const s of Object.values(sessions)) s?.destroy();
  process.exit(0);
}
process.on("SIGTERM", finish);
process.on("SIGINT", finish);
setTimeout(finish, opts.seconds * 1000);
