// report.md sections of a self-play run on synthesized problems: per iteration what was synthesized and kept
// at each step, the learnable yield with its CI, the proposer's pairs and update, held-out after; and the
// synthesized-vs-seed twin comparison (paired over held-out problems, same sample seeds), said as it falls.
import type { RunContext } from "../experiment/context.js";
import { unitId } from "../experiment/ids.js";
import type { EvalSummary } from "../eval/heldout.js";
import { pairedByProblem, signFlipTest } from "../eval/stats.js";
import type { IterationResult } from "../selfplay/loop.js";
import type { UpdateRecord } from "../train/dpo.js";
import { P_PAIRS, P_PROBLEMS, P_UPDATE, type IterationProblems, type ProposerPairsRecord } from "./proposer-stages.js";

export interface TwinResult {
  before: EvalSummary;
  iterations: IterationResult[];
  /** Seed problems per iteration (as many as the synthesized run rolled out). */
  counts: number[];
  dir: string;
}

const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "n/a");
const table = (rows: string[][]) => {
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return rows.map((r) => r.map((x, c) => x.padEnd(w[c]!)).join("  ")).join("\n");
};

export function renderProposerReport(ctx: RunContext, main: { before: EvalSummary; iterations: IterationResult[] }, twin?: TwinResult): string {
  const rows = [["it", "synthesized", "parsed", "passed filters", "kept dedup+decontam (dropped by kind)", "refs agreed", "rolled out", "policy pairs", "learnable yield [95% CI]", "learnable / rolled out", "proposer pairs (by reason)", "proposer steps", "held-out after"]];
  for (const it of main.iterations) {
    const p = ctx.journal.get<IterationProblems>(unitId(it.iteration, P_PROBLEMS));
    const pr = ctx.journal.get<ProposerPairsRecord>(unitId(it.iteration, P_PAIRS));
    const up = ctx.journal.get<UpdateRecord>(unitId(it.iteration, P_UPDATE));
    const c = p?.counts;
    const y = pr?.yield;
    rows.push([
      String(it.iteration), String(c?.generated ?? "-"), String(c?.parsed ?? "-"), String(c?.passed_filters ?? "-"), c ? `${c.kept_dedup}${c.dropped_dedup && Object.keys(c.dropped_dedup).length ? ` ${JSON.stringify(c.dropped_dedup)}` : ""}` : "-",
      String(c?.references_agreed ?? "-"), String(p?.problems.length ?? "-"), String(it.pairs),
      y ? `${y.learnable}/${y.total} = ${pct(y.rate)} [${pct(y.ci.lo)}, ${pct(y.ci.hi)}]` : "-",
      pr ? `${pr.learnable_of_rolled_out.learnable}/${pr.learnable_of_rolled_out.total}` : "-",
      pr ? `${pr.pairs.length} ${JSON.stringify(pr.by_reason)}` : "-",
      up ? String(up.steps.length) : it.iteration < ctx.cfg.iterations ? "0 (no pairs)" : "- (last)",
      it.eval ? pct(it.eval.score) : "-",
    ]);
  }
  const lines = [
    "## Self-play on synthesized problems",
    "",
    `held-out before: ${pct(main.before.score)} (avg@${ctx.cfg.eval.samples_per_prompt}, ${main.before.problems} problems). Learnable yield = share of the iteration's generated problems (every generation unit) whose pass rate lies in (${ctx.cfg.proposer.pairs.min_pass_rate}, ${ctx.cfg.proposer.pairs.max_pass_rate}]; Wilson 95% CI.`,
    "",
    table(rows),
  ];
  if (twin) lines.push("", ...twinSection(ctx, main, twin));
  return lines.join("\n");
}

function twinSection(ctx: RunContext, main: { before: EvalSummary; iterations: IterationResult[] }, twin: TwinResult): string[] {
  const a = main.iterations.at(-1)?.eval;
  const b = twin.iterations.at(-1)?.eval;
  const head = `## Synthesized vs seed problems (twin policy in ${twin.dir}; seed problems per iteration: ${twin.counts.join(", ")})`;
  if (!a || !b) return [head, "", "no final held-out eval on one side: nothing to compare"];
  const cmp = pairedByProblem(b.perProblem, a.perProblem, ctx.cfg.seed); // after − before = synthesized − twin
  const ids = [...b.perProblem.keys()];
  const test = signFlipTest(ids.map((id) => a.perProblem.get(id)! - b.perProblem.get(id)!), ctx.cfg.seed);
  const pts = (x: number) => `${(100 * x).toFixed(1)}`;
  const better = cmp.delta > 0 ? "synthesized" : cmp.delta < 0 ? "seed (twin)" : "neither";
  const verdict = cmp.significant
    ? `${better} is better by ${pts(Math.abs(cmp.delta))} points; the 95% CI excludes 0`
    : `${better === "neither" ? "no difference" : `${better} is ahead by ${pts(Math.abs(cmp.delta))} points`}, but the 95% CI includes 0: NOT distinguishable from noise at this size`;
  return [
    head,
    "",
    table([
      ["policy", "held-out before", "held-out after", "train problems per iteration"],
      ["synthesized", pct(main.before.score), pct(a.score), main.iterations.map((i) => String(twin.counts[i.iteration - 1] ?? 0)).join(", ")],
      ["seed twin", pct(twin.before.score), pct(b.score), twin.counts.join(", ")],
    ]),
    "",
    `paired over ${cmp.n} held-out problems (same sample seeds): synthesized − seed = ${pts(cmp.delta)} points, 95% CI [${pts(cmp.ci.lo)}, ${pts(cmp.ci.hi)}] (bootstrap over problems); ` +
      `sign-flip p = ${test.p.toFixed(3)}; ${cmp.improved} problems better with synthesis, ${cmp.worsened} worse. Verdict: ${verdict}.`,
  ];
}
