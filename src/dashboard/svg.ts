// Small inline-SVG charts drawn on the server (no client library): a line chart with a point marker per
// value, so a chart of N metric rows has N markers that a test (or a person hovering) can count.
import { esc, fmtNum } from "./html.js";

export interface Series {
  name: string;
  points: [number, number][];
}

const COLORS = ["#2f6fdf", "#d64545", "#1f9d55", "#c98a00", "#7a4cd9", "#0e9aa7", "#e0672b", "#555f73"];
export const seriesColor = (i: number): string => COLORS[i % COLORS.length]!;

const W = 380;
const H = 170;
const PAD = { l: 52, r: 10, t: 8, b: 24 };

function extent(vals: number[]): [number, number] {
  let [lo, hi] = [Math.min(...vals), Math.max(...vals)];
  if (lo === hi) [lo, hi] = lo === 0 ? [0, 1] : [lo - Math.abs(lo) * 0.1, hi + Math.abs(hi) * 0.1];
  return [lo, hi];
}

/** A line chart; `xLabel` names the x axis (step, iteration, row). Returns "" when there is nothing to draw. */
export function lineChart(title: string, series: Series[], xLabel: string): string {
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return "";
  const [x0, x1] = extent(all.map((p) => p[0]));
  const [y0, y1] = extent(all.map((p) => p[1]));
  const sx = (x: number) => PAD.l + ((x - x0) / (x1 - x0)) * (W - PAD.l - PAD.r);
  const sy = (y: number) => H - PAD.b - ((y - y0) / (y1 - y0)) * (H - PAD.t - PAD.b);
  const grid = [0, 0.5, 1].map((f) => {
    const y = y0 + f * (y1 - y0);
    return `<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${sy(y).toFixed(1)}" y2="${sy(y).toFixed(1)}" stroke="#e3e6ec"/>` +
      `<text x="${PAD.l - 6}" y="${(sy(y) + 4).toFixed(1)}" text-anchor="end" font-size="10" fill="#667085">${esc(fmtNum(y, 3))}</text>`;
  });
  const xs = [...new Set(all.map((p) => p[0]))].sort((a, b) => a - b);
  // Label the data's own first and last x (a lone x sits in the middle), never the padded axis ends.
  const xt = (xs.length === 1 ? [[xs[0]!, "middle"]] : [[xs[0]!, "start"], [xs.at(-1)!, "end"]]).map(([x, anchor]) =>
    `<text x="${sx(x as number).toFixed(1)}" y="${H - 8}" text-anchor="${anchor}" font-size="10" fill="#667085">${esc(fmtNum(x as number, 2))}</text>`);
  const lines = series.map((s, i) => {
    // Companion bands (ci_lo / ci_hi) are drawn quiet and dashed under the curve they belong to.
    const band = /ci_(lo|hi)$/.test(s.name) && i > 0;
    const c = band ? "#98a2b3" : seriesColor(i);
    const d = s.points.map(([x, y], k) => `${k ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
    const dots = s.points.map(([x, y]) =>
      `<circle class="pt" cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="${band ? 1.6 : 2.6}" fill="${c}"><title>${esc(`${s.name} @ ${xLabel} ${fmtNum(x)}: ${fmtNum(y, 4)}`)}</title></circle>`);
    return `<g class="series" data-name="${esc(s.name)}" data-points="${s.points.length}"><path d="${d}" fill="none" stroke="${c}" stroke-width="1.6"${band ? ' stroke-dasharray="4,3"' : ""}/>${dots.join("")}</g>`;
  });
  const legend = series.length > 1 || series[0]!.name !== title
    ? `<div class="legend">${series.map((s, i) => `<b style="background:${/ci_(lo|hi)$/.test(s.name) && i > 0 ? "#98a2b3" : seriesColor(i)}"></b>${esc(s.name)}`).join("")}</div>` : "";
  return `<div class="chart" data-metric="${esc(title)}"><h3>${esc(title)}</h3>${legend}` +
    `<svg viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="${esc(title)}" data-points="${all.length}">` +
    `${grid.join("")}${xt.join("")}<text x="${W - PAD.r}" y="${H - 8}" dx="-40" text-anchor="end" font-size="10" fill="#98a2b3">${esc(xLabel)}</text>${lines.join("")}</svg></div>`;
}

/** Horizontal bars (time per stage): label, value, and a formatted value. */
export function barChart(title: string, bars: { label: string; value: number; text: string }[]): string {
  if (bars.length === 0) return "";
  const max = Math.max(...bars.map((b) => b.value), 1e-9);
  const rowH = 18;
  const h = bars.length * rowH + 6;
  const rows = bars.map((b, i) => {
    const w = Math.max(1, (b.value / max) * (W - 190));
    const y = i * rowH + 3;
    return `<text x="110" y="${y + 12}" text-anchor="end" font-size="11" fill="#1d2330">${esc(b.label)}</text>` +
      `<rect x="116" y="${y + 2}" width="${w.toFixed(1)}" height="12" rx="2" fill="${seriesColor(0)}"/>` +
      `<text x="${(120 + w).toFixed(1)}" y="${y + 12}" font-size="10" fill="#667085">${esc(b.text)}</text>`;
  });
  return `<div class="chart" data-metric="${esc(title)}"><h3>${esc(title)}</h3><svg viewBox="0 0 ${W} ${h}" width="100%" role="img" aria-label="${esc(title)}">${rows.join("")}</svg></div>`;
}
