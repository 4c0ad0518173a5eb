// Formatting shared by the dashboard's views: enum names, weights, gate values, times.

/** Returns an enum value's short name: "STAGE_ROLLED_BACK" → "ROLLED_BACK" (absent: the zero value). */
export function enumShort(value, prefix) {
  if (value === undefined || value === "") return "UNSPECIFIED";
  return value.startsWith(prefix) ? value.slice(prefix.length) : value;
}

/** Returns an enum name in words: "ROLLED_BACK" → "rolled back". */
export function words(name) {
  return name.toLowerCase().replaceAll("_", " ");
}

/** Returns a weight in basis points as a percentage: 500 → "5%", 1250 → "12.5%". */
export function weightText(bp) {
  return `${Number(((bp ?? 0) / 100).toFixed(2))}%`;
}

/** Returns a gate's value in the unit of its kind (as the CLI shows it): rates in %, latency in ms. */
export function gateValue(kind, v) {
  if (v === undefined || v === null || Number.isNaN(v)) return "–";
  switch (kind) {
    case "error_rate":
    case "success_rate":
      return `${Number((v * 100).toFixed(3))}%`;
    case "latency":
      return `${Number(v.toFixed(1))} ms`;
    case "invariant":
      return String(Math.round(v));
    default:
      return String(Number(v.toPrecision(4)));
  }
}

/** Returns a score 0..1 with two decimals. */
export function scoreText(score) {
  return (score ?? 0).toFixed(2);
}

/** Returns a span of time in words: "45s", "2m05s", "1h02m". */
export function span(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** Returns milliseconds since the epoch of a protobuf JSON Timestamp, or undefined when absent. */
export function timeMs(text) {
  if (text === undefined || text === "") return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) || ms === 0 ? undefined : ms;
}

/** Returns milliseconds of a protobuf JSON Duration ("30s", "1.5s"), 0 when absent. */
export function durationMs(text) {
  if (text === undefined || text === "") return 0;
  const n = Number.parseFloat(text);
  return Number.isFinite(n) ? n * 1000 : 0;
}

/** Returns a local date and time, "2026-12-01 14:05:09". */
export function localTime(ms) {
  if (ms === undefined) return "–";
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Returns when something happens relative to now: "in 12s", "3m05s ago", "now". */
export function relative(ms, now = Date.now()) {
  if (ms === undefined) return "";
  const d = ms - now;
  if (Math.abs(d) < 1000) return "now";
  return d > 0 ? `in ${span(d)}` : `${span(-d)} ago`;
}

/** The CSS tone of a verdict, recommendation or stage: good, warn, bad, muted or info. */
export function tone(name) {
  switch (name) {
    case "PASS":
    case "HEALTHY":
    case "PRODUCTION":
      return "good";
    case "WARN":
    case "MONITOR":
    case "STAGING":
      return "warn";
    case "FAIL":
    case "ROLLBACK":
    case "ROLLED_BACK":
    case "HALTED":
    case "EMERGENCY_STOP":
      return "bad";
    case "CANARY":
    case "PROMOTE":
      return "info";
    default:
      return "muted";
  }
}
