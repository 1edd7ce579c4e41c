// Metric curves from metrics.jsonl, whatever it holds: rows are grouped by `kind`, each numeric field is
// a curve against the row's step (else iteration, else its position), and a field's `_ci_lo`/`_ci_hi`
// companions are drawn with it. Derived: the rollout pass rate, tokens/s and wall time per stage.
import { fmtSeconds } from "./html.js";
import type { MetricRow, StageAgg } from "./run-reader.js";
import { barChart, lineChart, type Series } from "./svg.js";

const NOT_A_CURVE = new Set(["time", "step", "iteration", "kind"]);
/** Kinds shown first; others follow in the order they appear. */
const KIND_ORDER = ["eval", "grading", "train", "em", "sync"];
const FIELD_ORDER = ["avg_at_k", "pass_rate", "reward", "loss", "pairs", "kl", "grad_norm"];

interface Chart {
  title: string;
  series: Series[];
  x: string;
}

function xOf(r: MetricRow, i: number): [number, string] {
  if (typeof r.step === "number") return [r.step, "step"];
  if (typeof r.iteration === "number") return [r.iteration, "iteration"];
  return [i, "row"];
}

/** The rollout pass rate among samples the grader could judge (set-aside samples are not in it). */
function withDerived(r: MetricRow): MetricRow {
  if (r.kind !== "grading" || typeof r.correct !== "number") return r;
  const judged = ["correct", "incorrect", "no_answer"].reduce((s, k) => s + (typeof r[k] === "number" ? (r[k] as number) : 0), 0);
  return judged > 0 ? { ...r, pass_rate: r.correct / judged } : r;
}

const companion = (f: string) => /(^|_)ci_(lo|hi)$/.test(f);
const baseOf = (f: string, fields: Set<string>) => {
  const stem = f.replace(/_?ci_(lo|hi)$/, "");
  return stem === "" ? (fields.has("avg_at_k") ? "avg_at_k" : undefined) : fields.has(stem) ? stem : undefined;
};

export function metricCharts(rows: readonly MetricRow[]): Chart[] {
  const byKind = new Map<string, MetricRow[]>();
  for (const r of rows) byKind.set(r.kind, [...(byKind.get(r.kind) ?? []), withDerived(r)]);
  const kinds = [...byKind.keys()].sort((a, b) => rank(KIND_ORDER, a) - rank(KIND_ORDER, b));
  return kinds.flatMap((kind) => kindCharts(kind, byKind.get(kind)!));
}

const rank = (order: string[], k: string) => (order.includes(k) ? order.indexOf(k) : order.length);

function kindCharts(kind: string, rows: MetricRow[]): Chart[] {
  const fields = new Set(rows.flatMap((r) => Object.keys(r).filter((k) => typeof r[k] === "number" && !NOT_A_CURVE.has(k))));
  const xLabel = xOf(rows[0]!, 0)[1];
  const curve = (f: string, part: MetricRow[]): [number, number][] =>
    part.flatMap((r, i) => (typeof r[f] === "number" && Number.isFinite(r[f]) ? [[xOf(r, i)[0], r[f] as number] as [number, number]] : []));
  // Rows naming their update (synthesis trains two models in one run) get a curve per update.
  const parts = [...new Set(rows.map((r) => (typeof r.update === "string" ? r.update : "")))].map((u) => ({ u, rows: rows.filter((r) => (typeof r.update === "string" ? r.update : "") === u) }));
  const named = (f: string, u: string) => (parts.length > 1 && u ? `${f} (${u})` : f);
  const mains = [...fields].filter((f) => !(companion(f) && baseOf(f, fields))).sort((a, b) => rank(FIELD_ORDER, a) - rank(FIELD_ORDER, b));
  return mains.map((f) => {
    const extra = [...fields].filter((c) => companion(c) && baseOf(c, fields) === f).sort();
    const series = parts.flatMap((p) => [f, ...extra].map((c) => ({ name: named(c, p.u), points: curve(c, p.rows) })));
    return { title: `${kind} · ${f}`, x: xLabel, series: series.filter((s) => s.points.length > 0) };
  });
}

/** Generated tokens per second of wall time, per generating stage and iteration. */
export function throughputChart(stages: StageAgg[]): string {
  const gen = stages.filter((s) => s.tokens > 0 && s.last > s.start);
  const names = [...new Set(gen.map((s) => s.stage))];
  const series = names.map((n) => ({ name: `${n} tokens/s`, points: gen.filter((s) => s.stage === n).map((s) => [s.iteration, s.tokens / ((s.last - s.start) / 1000)] as [number, number]) }));
  return lineChart("tokens/s (journal)", series, "iteration");
}

export function stageTimeChart(stages: StageAgg[]): string {
  const bars = stages.slice(-16).map((s) => {
    const secs = Math.max(0, (s.last - s.start) / 1000);
    return { label: `it${s.iteration} ${s.stage}`, value: secs, text: fmtSeconds(secs) };
  });
  return barChart(`time per stage${stages.length > 16 ? " (last 16)" : ""}`, bars);
}

/** Curves shown up front; every other field is one click away, so a new metric is never hidden for good. */
const KEY_FIELDS = new Set(["avg_at_k", "pass_rate", "reward", "reward_mean", "pairs", "groups", "loss", "kl", "grad_norm", "rewards/margin", "seconds"]);

export function renderCharts(rows: readonly MetricRow[], stages: StageAgg[]): string {
  const charts = metricCharts(rows);
  const isKey = (c: Chart) => KEY_FIELDS.has(c.title.split(" · ")[1]!) && c.title !== "sync · seconds";
  const key = [...charts.filter(isKey).map((c) => lineChart(c.title, c.series, c.x)), throughputChart(stages), stageTimeChart(stages)].filter(Boolean);
  const rest = charts.filter((c) => !isKey(c)).map((c) => lineChart(c.title, c.series, c.x));
  if (key.length + rest.length === 0) return `<p class="mut">no metrics yet (metrics.jsonl is empty or absent)</p>`;
  return `<div class="grid">${key.join("")}</div>` +
    (rest.length ? `<details><summary class="mut" style="margin:12px 0;cursor:pointer">all other metrics (${rest.length})</summary><div class="grid">${rest.join("")}</div></details>` : "");
}
