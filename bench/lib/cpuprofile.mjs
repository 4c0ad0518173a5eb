// Reading a V8 .cpuprofile (node --cpu-prof): self time per function and per area of code.
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { repoRoot } from "./util.mjs";

/** Returns where a frame's code lives, shortened: a repo path, node_modules/<pkg>, node:<module>. */
function where(url) {
  if (url === "") return "";
  let u = url.replace(/^file:\/\//, "");
  if (u.startsWith("/")) u = relative(repoRoot, u);
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(u);
  return nm === null ? u : `${nm[1]}/${nm[2]}`;
}

/** Returns the area a frame belongs to, for a coarse breakdown. */
function areaOf(fn, url) {
  if (fn === "(garbage collector)") return "GC";
  if (fn === "(idle)") return "idle";
  if (fn === "(program)") return "V8/native (program)";
  if (url === "") return "native (builtins, C++ bindings)";
  const w = where(url);
  if (w.startsWith("node:internal/http2") || w.startsWith("node:http2")) return "node:http2 (JS)";
  if (w.startsWith("node:internal/streams") || w.startsWith("node:stream")) return "node streams";
  if (w.startsWith("node:")) return "node core (other)";
  if (w.startsWith("@bufbuild/protobuf")) return "protobuf-es";
  if (w.startsWith("@connectrpc")) return "connect";
  if (w.startsWith("prom-client")) return "prom-client (metrics)";
  if (w.startsWith("@grpc")) return "grpc-js";
  if (w.startsWith("dist/src/")) return `rollgate ${w.split("/")[2]}`;
  if (w.startsWith("dist/gen/")) return "generated code";
  const pkg = /^((?:@[^/]+\/)?[^/]+)\//.exec(w);
  return pkg === null ? w : pkg[1];
}

/**
 * Summarises a .cpuprofile: total sampled ms, busy ms (all but idle), the `top` functions by
 * self time and the areas of code, each with ms and percent of busy time. With `window`
 * ({fromUs, toUs} in CLOCK_MONOTONIC microseconds, as process.hrtime gives them in any process
 * of this machine, and V8's profile timestamps are) only the samples inside it count, so
 * start-up and shutdown are left out.
 */
export function summarize(path, top = 15, window) {
  const p = JSON.parse(readFileSync(path, "utf8"));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map();
  for (const n of p.nodes) self.set(n.id, 0);
  // Each sample's time is the delta to the next sample.
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (window !== undefined && (t < window.fromUs || t > window.toUs)) continue;
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    self.set(p.samples[i], self.get(p.samples[i]) + dt);
  }
  const fns = new Map();
  const areas = new Map();
  let total = 0;
  let idle = 0;
  for (const [id, ms] of self) {
    if (ms === 0) continue;
    const { functionName, url, lineNumber } = byId.get(id).callFrame;
    const fn = functionName || "(anonymous)";
    total += ms;
    if (fn === "(idle)") idle += ms;
    const key = `${fn} ${where(url)}${url === "" ? "" : `:${lineNumber + 1}`}`.trim();
    fns.set(key, (fns.get(key) ?? 0) + ms);
    const area = areaOf(fn, url);
    areas.set(area, (areas.get(area) ?? 0) + ms);
  }
  const busy = total - idle;
  const rows = (m) =>
    [...m]
      .filter(([k]) => k !== "(idle)" && k !== "idle")
      .sort((a, b) => b[1] - a[1])
      .map(([name, ms]) => ({ name, ms, pct: (100 * ms) / busy }));
  return { totalMs: total, busyMs: busy, functions: rows(fns).slice(0, top), areas: rows(areas) };
}

/** Returns now in CLOCK_MONOTONIC microseconds (the clock of V8 profile timestamps). */
export function monotonicUs() {
  return Number(process.hrtime.bigint() / 1000n);
}
