// report.md sections of a self-play run on synthesized problems: per iteration what was synthesized and kept
// at each step, the learnable yield with its CI, the proposer's pairs and update, held-out after; and the
// synthesized-vs-seed twin comparison (paired over held-out problems, same sample seeds), said as it falls.
import type { RunContext } from "../experiment/context.js";
import { unitId } from "../experiment/ids.js";
import type { EvalSummary } from "../eval/heldout.js";
import { minimumDetectableDiff, pairedByProblem, sampleSd, signFlipTest } from "../eval/stats.js";
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

/** Points a paired comparison must detect with 80% power for the report to call the experiment powered. */
export const POWER_TARGET_POINTS = 5;

export interface ArmComparison {
  label: string;
  n: number;
  delta: number;
  ci: { lo: number; hi: number };
  p: number;
  improved: number;
  worsened: number;
  /** Smallest difference detected with 80% power (two-sided α 0.05) from these per-problem differences. */
  mde80: number;
}

/** a − b over the same held-out problems (same sample seeds): difference, bootstrap CI, sign-flip p and power. */
export function compareArms(label: string, a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>, seed: number): ArmComparison {
  const cmp = pairedByProblem(b, a, seed);
  const ids = [...b.keys()];
  const diffs = ids.map((id) => a.get(id)! - b.get(id)!);
  return {
    label, n: cmp.n, delta: cmp.delta, ci: cmp.ci, p: signFlipTest(diffs, seed).p, improved: cmp.improved, worsened: cmp.worsened,
    mde80: minimumDetectableDiff(sampleSd(diffs), cmp.n),
  };
}

function twinSection(ctx: RunContext, main: { before: EvalSummary; iterations: IterationResult[] }, twin: TwinResult): string[] {
  const a = main.iterations.at(-1)?.eval;
  const b = twin.iterations.at(-1)?.eval;
  const head = `## Synthesized vs seed problems vs no training (twin policy in ${twin.dir}; seed problems per iteration: ${twin.counts.join(", ")})`;
  if (!a || !b) return [head, "", "no final held-out eval on one side: nothing to compare"];
  const seed = ctx.cfg.seed;
  const base = main.before.perProblem; // the no-training arm: the base policy on the same problems and sample seeds
  const arms = [
    compareArms("synthesized − seed", a.perProblem, b.perProblem, seed),
    compareArms("synthesized − no training", a.perProblem, base, seed),
    compareArms("seed − no training", b.perProblem, base, seed),
  ];
  const pts = (x: number) => `${(100 * x).toFixed(1)}`;
  const [main1] = arms;
  const better = main1!.delta > 0 ? "synthesized" : main1!.delta < 0 ? "seed (twin)" : "neither";
  const significant = main1!.ci.lo > 0 || main1!.ci.hi < 0;
  const verdict = significant
    ? `${better} is better by ${pts(Math.abs(main1!.delta))} points; the 95% CI excludes 0`
    : `${better === "neither" ? "no difference" : `${better} is ahead by ${pts(Math.abs(main1!.delta))} points`}, but the 95% CI includes 0: NOT distinguishable from noise at this size`;
  const powered = main1!.mde80 <= POWER_TARGET_POINTS / 100;
  return [
    head,
    "",
    table([
      ["arm", "held-out after", "train problems per iteration"],
      ["synthesized", pct(a.score), main.iterations.map((i) => String(twin.counts[i.iteration - 1] ?? 0)).join(", ")],
      ["seed twin", pct(b.score), twin.counts.join(", ")],
      ["no training (base)", pct(main.before.score), "0"],
    ]),
    "",
    table([
      ["paired over held-out problems", "n", "Δ points", "95% CI", "sign-flip p", "better / worse", "detectable at 80% power"],
      ...arms.map((c) => [c.label, String(c.n), pts(c.delta), `[${pts(c.ci.lo)}, ${pts(c.ci.hi)}]`, c.p.toFixed(3), `${c.improved} / ${c.worsened}`, `±${pts(c.mde80)}`]),
    ]),
    "",
    `synthesized − seed = ${pts(main1!.delta)} points, 95% CI [${pts(main1!.ci.lo)}, ${pts(main1!.ci.hi)}] over ${main1!.n} problems (${ctx.cfg.eval.samples_per_prompt} samples each, same seeds). Verdict: ${verdict}.`,
    `Power: a ${POWER_TARGET_POINTS}-point difference ${powered ? "would be" : "would NOT reliably be"} detected (80% power needs ±${pts(main1!.mde80)} ${powered ? "≤" : ">"} ${POWER_TARGET_POINTS} points from the observed per-problem spread)` +
      `${powered ? "" : "; more held-out problems or samples per problem are needed"}.`,
  ];
}
