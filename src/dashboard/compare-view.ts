// The comparison view: two sides picked from the runs' held-out evals (RUN#N) and eval directories,
// turned into result rows the way `promptcot compare` does (loadSide) and compared by compareResults.
import { compareResults, type Comparison } from "../eval/compare.js";
import { loadSide } from "../eval/compare-inputs.js";
import { esc, page } from "./html.js";
import type { Readers } from "./run-reader.js";
import type { Found } from "./runs.js";
import { safe } from "./pages.js";

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const pts = (x: number) => `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}`;

/** Every side a user can pick: each eval iteration of each run, and each eval directory. */
function sides(found: Found[], readers: Readers): { key: string; path: string }[] {
  return found.flatMap((f) =>
    f.kind === "eval"
      ? [{ key: f.id, path: f.dir }]
      : safe(() => readers.get(f.dir).evalIterations(), []).map((it) => ({ key: `${f.id}#${it}`, path: `${f.dir}#${it}` })));
}

export function comparePage(found: Found[], readers: Readers, a: string | undefined, b: string | undefined): string {
  const options = sides(found, readers);
  const select = (name: string, cur: string | undefined) =>
    `<label>${name}<br><select name="${name}">${options.map((o) => `<option${o.key === cur ? " selected" : ""} value="${esc(o.key)}">${esc(o.key)}</option>`).join("")}</select></label>`;
  const form = `<form class="inline card" method="get" action="/compare">${select("a", a)}${select("b", b ?? options.at(-1)?.key)}<button>compare</button></form>`;
  let result = "";
  if (a && b) {
    const [sa, sb] = [options.find((o) => o.key === a), options.find((o) => o.key === b)];
    if (!sa || !sb) result = `<p class="err">unknown side ${esc(!sa ? a : b)}: pick one of the listed evals</p>`;
    else {
      try {
        const [la, lb] = [loadSide(sa.path), loadSide(sb.path)];
        result = comparisonTable(compareResults(la.rows, lb.rows, { labelA: a, labelB: b, allowUnpaired: true }));
      } catch (e) {
        result = `<p class="err">${esc((e as Error).message)}</p>`;
      }
    }
  }
  const none = options.length ? "" : `<p class="mut">no held-out evals or eval directories found yet</p>`;
  return page("compare", `<h1>Compare</h1><p class="mut">paired by problem: the same problems and sample seeds on both sides; CI by bootstrap over problems</p>${none}${form}${result}`);
}

function comparisonTable(c: Comparison): string {
  const rows = c.benchmarks.map((b) =>
    `<tr class="cmp-row" data-benchmark="${esc(b.benchmark)}"><td>${esc(b.benchmark)}</td><td>${b.problems}</td><td>${pct(b.a_mean)}</td><td>${pct(b.b_mean)}</td>` +
    `<td><b>${pts(b.diff)}</b> pts</td><td>[${pts(b.ci_low)}, ${pts(b.ci_high)}]</td><td>${b.p_value < 0.001 ? "&lt;0.001" : b.p_value.toFixed(3)}</td>` +
    `<td>${b.gained.length} / ${b.lost.length}</td></tr>`);
  const details = c.benchmarks.map((b) =>
    `<div class="card"><h3>${esc(b.benchmark)}: ${esc(b.a)} → ${esc(b.b)}</h3><p>${esc(b.power.note)}</p>` +
    `<p class="mut">gained: ${esc(b.gained.slice(0, 20).join(", ") || "none")} · lost: ${esc(b.lost.slice(0, 20).join(", ") || "none")}` +
    `${b.unpaired.only_a.length + b.unpaired.only_b.length ? ` · left out (one side only): ${b.unpaired.only_a.length + b.unpaired.only_b.length} problems` : ""}</p></div>`);
  return `<div class="card"><table><tr><th>benchmark</th><th>problems</th><th>A</th><th>B</th><th>B − A</th><th>95% CI</th><th>p</th><th>gained / lost</th></tr>${rows.join("")}</table></div>` +
    details.join("") + c.notes.map((n) => `<p class="mut">note: ${esc(n)}</p>`).join("");
}
