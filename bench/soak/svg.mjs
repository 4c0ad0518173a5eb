// A hand-written SVG time-series chart (no dependency): one or more series of {x: seconds, y}
// on linear axes, an optional horizontal limit line and an optional shaded warm-up span.

const COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"];
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Returns a "nice" axis top and tick step for values up to `max`. */
function niceScale(max) {
  if (!(max > 0)) return { top: 1, step: 0.2 };
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  return { top: Math.ceil(max / step) * step, step };
}

const tick = (v) => (Math.abs(v) >= 1000 ? v.toLocaleString("en-US", { maximumFractionDigits: 0 }) : String(Number(v.toPrecision(4))));

/**
 * Returns the SVG text of a time-series chart: `series` is [{label, points: [{x, y}]}], `limit`
 * an optional {y, label} drawn dashed, `shade` an optional {from, to, label} x span.
 */
export function timeChart({ title, subtitle = "", xLabel = "seconds", yLabel, series, limit, shade }) {
  const W = 860;
  const H = 380;
  const m = { l: 80, r: 20, t: 56, b: 56 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const ys = series.flatMap((s) => s.points.map((p) => p.y)).filter(Number.isFinite);
  const xMax = Math.max(1, ...xs);
  const { top, step } = niceScale(Math.max(...ys, limit?.y ?? 0) * 1.05);
  const X = (x) => m.l + (x / xMax) * pw;
  const Y = (y) => m.t + ph - (y / top) * ph;
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${m.l}" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`);
  if (subtitle !== "") out.push(`<text x="${m.l}" y="40" fill="#555">${esc(subtitle)}</text>`);
  if (shade !== undefined) {
    out.push(`<rect x="${X(shade.from)}" y="${m.t}" width="${Math.max(0, X(shade.to) - X(shade.from))}" height="${ph}" fill="#eee"/>`);
    out.push(`<text x="${X(shade.from) + 4}" y="${m.t + 14}" fill="#888">${esc(shade.label ?? "")}</text>`);
  }
  for (let v = 0; v <= top + step / 2; v += step) {
    out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${Y(v)}" y2="${Y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${m.l - 6}" y="${Y(v) + 4}" text-anchor="end">${tick(v)}</text>`);
  }
  const xStep = niceScale(xMax).step;
  for (let v = 0; v <= xMax; v += xStep) {
    out.push(`<line x1="${X(v)}" x2="${X(v)}" y1="${m.t + ph}" y2="${m.t + ph + 4}" stroke="#333"/>`);
    out.push(`<text x="${X(v)}" y="${m.t + ph + 18}" text-anchor="middle">${tick(v)}</text>`);
  }
  out.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${m.t + ph}" stroke="#333"/>`);
  out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${m.t + ph}" y2="${m.t + ph}" stroke="#333"/>`);
  out.push(`<text x="${m.l + pw / 2}" y="${H - 12}" text-anchor="middle">${esc(xLabel)}</text>`);
  out.push(`<text transform="translate(18 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  if (limit !== undefined) {
    out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${Y(limit.y)}" y2="${Y(limit.y)}" stroke="#c00" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${m.l + pw - 4}" y="${Y(limit.y) - 5}" text-anchor="end" fill="#c00">${esc(limit.label ?? "")}</text>`);
  }
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const pts = s.points.filter((p) => Number.isFinite(p.y)).map((p) => `${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`);
    if (pts.length > 0) out.push(`<polyline fill="none" stroke="${c}" stroke-width="1.8" points="${pts.join(" ")}"/>`);
    out.push(`<rect x="${m.l + 10 + i * 190}" y="${m.t + 6}" width="12" height="3" fill="${c}"/>`);
    out.push(`<text x="${m.l + 26 + i * 190}" y="${m.t + 11}">${esc(s.label)}</text>`);
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
