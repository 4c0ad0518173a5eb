// Shared plumbing of the soak, chaos and stream-pressure suites (issue 16): a rollgate server as
// a child process pinned to the server core (SQLite in a temporary directory, loopback), the load
// generator pinned to the client core, /metrics scraped and parsed, rollouts created over Connect.
import { execFileSync, spawn } from "node:child_process";
import { createServer } from "node:net";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { loadavg } from "node:os";
import { benchDir, CLIENT_CORE, cliPath, connectJson, pinnedCommand, repoRoot, SERVER_CORE, sleep } from "../lib/util.mjs";

export { CLIENT_CORE, SERVER_CORE, cliPath, connectJson, repoRoot, sleep };

/** Pins this process to the client core (it scrapes and aggregates; the server has core 0). */
export function pinSelf() {
  try {
    execFileSync("taskset", ["-cp", String(CLIENT_CORE), String(process.pid)], { stdio: "ignore" });
  } catch {
    /* unpinned: taskset missing or one core */
  }
}

/** Returns a free loopback port (the chaos server must come back on the same one). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Parses flags of the form --name value / --name=value / --flag. */
/** Returns the mixed load's settings from the command-line flags (the soak's and the chaos run's defaults). */
export function loadOptionsOf(flags) {
  const num = (v, d) => (v === undefined ? d : Number(v));
  return {
    routeRate: num(flags["route-rate"], 5000),
    outcomeRate: num(flags["outcome-rate"], 50_000),
    outcomeBatch: 500,
    watchHealth: num(flags["watch-health"], 200),
    watchRoutes: num(flags["watch-routes"], 10),
    churnRate: num(flags["churn-rate"], 4),
    seed: num(flags.seed, 1),
  };
}

export function parseFlags(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) continue;
    const eq = a.indexOf("=");
    if (eq > 0) out[a.slice(2, eq)] = a.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1].startsWith("--")) out[a.slice(2)] = argv[++i];
    else out[a.slice(2)] = true;
  }
  return out;
}

/** Returns seconds from "600", "90s", "10m", "1h". */
export function parseDuration(s) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(s));
  if (m === null) throw new Error(`bad duration "${s}": give e.g. 600, 90s, 10m`);
  const n = Number(m[1]);
  return { ms: n / 1000, s: n, m: n * 60, h: n * 3600 }[m[2] ?? "s"];
}

/**
 * Starts `rollgate serve` pinned to the server core on `port` (0: any) with the database `db`;
 * resolves once it logs "ready" with {child, port, pid, logs, exited}. Log lines at warn and
 * above are kept in `logs` (the suites report them).
 */
export function startServer({ db, port = 0, env = {}, nodeArgs = [] }) {
  // The probe (bench/lib/probe.mjs): on SIGUSR2 memoryUsage() on stdout, after a full GC (or,
  // with env ROLLGATE_PROBE_HEAP=natural, the heap used after the server's last mark-compact).
  const probeArgs = ["--expose-gc", "--import", join(benchDir, "lib", "probe.mjs")];
  const [cmd, args] = pinnedCommand(SERVER_CORE, process.execPath, [...probeArgs, ...nodeArgs, cliPath, "serve", "--listen", `127.0.0.1:${port}`, "--db", db]);
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, LOG_LEVEL: "info", ...env } });
  const logs = [];
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (s) => (stderr = (stderr + s).slice(-8000)));
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const probes = [];
  /** Resolves with the server's memoryUsage() after a full GC (see the probe's modes); `forced` says whether one ran. */
  const probe = () =>
    new Promise((resolve) => {
      probes.push(resolve);
      child.kill("SIGUSR2");
    });
  return new Promise((resolve, reject) => {
    let bound;
    createInterface({ input: child.stdout }).on("line", (line) => {
      let e;
      try {
        e = JSON.parse(line);
      } catch {
        return;
      }
      if (e.probe !== undefined) return probes.shift()?.(e.probe);
      if (e.msg === "listening") bound = Number(e.port);
      if (e.level >= 40) logs.push(e);
      if (e.msg === "ready" && bound !== undefined) resolve({ child, port: bound, pid: child.pid, logs, exited, probe, stderr: () => stderr });
    });
    void exited.then(({ code, signal }) => reject(new Error(`rollgate exited (${code ?? signal}) before it was ready: ${stderr}`)));
  });
}

/** Stops a server child: SIGTERM (a clean shutdown), SIGKILL after `graceMs`. */
export async function stopServer(server, graceMs = 15_000) {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  server.child.kill("SIGTERM");
  const t = setTimeout(() => server.child.kill("SIGKILL"), graceMs);
  await server.exited;
  clearTimeout(t);
}

/** Starts the load generator (bench/soak/load.mjs) pinned to the client core; `onReport` gets each JSON line. */
export function startLoad(options, onReport) {
  const [cmd, args] = pinnedCommand(CLIENT_CORE, process.execPath, [join(benchDir, "soak", "load.mjs"), JSON.stringify(options)]);
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], cwd: repoRoot });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (s) => (stderr = (stderr + s).slice(-8000)));
  let last;
  createInterface({ input: child.stdout }).on("line", (line) => {
    try {
      last = JSON.parse(line);
    } catch {
      return;
    }
    onReport?.(last);
  });
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  return {
    child,
    last: () => last,
    /** Ends the load (SIGTERM) and resolves with its final report. */
    async finish() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const { code, signal } = await exited;
      if (code !== 0) throw new Error(`load generator exited ${code ?? signal}: ${stderr}`);
      return last;
    },
    stderr: () => stderr,
  };
}

/** Parses Prometheus text into [{name, labels, value}]. */
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (m === null) continue;
    const labels = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** Sums the values of a metric whose labels match `where`. */
export function sumOf(metrics, name, where = {}) {
  let n = 0;
  for (const m of metrics) if (m.name === name && Object.entries(where).every(([k, v]) => m.labels[k] === v)) n += m.value;
  return n;
}

/** Scrapes /metrics. */
export async function scrape(port) {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(10_000) });
  return parseMetrics(await res.text());
}

/**
 * One sample of the server: RSS, heap used, event-loop delay p99 (since the previous scrape),
 * cumulative GC pause seconds, and its RPC counters by method and code.
 */
export async function sampleServer(port) {
  const m = await scrape(port);
  const rpcs = {};
  for (const x of m) {
    if (x.name !== "rollgate_rpc_requests_total") continue;
    const method = x.labels.method.split("/").at(-1);
    rpcs[method] ??= {};
    rpcs[method][x.labels.code] = x.value;
  }
  return {
    rss: sumOf(m, "process_resident_memory_bytes"),
    heapUsed: sumOf(m, "nodejs_heap_size_used_bytes"),
    heapTotal: sumOf(m, "nodejs_heap_size_total_bytes"),
    external: sumOf(m, "nodejs_external_memory_bytes"),
    lagP99Ms: sumOf(m, "nodejs_eventloop_lag_p99_seconds") * 1000,
    lagMaxMs: sumOf(m, "nodejs_eventloop_lag_max_seconds") * 1000,
    gcSeconds: sumOf(m, "nodejs_gc_duration_seconds_sum"),
    gcMajorSeconds: sumOf(m, "nodejs_gc_duration_seconds_sum", { kind: "major" }),
    subscribers: {
      health: sumOf(m, "rollgate_stream_subscribers", { feed: "health" }),
      routes: sumOf(m, "rollgate_stream_subscribers", { feed: "routes" }),
    },
    sessions: sumOf(m, "rollgate_http2_sessions"),
    rpcs,
    rounds: {
      count: sumOf(m, "rollgate_evaluation_round_seconds_count"),
      sum: sumOf(m, "rollgate_evaluation_round_seconds_sum"),
      // Cumulative bucket counts by upper bound (seconds), for quantiles between two samples.
      buckets: m.filter((x) => x.name === "rollgate_evaluation_round_seconds_bucket").map((x) => [Number(x.labels.le), x.value]),
    },
  };
}

/**
 * The evaluator rounds between two samples: how many, their mean, and the upper bound of the
 * histogram bucket that holds their p99 (seconds).
 */
export function roundsBetween(a, b) {
  const count = b.rounds.count - a.rounds.count;
  const before = new Map(a.rounds.buckets.map(([le, n]) => [le, n]));
  let p99 = null;
  for (const [le, n] of [...b.rounds.buckets].sort((x, y) => x[0] - y[0])) {
    if (n - (before.get(le) ?? 0) >= 0.99 * count) {
      p99 = le;
      break;
    }
  }
  return { count, meanSeconds: count > 0 ? (b.rounds.sum - a.rounds.sum) / count : null, p99Seconds: count > 0 ? p99 : null };
}

/** The base rollouts of the load: four, evaluated every second over a 60 s window, no auto-promotion. */
export function rolloutSpec(name, { window = "60s", gates = true } = {}) {
  return {
    name,
    stableVersion: "v1",
    canaryVersion: "v2",
    gates: gates
      ? [
          { name: "errors", minSamples: "100", errorRate: { max: 0.05 } },
          { name: "p99", minSamples: "100", latency: { quantile: 0.99, maxRatio: 1.5 } },
        ]
      : [],
    analysis: { interval: "1s", window, autoPromote: false },
  };
}

/** Creates a rollout over Connect JSON. */
export function createRollout(port, name, opts) {
  return connectJson(port, "rollgate.v1.RolloutService/CreateRollout", { rollout: rolloutSpec(name, opts), reason: "soak setup" });
}

/** Returns the median of numbers. */
export function median(values) {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** Returns the q-quantile (nearest rank) of numbers. */
export function quantileOf(values, q) {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil(q * v.length) - 1))];
}

/** Returns the least-squares slope of y over x. */
export function slope(points) {
  const n = points.length;
  if (n < 2) return NaN;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

/** The machine's state for the record: load averages and the commit. */
export function machine() {
  let commit = "unknown";
  let dirty = false;
  try {
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: repoRoot, encoding: "utf8" }).trim();
    dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd: repoRoot, encoding: "utf8" }).trim() !== "";
  } catch {
    /* not a git checkout */
  }
  return { date: new Date().toISOString(), commit: dirty ? `${commit} (+ uncommitted changes)` : commit, loadavg: loadavg().map((x) => Number(x.toFixed(2))), node: process.version };
}

/** Builds dist/ (incremental) unless told not to. */
export function build(skip) {
  if (skip) return;
  execFileSync("npx", ["tsc", "-b"], { cwd: repoRoot, stdio: "inherit" });
}

export const MB = 1024 * 1024;
