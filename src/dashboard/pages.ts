// Server-rendered pages: the run list and one run (stages with progress, curves, events). The parts that
// change while a run goes are rendered as fragments the page's script swaps in (see html.ts).
import { renderCharts } from "./charts.js";
import { esc, fmtSeconds, liveRegion, page, pill, q } from "./html.js";
import type { Readers, RunReader, StageAgg } from "./run-reader.js";
import type { Found } from "./runs.js";

const get = (o: unknown, path: string): unknown => path.split(".").reduce<unknown>((v, k) => (v && typeof v === "object" ? (v as Record<string, unknown>)[k] : undefined), o);
const num = (v: unknown): number | undefined => (typeof v === "number" ? v : undefined);

/** Units a stage will hold when done, where the config says (GRPO's rounds and pair counts are open-ended). */
function expected(r: RunReader, s: StageAgg): number | undefined {
  const cfg = r.config();
  const id = r.runJson();
  const train = num(id.train?.count);
  const heldout = num(id.heldout?.count);
  const grpo = get(cfg, "train.algorithm") === "grpo";
  if ((s.stage === "rollout" || s.stage === "grade") && !grpo && train !== undefined) return train * (num(get(cfg, "rollout.samples_per_prompt")) ?? NaN);
  if (s.stage === "eval" && heldout !== undefined) return heldout * (num(get(cfg, "eval.samples_per_prompt")) ?? NaN);
  if (s.stage === "pairs" || s.stage === "update" || s.stage === "groups") return 1;
  return undefined;
}

function status(r: RunReader): string {
  if (r.running()) return pill("running", "live");
  const last = r.events(50).filter((e) => e.kind.startsWith("run_")).at(-1);
  return pill(last ? last.kind.replace(/^run_/, "") : "not started", "idle");
}

function progress(r: RunReader): string {
  const total = num(r.config().iterations);
  const its = r.stages().filter((s) => s.stage !== "eval" || s.iteration > 0).map((s) => s.iteration);
  const at = its.length ? Math.max(...its) : 0;
  if (total === undefined || r.config().task === "synthesis") return "";
  const done = r.stages().some((s) => s.stage === "eval" && s.iteration === total) ? total : Math.max(0, at - 1);
  return `iteration ${at}/${total} ${bar(done, total)}`;
}

const bar = (n: number, of: number) => `<span class="bar" style="display:inline-block;width:140px;vertical-align:middle"><i style="width:${Math.min(100, (100 * n) / Math.max(of, 1)).toFixed(1)}%"></i></span>`;

export function indexPage(runs: Found[], readers: Readers, root: string): string {
  return page("runs", `<h1>Runs</h1><p class="mut">under ${esc(root)} · updates live</p>${liveRegion("/api/live?page=index", indexVersion(runs, readers), indexFragment(runs, readers))}`);
}

export function indexVersion(runs: Found[], readers: Readers): string {
  return runs.map((f) => (f.kind === "run" ? safe(() => readers.get(f.dir).version(), "?") : f.id)).join("|");
}

export function indexFragment(runs: Found[], readers: Readers): string {
  const rows = runs.filter((f) => f.kind === "run").map((f) => {
    const r = safe(() => readers.get(f.dir), undefined);
    if (!r) return `<tr><td>${esc(f.id)}</td><td colspan="5" class="mut">journal not readable yet</td></tr>`;
    const stages = r.stages();
    const last = stages.at(-1);
    const name = String(r.config().name ?? f.id.split("/")[0]);
    return `<tr class="run-row" data-run="${esc(f.id)}"><td><a href="/run?${q({ run: f.id })}">${esc(name)}</a><div class="mut mono">${esc(f.id)}</div></td>` +
      `<td>${status(r)}</td><td>${progress(r)}</td><td>${last ? `it${last.iteration} ${esc(last.stage)} · ${last.units} units` : "–"}</td>` +
      `<td>${stages.reduce((n, s) => n + s.units, 0)}</td><td class="mut">${last ? esc(new Date(last.last).toISOString().replace("T", " ").slice(0, 19)) : ""}</td></tr>`;
  });
  const evals = runs.filter((f) => f.kind === "eval").map((f) => `<li class="mono">${esc(f.id)}</li>`);
  return `<div class="card"><table><tr><th>run</th><th>status</th><th>progress</th><th>latest stage</th><th>units</th><th>last unit (UTC)</th></tr>` +
    `${rows.join("") || `<tr><td colspan="6" class="mut">no run directories (with a journal.sqlite) found</td></tr>`}</table></div>` +
    (evals.length ? `<div class="card"><h3>eval directories</h3><ul>${evals.join("")}</ul><a href="/compare">compare them</a></div>` : "");
}

export function runPage(f: Found, r: RunReader): string {
  const cfg = r.config();
  const evals = r.evalIterations();
  const cmp = evals.length >= 2 ? ` · <a href="/compare?${q({ a: `${f.id}#${evals[0]}`, b: `${f.id}#${evals.at(-1)}` })}">compare eval ${evals[0]} → ${evals.at(-1)}</a>` : "";
  const head = `<h1>${esc(String(cfg.name ?? f.id))}</h1><p class="mut"><span class="mono">${esc(f.dir)}</span> · model ${esc(r.runJson().model?.source ?? get(cfg, "model.source") ?? "?")}` +
    ` · ${esc(cfg.task ?? "selfplay")}${get(cfg, "train.algorithm") ? ` · ${esc(get(cfg, "train.algorithm"))}` : ""}${cmp}</p>`;
  return page(String(cfg.name ?? f.id), head + liveRegion(`/api/live?${q({ run: f.id })}`, r.version(), runFragment(f, r)));
}

export function runFragment(f: Found, r: RunReader): string {
  const stages = r.stages();
  const rows = stages.map((s) => {
    const exp = expected(r, s);
    const secs = (s.last - s.start) / 1000;
    const prog = exp !== undefined && Number.isFinite(exp) ? `${bar(s.units, exp)} <span class="mut">${s.units}/${exp}</span>` : String(s.units);
    return `<tr class="stage-row" data-stage="${esc(s.stage)}" data-iteration="${s.iteration}"><td>${s.iteration}</td>` +
      `<td><a href="/samples?${q({ run: f.id, stage: s.stage, it: s.iteration })}">${esc(s.stage)}</a></td><td>${prog}</td>` +
      `<td>${fmtSeconds(Math.max(0, secs))}</td><td>${s.tokens && secs > 0 ? `${(s.tokens / secs).toFixed(1)}` : "–"}</td></tr>`;
  });
  const events = r.events(12).map((e) => `<tr><td class="mono nowrap">${esc(e.at.replace("T", " ").slice(0, 19))}</td><td>${esc(e.kind)}</td><td class="mono mut">${esc(e.data.length > 160 ? `${e.data.slice(0, 160)}…` : e.data)}</td></tr>`);
  return `<p>${status(r)} ${progress(r)}</p>` +
    `<h2>Metrics</h2>${renderCharts(r.metrics(), stages)}${r.badMetricLines ? `<p class="mut">${r.badMetricLines} unreadable metrics.jsonl line(s) skipped</p>` : ""}` +
    `<h2>Stages</h2><div class="card"><table><tr><th>it</th><th>stage (samples)</th><th>units</th><th>wall</th><th>tokens/s</th></tr>${rows.join("") || `<tr><td colspan="5" class="mut">no units yet</td></tr>`}</table></div>` +
    `<h2>Events</h2><div class="card"><table>${events.join("") || `<tr><td class="mut">none</td></tr>`}</table></div>`;
}

export function safe<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch {
    return fallback;
  }
}
