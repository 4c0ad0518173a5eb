// A hand-drawn SVG line chart: throughput (median, with min–max whiskers) against calls in
// flight on a log2 axis, one line per series.

const COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"];
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Returns a "nice" axis maximum and tick step for values up to `max`. */
function niceScale(max) {
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  return { top: Math.ceil(max / step) * step, step };
}

/**
 * Returns the SVG text of a chart. `series` is [{label, points: [{x, median, min, max}]}];
 * x values are powers of two or any positive numbers (drawn on a log2 axis).
 */
export function lineChart({ title, subtitle, xLabel, yLabel, series }) {
  const W = 860;
  const H = 420 + 17 * series.length;
  const m = { left: 80, right: 40, top: 60, bottom: 70 + 17 * series.length };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p.x)))].sort((a, b) => a - b);
  const lx0 = Math.log2(xs[0]);
  const lx1 = Math.log2(xs.at(-1));
  const X = (x) => m.left + (lx1 === lx0 ? pw / 2 : ((Math.log2(x) - lx0) / (lx1 - lx0)) * pw);
  const { top, step } = niceScale(Math.max(...series.flatMap((s) => s.points.map((p) => p.max))));
  const Y = (y) => m.top + ph - (y / top) * ph;
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`);
  if (subtitle) out.push(`<text x="${W / 2}" y="44" text-anchor="middle" fill="#555">${esc(subtitle)}</text>`);
  for (let v = 0; v <= top + 1e-9; v += step) {
    out.push(`<line x1="${m.left}" x2="${W - m.right}" y1="${Y(v)}" y2="${Y(v)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.left - 8}" y="${Y(v) + 4}" text-anchor="end">${esc(Math.round(v).toLocaleString("en-US"))}</text>`);
  }
  for (const x of xs) {
    out.push(`<line x1="${X(x)}" x2="${X(x)}" y1="${m.top}" y2="${m.top + ph}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${X(x)}" y="${m.top + ph + 18}" text-anchor="middle">${x}</text>`);
  }
  out.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + ph}" stroke="#333"/>`);
  out.push(`<line x1="${m.left}" x2="${W - m.right}" y1="${m.top + ph}" y2="${m.top + ph}" stroke="#333"/>`);
  out.push(`<text x="${m.left + pw / 2}" y="${m.top + ph + 40}" text-anchor="middle">${esc(xLabel)}</text>`);
  out.push(`<text transform="translate(18 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const pts = s.points.map((p) => `${X(p.x).toFixed(1)},${Y(p.median).toFixed(1)}`).join(" ");
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="2.5" points="${pts}"/>`);
    for (const p of s.points) {
      const x = X(p.x);
      out.push(`<line x1="${x}" x2="${x}" y1="${Y(p.min)}" y2="${Y(p.max)}" stroke="${c}" stroke-width="1.5"/>`);
      out.push(`<line x1="${x - 4}" x2="${x + 4}" y1="${Y(p.min)}" y2="${Y(p.min)}" stroke="${c}"/>`);
      out.push(`<line x1="${x - 4}" x2="${x + 4}" y1="${Y(p.max)}" y2="${Y(p.max)}" stroke="${c}"/>`);
      out.push(`<circle cx="${x}" cy="${Y(p.median)}" r="3.5" fill="${c}"/>`);
    }
    const ly = m.top + ph + 62 + i * 17;
    out.push(`<line x1="${m.left}" x2="${m.left + 24}" y1="${ly - 4}" y2="${ly - 4}" stroke="${c}" stroke-width="2.5"/>`);
    out.push(`<text x="${m.left + 32}" y="${ly}">${esc(s.label)}</text>`);
  });
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
