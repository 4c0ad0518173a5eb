// Shared plumbing of the benchmark suite: processes pinned to cores, cleanup on exit, the
// server's CPU and memory read from /proc, statistics, gRPC framing.
import { spawn, execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

/** The repository root. */
export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
/** The bench/ directory. */
export const benchDir = join(repoRoot, "bench");
/** The built CLI. */
export const cliPath = join(repoRoot, "dist", "src", "cli", "main.js");

/** The core servers run on, and the core load generators and clients run on. */
export const SERVER_CORE = 0;
export const CLIENT_CORE = 1;

const hasTaskset = (() => {
  try {
    execFileSync("taskset", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
const cores = (() => {
  try {
    return Number(execFileSync("nproc", { encoding: "utf8" }).trim());
  } catch {
    return 1;
  }
})();
/** True when processes are really pinned (taskset present and at least 2 cores). */
export const pinned = hasTaskset && cores >= 2;

/** Returns [command, args] that run `cmd args` pinned to `core` (unpinned when that is impossible). */
export function pinnedCommand(core, cmd, args) {
  return pinned ? ["taskset", ["-c", String(core), cmd, ...args]] : [cmd, args];
}

/** Returns the shell text of a pinned command, for RESULTS.md. */
export function commandText(core, cmd, args) {
  const [c, a] = pinnedCommand(core, cmd, args);
  return [c, ...a].map((x) => (/^[\w@%+=:,./-]+$/.test(x) ? x : `'${x.replace(/'/g, "'\\''")}'`)).join(" ");
}

const children = new Set();

/** Spawns a child pinned to `core`, tracked so that it is killed when the suite exits. */
export function spawnPinned(core, cmd, args, opts = {}) {
  const [c, a] = pinnedCommand(core, cmd, args);
  const child = spawn(c, a, { stdio: ["ignore", "pipe", "pipe"], ...opts });
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

/** Kills every child still running (SIGKILL: this runs on the way out). */
export function killAll() {
  for (const c of children) {
    try {
      c.kill("SIGKILL");
    } catch {
      /* already gone */
    }
  }
  children.clear();
}

process.once("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.once(sig, () => {
    killAll();
    process.exit(130);
  });
}

/** Resolves when a child exits, with its code. */
export function exited(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

/** Stops a child: SIGTERM, then SIGKILL after `graceMs`. */
export async function stop(child, graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const t = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited(child);
  clearTimeout(t);
}

/**
 * Runs a pinned child to completion and returns its stdout; rejects on a non-zero exit.
 * `timeoutMs` bounds it: past that it is killed.
 */
export function runPinned(core, cmd, args, { timeoutMs = 120_000, env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawnPinned(core, cmd, args, env === undefined ? {} : { env: { ...process.env, ...env } });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (s) => (out += s));
    child.stderr.setEncoding("utf8").on("data", (s) => (err += s));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(" ")} exited ${code ?? signal}: ${err.slice(-2000)}${out.slice(-1000)}`));
    });
  });
}

/** Runs a Node client script pinned to the client core and returns the JSON it prints last. */
export async function runClient(script, args, opts = {}) {
  const out = await runPinned(CLIENT_CORE, process.execPath, [join(benchDir, "clients", script), ...args.map(String)], opts);
  const line = out.trim().split("\n").at(-1);
  return JSON.parse(line);
}

/**
 * Starts a server script that prints one JSON line with its `port` on stdout, pinned to the
 * server core (or `core`), and resolves with { child, port, pid }.
 */
export function startPortServer(cmd, args, { env, readyMsg, core = SERVER_CORE } = {}) {
  const child = spawnPinned(core, cmd, args, env === undefined ? {} : { env: { ...process.env, ...env } });
  let err = "";
  child.stderr.setEncoding("utf8").on("data", (s) => (err = (err + s).slice(-4000)));
  const logs = [];
  return new Promise((resolve, reject) => {
    let port;
    createInterface({ input: child.stdout }).on("line", (line) => {
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      logs.push(entry);
      if (logs.length > 200) logs.shift();
      if (entry.port !== undefined && port === undefined) port = Number(entry.port);
      if (port !== undefined && (readyMsg === undefined || entry.msg === readyMsg)) resolve({ child, port, pid: child.pid, logs, stderr: () => err });
    });
    child.once("exit", (code, signal) => reject(new Error(`${cmd} ${args.join(" ")} exited ${code ?? signal} before it was ready: ${err}`)));
  });
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Returns the CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name may hold spaces: fields are counted after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Returns a process's resident set size in bytes. */
export function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m === null ? NaN : Number(m[1]) * 1024;
}

/** Returns {min, median, max} of numbers. */
export function mmm(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { min: NaN, median: NaN, max: NaN, n: 0 };
  const mid = v.length >> 1;
  const median = v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { min: v[0], median, max: v.at(-1), n: v.length };
}

/** Returns the q-quantile (nearest rank) of sorted numbers. */
export function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

/** Returns a gRPC length-prefixed message (uncompressed). */
export function grpcFrame(bytes) {
  const frame = Buffer.allocUnsafe(5 + bytes.length);
  frame[0] = 0;
  frame.writeUInt32BE(bytes.length, 1);
  frame.set(bytes, 5);
  return frame;
}

/** Sleeps. */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** POSTs a Connect JSON unary request over HTTP/1.1 and returns the parsed answer; throws on an error status. */
export async function connectJson(port, procedure, body) {
  const res = await fetch(`http://127.0.0.1:${port}/${procedure}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${procedure}: HTTP ${res.status}: ${text}`);
  return JSON.parse(text);
}

/** Returns true when a file exists. */
export const exists = existsSync;

/** Returns a number formatted with thousands separators and `digits` decimals. */
export function fmt(n, digits = 0) {
  if (!Number.isFinite(n)) return "n/a";
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
