// Small SVG line charts of values over time: the health score and each gate's observed value,
// threshold and stable baseline, drawn at the container's real pixel width.

import { s } from "./dom.js";
import { span } from "./format.js";

/** Returns up to `count` round tick values covering [lo, hi]. */
export function ticks(lo, hi, count = 4) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw) ?? 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * Returns an SVG chart. `series` are `{ points: [[timeMs, value], …], cls, label }` (cls picks the
 * stroke in CSS: "line-score", "line-observed", "line-threshold", "line-baseline"); `guides` are
 * horizontal lines `{ y, cls, label }`. The x axis runs from t0 to t1 (ms), labelled relative to t1.
 */
export function chart({ width, height = 150, t0, t1, series, guides = [], yMin, yMax, yFormat = String, label }) {
  const m = { l: 56, r: 10, t: 10, b: 22 };
  const w = Math.max(160, Math.floor(width));
  const iw = w - m.l - m.r;
  const ih = height - m.t - m.b;
  const values = series.flatMap((se) => se.points.map((p) => p[1])).concat(guides.map((g) => g.y));
  let lo = yMin ?? Math.min(0, ...values);
  let hi = yMax ?? Math.max(...values, lo + 1e-9);
  if (yMax === undefined) hi = hi + (hi - lo) * 0.1 || 1;
  if (!(hi > lo)) hi = lo + 1;
  const x = (t) => m.l + ((t - t0) / Math.max(1, t1 - t0)) * iw;
  const y = (v) => m.t + ih - ((Math.min(Math.max(v, lo), hi) - lo) / (hi - lo)) * ih;

  const svg = s("svg", { class: "chart", width: w, height, viewBox: `0 0 ${w} ${height}`, role: "img", "aria-label": label });
  const grid = s("g", { class: "grid" });
  for (const v of ticks(lo, hi, height < 120 ? 2 : 5)) {
    grid.append(
      s("line", { x1: m.l, x2: m.l + iw, y1: y(v), y2: y(v) }),
      s("text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end" }, yFormat(v)),
    );
  }
  const xs = [t0, t0 + (t1 - t0) / 2, t1];
  xs.forEach((t, i) => {
    const anchor = i === 0 ? "start" : i === xs.length - 1 ? "end" : "middle";
    grid.append(s("text", { x: x(t), y: height - 6, "text-anchor": anchor }, t === t1 ? "now" : `−${span(t1 - t)}`));
  });
  svg.append(grid);
  for (const g of guides) {
    svg.append(s("line", { class: g.cls, x1: m.l, x2: m.l + iw, y1: y(g.y), y2: y(g.y) }));
    if (g.label) svg.append(s("text", { class: `${g.cls} guide-label`, x: m.l + iw - 2, y: y(g.y) - 3, "text-anchor": "end" }, g.label));
  }
  for (const se of series) {
    const pts = se.points.filter((p) => p[0] >= t0 - 1 && Number.isFinite(p[1]));
    if (pts.length === 0) continue;
    const d = pts.map((p, i) => `${i === 0 ? "M" : "L"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    svg.append(s("path", { class: se.cls, d }, s("title", {}, se.label)));
    const lastPoint = pts[pts.length - 1];
    svg.append(s("circle", { class: `${se.cls} dot`, cx: x(lastPoint[0]).toFixed(1), cy: y(lastPoint[1]).toFixed(1), r: 2.5 }));
  }
  svg.append(s("line", { class: "axis", x1: m.l, x2: m.l + iw, y1: m.t + ih, y2: m.t + ih }));
  return svg;
}
