// The end-of-run table (stdout) and report.md: every number with its sample count.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RunContext } from "../experiment/context.js";
import type { IterationResult } from "../selfplay/loop.js";
import type { EvalSummary } from "./heldout.js";
import { gradingCounts, kindCounts, sampleOutcomes } from "../selfplay/stages.js";
import type { ValidityCounts } from "../selfplay/validity.js";
import { pairedByProblem } from "./stats.js";

export interface RunFacts {
  wallSeconds: number;
  workerPeakRssMb: number[];
  resumed: boolean;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const ci = (c: { lo: number; hi: number }) => `[${pct(c.lo)}, ${pct(c.hi)}]`;

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join("  ")).join("\n");
}

export function renderReport(ctx: RunContext, before: EvalSummary, its: IterationResult[], facts: RunFacts): string {
  const k = ctx.cfg.eval.samples_per_prompt;
  const last = its.at(-1)?.eval ?? before;
  const cmp = pairedByProblem(before.perProblem, last.perProblem, ctx.cfg.seed);
  const passKs = before.pass_at.filter((p) => p.k > 1).map((p) => p.k);
  const evalRows = [
    ["held-out", "problems", "samples", `avg@${k}`, "95% CI (bootstrap over problems)", ...passKs.map((pk) => `pass@${pk} [95% CI]`), "grader timeout/error", "cut at max_tokens"],
  ];
  const evalRow = (label: string, e: EvalSummary) => [
    label, String(e.problems), String(e.samples), pct(e.score), ci(e.ci),
    ...passKs.map((pk) => {
      const p = e.pass_at.find((x) => x.k === pk)!;
      return `${pct(p.value)} ${ci(p.ci)}`;
    }),
    `${e.timeout}/${e.error}`, String(e.truncated),
  ];
  evalRows.push(evalRow("before", before));
  for (const it of its) if (it.eval) evalRows.push(evalRow(`after it ${it.iteration}`, it.eval));
  // samples set aside from pairs and pass rates (see selfplay/pairs.ts countableGroups)
  const work = [["iteration", "prompts", "samples", "grader timeout", "grader error", "cut at max_tokens", "set aside", "invalid (by reason)", "pairs", "train steps"]];
  for (const it of its) {
    const g = gradingCounts(sampleOutcomes(ctx, it.iteration));
    work.push([
      String(it.iteration), String(ctx.problems.train.length), String(it.samples), String(g.timeout), String(g.error), String(g.truncated),
      String(g.excluded), validityCell(g.validity), String(it.pairs), String(it.steps),
    ]);
  }
  const byKind = kindTable(ctx, its);
  const staged = [...ctx.timer.seconds.values()].reduce((a, b) => a + b, 0);
  const time = [["stage", "wall s", "share"]];
  for (const [stage, s] of ctx.timer.seconds) time.push([stage, s.toFixed(1), pct(s / facts.wallSeconds)]);
  // The rest: loading config and data, opening the journal, stages between the timed ones (pairs, groups).
  time.push(["controller (untimed)", (facts.wallSeconds - staged).toFixed(1), pct((facts.wallSeconds - staged) / facts.wallSeconds)]);
  time.push(["total", facts.wallSeconds.toFixed(1), "100%"]);
  const verdict = cmp.significant
    ? `the change is distinguishable from noise (95% CI of the paired difference excludes 0)`
    : `the change is NOT distinguishable from noise at this sample size (95% CI of the paired difference includes 0)`;
  return [
    `# ${ctx.cfg.name} — ${ctx.runDir}${facts.resumed ? " (resumed; wall times cover this invocation only)" : ""}`,
    "",
    table(evalRows),
    "",
    `paired change over ${cmp.n} problems (same sample seeds before and after): ${(100 * cmp.delta).toFixed(1)} points, 95% CI [${(100 * cmp.ci.lo).toFixed(1)}, ${(100 * cmp.ci.hi).toFixed(1)}]; ` +
      `${cmp.improved} problems improved, ${cmp.worsened} worsened — ${verdict}.`,
    "",
    table(work),
    "",
    ...(byKind ? [byKind, ""] : []),
    table(time),
    "",
    `worker peak RSS: ${facts.workerPeakRssMb.map((m) => `${m.toFixed(0)} MiB`).join(", ") || "n/a"}`,
  ].join("\n");
}

export function writeReport(runDir: string, text: string): void {
  const [title, ...body] = text.split("\n");
  writeFileSync(join(runDir, "report.md"), `${title}\n\n\`\`\`\n${body.join("\n").trim()}\n\`\`\`\n`);
}

/** "3 (no_boxed 2, cjk 1)": completions failing pairs.validity, never chosen (see selfplay/validity.ts). */
function validityCell(v: ValidityCounts): string {
  const by = Object.entries(v).filter(([k, n]) => k !== "invalid" && n > 0).map(([k, n]) => `${k} ${n}`);
  return by.length ? `${v.invalid} (${by.join(", ")})` : String(v.invalid);
}

/** Verdicts per iteration and problem kind (math: the checker's; code: the sandbox's); null for a math-only run. */
function kindTable(ctx: RunContext, its: IterationResult[]): string | null {
  const counts = its.map((it) => ({ it: it.iteration, k: kindCounts(sampleOutcomes(ctx, it.iteration)) }));
  if (!counts.some((c) => c.k.code.samples > 0)) return null;
  const cell = (o: Record<string, number>) => Object.entries(o).filter(([k, n]) => k !== "samples" && n > 0).map(([k, n]) => `${k} ${n}`).join(", ") || "-";
  const rows = [["iteration", "kind", "samples", "verdicts"]];
  for (const { it, k } of counts) {
    rows.push([String(it), "math", String(k.math.samples), cell(k.math)], [String(it), "code (sandbox)", String(k.code.samples), cell(k.code)]);
  }
  return table(rows);
}
