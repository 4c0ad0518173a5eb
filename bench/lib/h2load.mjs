// h2load driver: runs it pinned to the client core against a gRPC method with a body file,
// and parses its summary.
import { execFileSync } from "node:child_process";
import { CLIENT_CORE, commandText, runPinned } from "./util.mjs";

/** Returns true when h2load is on the PATH. */
export function haveH2load() {
  try {
    execFileSync("sh", ["-c", "command -v h2load"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * Installs nghttp2-client (h2load) with apt-get when it is missing; returns a note of what
 * happened, or throws with a clear message when it cannot.
 */
export function ensureH2load(log) {
  if (haveH2load()) return "h2load present";
  log("h2load missing: installing nghttp2-client with apt-get (the one network access of the suite)");
  try {
    execFileSync("sh", ["-c", "command -v apt-get"], { stdio: "ignore" });
  } catch {
    throw new Error("h2load is missing and apt-get is unavailable: install nghttp2-client (h2load) by hand and rerun");
  }
  try {
    const sudo = process.getuid?.() === 0 ? "" : "sudo ";
    execFileSync("sh", ["-c", `${sudo}apt-get install -y nghttp2-client || (${sudo}apt-get update && ${sudo}apt-get install -y nghttp2-client)`], {
      stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
  } catch (e) {
    throw new Error(`could not install nghttp2-client with apt-get (${e.message}); install h2load by hand and rerun`);
  }
  if (!haveH2load()) throw new Error("nghttp2-client installed but h2load is still not on the PATH");
  return "h2load installed with apt-get";
}

/** The h2load arguments for a gRPC unary method (or, with `headers` and `h1`, any POST; without `body`, a GET). */
export function h2loadArgs({ port, path, body, clients = 1, inFlight = 1, seconds, warmup = 0.5, requests, headers = ["content-type: application/grpc", "te: trailers"], h1 = false }) {
  const args = [
    `http://127.0.0.1:${port}${path}`,
    ...(body === undefined ? [] : ["-d", body]),
    ...headers.flatMap((h) => ["-H", h]),
    ...(h1 ? ["--h1"] : []),
    "-c", String(clients),
    "-m", String(inFlight),
    "-t", "1",
  ];
  if (requests !== undefined) args.push("-n", String(requests));
  else args.push("-D", `${Math.round(seconds * 1000)}ms`, `--warm-up-time=${Math.round(warmup * 1000)}ms`);
  return args;
}

/** Returns the exact command line of a run, for RESULTS.md. */
export function h2loadCommand(opts) {
  return commandText(CLIENT_CORE, "h2load", h2loadArgs(opts));
}

/**
 * Runs h2load and returns {rps, done, succeeded, failed, errored, meanUs}; throws when a
 * request failed at the HTTP level (gRPC status is checked separately by the clients).
 */
export async function h2load(opts) {
  const out = await runPinned(CLIENT_CORE, "h2load", h2loadArgs(opts), { timeoutMs: ((opts.seconds ?? 30) + 30) * 1000 });
  const m = /finished in ([\d.]+)(m?s), ([\d.]+) req\/s/.exec(out);
  const r = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
  const t = /time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/.exec(out);
  if (m === null || r === null) throw new Error(`cannot parse h2load output:\n${out}`);
  const us = (v, u) => Number(v) * (u === "us" ? 1 : u === "ms" ? 1000 : 1e6);
  const res = {
    rps: Number(m[3]),
    done: Number(r[3]),
    succeeded: Number(r[4]),
    failed: Number(r[5]),
    errored: Number(r[6]),
    meanUs: t === null ? NaN : us(t[5], t[6]),
  };
  if (res.failed > 0 || res.errored > 0 || res.succeeded === 0) throw new Error(`h2load: ${res.failed} failed, ${res.errored} errored, ${res.succeeded} succeeded:\n${out}`);
  return res;
}
