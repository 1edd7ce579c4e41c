// Held-out evaluation: k samples per problem, graded as they stream in (sample and verdict are one unit).
import type { RunContext } from "../experiment/context.js";
import { generateStage } from "../selfplay/generate-stage.js";
import type { MathVerdict } from "../verify/types.js";
import { bootstrapMeanCI, mean } from "./stats.js";

export interface EvalRecord extends MathVerdict {
  prompt_id: string;
  sample: number;
  text: string;
  finish_reason: string;
}

export interface EvalSummary {
  iteration: number;
  problems: number;
  samples: number;
  /** avg@k: mean over problems of the fraction of correct samples. */
  score: number;
  ci: { lo: number; hi: number };
  /** pass@k (any sample correct), as a fraction of problems. */
  pass_at_k: number;
  perProblem: Map<string, number>;
}

export async function evaluateStage(ctx: RunContext, iteration: number): Promise<EvalSummary> {
  const answers = new Map(ctx.problems.heldout.map((p) => [p.id, p.answer]));
  await generateStage(ctx, {
    label: iteration === 0 ? "eval (before training)" : `eval after iteration ${iteration}`,
    stage: "eval",
    iteration,
    problems: ctx.problems.heldout,
    sampling: ctx.cfg.eval,
    toRows: async (problem, s, id) => {
      const verdict = await ctx.grader.grade(s.text, answers.get(problem.id)!);
      const result: EvalRecord = { ...verdict, prompt_id: problem.id, sample: s.sample, text: s.text, finish_reason: s.finish_reason };
      return [{ id, stage: "eval", iteration, result }];
    },
  });
  return summarizeEval(ctx, iteration);
}

export function summarizeEval(ctx: RunContext, iteration: number): EvalSummary {
  const rows = ctx.journal.list<EvalRecord>("eval", iteration);
  const byProblem = new Map<string, boolean[]>();
  for (const r of rows) {
    const list = byProblem.get(r.result.prompt_id) ?? [];
    list.push(r.result.verdict === "correct");
    byProblem.set(r.result.prompt_id, list);
  }
  const perProblem = new Map([...byProblem].map(([id, xs]) => [id, mean(xs.map(Number))]));
  const scores = [...perProblem.values()];
  const summary: EvalSummary = {
    iteration,
    problems: perProblem.size,
    samples: rows.length,
    score: mean(scores),
    ci: bootstrapMeanCI(scores, ctx.cfg.seed),
    pass_at_k: mean([...byProblem.values()].map((xs) => Number(xs.some(Boolean)))),
    perProblem,
  };
  ctx.metrics.write({ iteration, kind: "eval", problems: summary.problems, samples: summary.samples, avg_at_k: summary.score, ci_lo: summary.ci.lo, ci_hi: summary.ci.hi, pass_at_k: summary.pass_at_k });
  return summary;
}
