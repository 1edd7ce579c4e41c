// Comparison reports: markdown, and one self-contained HTML page (inline CSS and SVG, nothing fetched).
import type { BenchmarkComparison, Comparison } from "./compare.js";

const pts = (x: number) => `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}`;
const pct = (x: number) => (100 * x).toFixed(1);
const pval = (p: number) => (p < 0.001 ? "<0.001" : p.toFixed(3));
const num = (x: number | null) => (x === null ? "n/a" : x.toFixed(0));

function few(ids: string[], n = 10): string {
  return ids.length ? `${ids.slice(0, n).join(", ")}${ids.length > n ? ` … (+${ids.length - n})` : ""}` : "none";
}

function verdict(b: BenchmarkComparison): string {
  const sig = b.p_value < 0.05 && (b.ci_low > 0 || b.ci_high < 0);
  if (!sig) return "no significant difference";
  return b.diff > 0 ? `${b.b} better` : `${b.a} better`;
}

export const METHOD_NOTE =
  "diff = B − A in mean accuracy (per-problem fraction of correct samples, averaged over problems), in points. " +
  "CI: 95% percentile bootstrap over problems (a problem's samples stay together). " +
  "p: two-sided paired sign-flip permutation test over per-problem differences. " +
  "gained/lost: problems one side solved at least once and the other never.";

export function comparisonMarkdown(cs: Comparison[]): string {
  const out = ["# Checkpoint comparison", "", METHOD_NOTE, ""];
  out.push("| benchmark | A | B | problems | A mean | B mean | diff [95% CI] | p | verdict |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const c of cs) {
    for (const b of c.benchmarks) {
      out.push(`| ${b.benchmark} | ${b.a} | ${b.b} | ${b.problems} | ${pct(b.a_mean)} | ${pct(b.b_mean)} | ${pts(b.diff)} [${pts(b.ci_low)}, ${pts(b.ci_high)}] | ${pval(b.p_value)} | ${verdict(b)} |`);
    }
  }
  for (const c of cs) {
    for (const b of c.benchmarks) out.push("", ...benchmarkDetail(b));
    for (const n of c.notes) out.push("", `note: ${n}`);
  }
  return `${out.join("\n")}\n`;
}

function benchmarkDetail(b: BenchmarkComparison): string[] {
  const len = (s: BenchmarkComparison["length"]["a"]) =>
    `mean ${num(s.mean)}, median ${num(s.median)}, p90 ${num(s.p90)}; correct ${num(s.mean_correct)} / incorrect ${num(s.mean_incorrect)}; truncated ${pct(s.truncated)}%`;
  const lines = [
    `## ${b.benchmark}: ${b.a} → ${b.b}`,
    "",
    `- ${b.problems} problems; ${b.samples_a} samples (A), ${b.samples_b} (B); test: ${b.test}`,
    `- per problem: ${b.improved} improved, ${b.worsened} worsened, ${b.problems - b.improved - b.worsened} unchanged`,
    `- gained (B solved, A never): ${few(b.gained)}`,
    `- lost (A solved, B never): ${few(b.lost)}`,
    `- response tokens A: ${len(b.length.a)}`,
    `- response tokens B: ${len(b.length.b)}`,
    `- power: ${b.power.note}`,
  ];
  if (b.unpaired.only_a.length || b.unpaired.only_b.length) {
    lines.push(`- unpaired (--allow-unpaired): compared on the ${b.problems} shared problems; left out: only in A ${few(b.unpaired.only_a)}; only in B ${few(b.unpaired.only_b)}`);
  }
  return lines;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Difference and CI per benchmark and pair, on one axis through 0. */
function forestSvg(rows: BenchmarkComparison[]): string {
  const w = 640, rowH = 28, left = 220, right = 40, h = rows.length * rowH + 40;
  const span = Math.max(0.05, ...rows.flatMap((b) => [Math.abs(b.ci_low), Math.abs(b.ci_high), Math.abs(b.diff)])) * 1.1;
  const x = (v: number) => left + ((v + span) / (2 * span)) * (w - left - right);
  const items = rows.map((b, i) => {
    const y = 20 + i * rowH + rowH / 2;
    const color = b.p_value < 0.05 ? (b.diff > 0 ? "#1a7f37" : "#cf222e") : "#57606a";
    return `<text x="4" y="${y + 4}" font-size="12">${esc(`${b.benchmark}: ${b.b} vs ${b.a}`.slice(0, 34))}</text>` +
      `<line x1="${x(b.ci_low)}" x2="${x(b.ci_high)}" y1="${y}" y2="${y}" stroke="${color}" stroke-width="2"/>` +
      `<circle cx="${x(b.diff)}" cy="${y}" r="4" fill="${color}"/>`;
  });
  const axisY = h - 14;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" role="img" aria-label="difference with 95% CI">` +
    `<line x1="${x(0)}" x2="${x(0)}" y1="10" y2="${axisY - 6}" stroke="#8c959f" stroke-dasharray="3,3"/>` + items.join("") +
    `<text x="${x(-span)}" y="${axisY}" font-size="11">${pts(-span)}</text><text x="${x(0) - 4}" y="${axisY}" font-size="11">0</text>` +
    `<text x="${x(span) - 30}" y="${axisY}" font-size="11">${pts(span)}</text></svg>`;
}

/** Per-problem accuracy, A on x and B on y: points above the diagonal improved. */
function scatterSvg(b: BenchmarkComparison): string {
  const s = 260, pad = 30;
  const p = (v: number) => pad + v * (s - 2 * pad);
  const dots = b.per_problem.map((q) => {
    const color = q.b > q.a ? "#1a7f37" : q.b < q.a ? "#cf222e" : "#57606a";
    return `<circle cx="${p(q.a)}" cy="${s - p(q.b)}" r="3.5" fill="${color}" fill-opacity="0.6"><title>${esc(q.id)}: A ${pct(q.a)}%, B ${pct(q.b)}%</title></circle>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${s}" height="${s}" role="img" aria-label="per-problem accuracy">` +
    `<rect x="${pad}" y="${pad}" width="${s - 2 * pad}" height="${s - 2 * pad}" fill="none" stroke="#d0d7de"/>` +
    `<line x1="${p(0)}" y1="${s - p(0)}" x2="${p(1)}" y2="${s - p(1)}" stroke="#8c959f" stroke-dasharray="3,3"/>` + dots.join("") +
    `<text x="${s / 2 - 20}" y="${s - 8}" font-size="11">${esc(b.a.slice(0, 20))}</text>` +
    `<text x="4" y="${pad - 10}" font-size="11">${esc(b.b.slice(0, 30))}</text></svg>`;
}

export function comparisonHtml(cs: Comparison[]): string {
  const all = cs.flatMap((c) => c.benchmarks);
  const md = comparisonMarkdown(cs);
  const table = md.split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("| ---"));
  const cells = (l: string) => l.slice(2, -2).split(" | ");
  const [head, ...body] = table;
  const details = all.map((b) => `<section><h2>${esc(`${b.benchmark}: ${b.a} → ${b.b}`)}</h2><div class="row">${scatterSvg(b)}<ul>${benchmarkDetail(b).slice(2).map((l) => `<li>${esc(l.slice(2))}</li>`).join("")}</ul></div></section>`);
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Checkpoint comparison</title><style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em;max-width:1100px;color:#1f2328}table{border-collapse:collapse}
td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left}th{background:#f6f8fa}.row{display:flex;gap:2em;align-items:flex-start}
section{margin-top:2em}.note{color:#57606a}</style></head><body>
<h1>Checkpoint comparison</h1><p class="note">${esc(METHOD_NOTE)}</p>
<table><tr>${cells(head!).map((h) => `<th>${esc(h)}</th>`).join("")}</tr>${body.map((r) => `<tr>${cells(r).map((c) => `<td>${esc(c)}</td>`).join("")}</tr>`).join("")}</table>
<h2>Difference (B − A) with 95% CI</h2>${forestSvg(all)}
${details.join("\n")}
${cs.flatMap((c) => c.notes).map((n) => `<p class="note">note: ${esc(n)}</p>`).join("")}
</body></html>\n`;
}
