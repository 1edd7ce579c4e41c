// The end-of-run table (stdout) and report.md: every number with its sample count.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RunContext } from "../experiment/context.js";
import type { IterationResult } from "../selfplay/loop.js";
import type { EvalSummary } from "./heldout.js";
import { pairedComparison } from "./stats.js";

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
  const ids = [...before.perProblem.keys()];
  const cmp = pairedComparison(ids.map((i) => before.perProblem.get(i)!), ids.map((i) => last.perProblem.get(i) ?? 0), ctx.cfg.seed);
  const evalRows = [["held-out", "problems", "samples", `avg@${k}`, "95% CI (bootstrap over problems)", `pass@${k}`]];
  evalRows.push(["before", String(before.problems), String(before.samples), pct(before.score), ci(before.ci), pct(before.pass_at_k)]);
  for (const it of its) {
    const e = it.eval;
    if (!e) continue;
    evalRows.push([`after it ${it.iteration}`, String(e.problems), String(e.samples), pct(e.score), ci(e.ci), pct(e.pass_at_k)]);
  }
  const work = [["iteration", "prompts", "samples", "pairs", "train steps"]];
  for (const it of its) work.push([String(it.iteration), String(ctx.problems.train.length), String(it.samples), String(it.pairs), String(it.steps)]);
  const staged = [...ctx.timer.seconds.values()].reduce((a, b) => a + b, 0);
  const time = [["stage", "wall s", "share"]];
  for (const [stage, s] of ctx.timer.seconds) time.push([stage, s.toFixed(1), pct(s / facts.wallSeconds)]);
  time.push(["controller/startup", (facts.wallSeconds - staged).toFixed(1), pct((facts.wallSeconds - staged) / facts.wallSeconds)]);
  time.push(["total", facts.wallSeconds.toFixed(1), "100%"]);
  const verdict = cmp.significant
    ? `the change is distinguishable from noise (95% CI of the paired difference excludes 0)`
    : `the change is NOT distinguishable from noise at this sample size (95% CI of the paired difference includes 0)`;
  return [
    `# ${ctx.cfg.name} — ${ctx.runDir}${facts.resumed ? " (resumed; wall times cover this invocation only)" : ""}`,
    "",
    table(evalRows),
    "",
    `paired change over ${cmp.n} problems: ${(100 * cmp.delta).toFixed(1)} points, 95% CI [${(100 * cmp.ci.lo).toFixed(1)}, ${(100 * cmp.ci.hi).toFixed(1)}]; ` +
      `${cmp.improved} problems improved, ${cmp.worsened} worsened — ${verdict}.`,
    "",
    table(work),
    "",
    table(time),
    "",
    `worker peak RSS: ${facts.workerPeakRssMb.map((m) => `${m.toFixed(0)} MiB`).join(", ") || "n/a"}`,
  ].join("\n");
}

export function writeReport(runDir: string, text: string): void {
  const [title, ...body] = text.split("\n");
  writeFileSync(join(runDir, "report.md"), `${title}\n\n\`\`\`\n${body.join("\n").trim()}\n\`\`\`\n`);
}
