// Held-out evaluation: k samples per problem, graded as they stream in (sample and verdict are one unit).
// Every eval draws the same per-sample seeds (pairedSeeds), so before/after differ by the weights only.
import type { RunContext } from "../experiment/context.js";
import { generateStage } from "../rollout/generate-stage.js";
import { gradeProblem, type ProblemVerdict } from "../verify/dispatch.js";
import { bootstrapMeanCI, type Estimate, mean, passAtKEstimate, reportedKs } from "./stats.js";

export interface EvalRecord extends ProblemVerdict {
  prompt_id: string;
  sample: number;
  /** The sample's seed: the same at every eval (paired before/after). */
  seed: number;
  text: string;
  finish_reason: string;
  prompt_opens_think: boolean;
}

export interface EvalSummary {
  iteration: number;
  problems: number;
  samples: number;
  /** avg@k: mean over problems of the fraction of correct samples (= unbiased pass@1). */
  score: number;
  ci: { lo: number; hi: number };
  /** Unbiased pass@k for the reported k (1, powers of two, n), each with a bootstrap CI over problems. */
  pass_at: ({ k: number } & Estimate)[];
  /** Fraction of correct samples per problem. */
  perProblem: Map<string, number>;
  /** Samples the grader could not judge (counted as not correct) and samples cut at max_tokens. */
  timeout: number;
  error: number;
  truncated: number;
}

export async function evaluateStage(ctx: RunContext, iteration: number): Promise<EvalSummary> {
  await generateStage(ctx, {
    label: iteration === 0 ? "eval (before training)" : `eval after iteration ${iteration}`,
    stage: "eval",
    iteration,
    problems: ctx.problems.heldout,
    sampling: ctx.cfg.eval,
    pairedSeeds: true,
    toRows: async (problem, s, id) => {
      const verdict = await gradeProblem(ctx, problem, s.text, { promptOpensThink: s.prompt_opens_think });
      const result: EvalRecord = {
        ...verdict,
        prompt_id: problem.id,
        sample: s.sample,
        seed: s.seed,
        text: s.text,
        finish_reason: s.finish_reason,
        prompt_opens_think: s.prompt_opens_think,
      };
      return [{ id, stage: "eval", iteration, result }];
    },
  });
  return summarizeEval(ctx, iteration);
}

export function summarizeEval(ctx: RunContext, iteration: number): EvalSummary {
  const records = ctx.journal.list<EvalRecord>("eval", iteration).map((r) => r.result);
  const ids = ctx.problems.heldout.map((p) => p.id);
  const summary = summarizeRecords(records, ids, ctx.cfg.eval.samples_per_prompt, iteration, ctx.cfg.seed);
  ctx.metrics.write({
    iteration,
    kind: "eval",
    problems: summary.problems,
    samples: summary.samples,
    avg_at_k: summary.score,
    ci_lo: summary.ci.lo,
    ci_hi: summary.ci.hi,
    ...Object.fromEntries(summary.pass_at.flatMap((p) => [[`pass_at_${p.k}`, p.value], [`pass_at_${p.k}_ci_lo`, p.ci.lo], [`pass_at_${p.k}_ci_hi`, p.ci.hi]])),
    grader_timeout: summary.timeout,
    grader_error: summary.error,
    truncated: summary.truncated,
  });
  return summary;
}

/**
 * The summary of one eval from its records. Every held-out problem must have exactly n samples: a missing
 * problem or sample is an error, not a 0, because a partial eval compared with a full one measures the gap.
 */
export function summarizeRecords(records: EvalRecord[], problemIds: string[], n: number, iteration: number, seed: number): EvalSummary {
  const byProblem = new Map<string, Map<number, boolean>>(problemIds.map((id) => [id, new Map()]));
  const stray = new Set<string>();
  for (const r of records) {
    const samples = byProblem.get(r.prompt_id);
    if (!samples) stray.add(r.prompt_id);
    else samples.set(r.sample, r.verdict === "correct");
  }
  const where = iteration === 0 ? "eval before training" : `eval after iteration ${iteration}`;
  if (stray.size) throw new Error(`${where}: samples of problems not in the held-out set (${few([...stray])}); the held-out data changed since they were drawn`);
  const short = [...byProblem].filter(([, s]) => s.size !== n || [...s.keys()].some((i) => i < 0 || i >= n));
  if (problemIds.length === 0) throw new Error(`${where}: no held-out problems`);
  if (short.length) {
    throw new Error(
      `${where}: ${short.length} of ${problemIds.length} problems do not have eval.samples_per_prompt=${n} samples ` +
        `(${few(short.map(([id, s]) => `${id}: ${s.size}`))}); rerun the same command to finish the eval`,
    );
  }
  const counts = [...byProblem.values()].map((s) => ({ n, c: [...s.values()].filter(Boolean).length }));
  const perProblem = new Map([...byProblem].map(([id, s]) => [id, mean([...s.values()].map(Number))]));
  const scores = [...perProblem.values()];
  const kinds = (f: (r: EvalRecord) => boolean) => records.filter(f).length;
  return {
    iteration,
    problems: perProblem.size,
    samples: records.length,
    score: mean(scores),
    ci: bootstrapMeanCI(scores, seed),
    pass_at: reportedKs(n).map((k) => ({ k, ...passAtKEstimate(counts, k, seed) })),
    perProblem,
    timeout: kinds((r) => r.verdict === "timeout"),
    error: kinds((r) => r.verdict === "error"),
    truncated: kinds((r) => r.finish_reason === "length"),
  };
}

function few(items: string[]): string {
  return `${items.slice(0, 5).join(", ")}${items.length > 5 ? `, and ${items.length - 5} more` : ""}`;
}
