// One self-play run: evaluate the base model, then per iteration ask the update algorithm (train.algorithm:
// DPO pairs or GRPO groups; src/train/algorithms.ts) to roll out, grade and build its batch, update (the
// update saves a checkpoint), sync the generation workers to the new weights, evaluate. Each iteration's
// problems come from a ProblemSource: the fixed train set, or (proposer.enabled) problems synthesized for it.
import type { Problem } from "../data/problems.js";
import type { RunContext } from "../experiment/context.js";
import { evaluateStage, type EvalSummary } from "../eval/heldout.js";
import { algorithmFor } from "../train/algorithms.js";
import { syncWeights } from "../train/weight-sync.js";
import { applyRetention } from "../train/retention.js";

export interface IterationResult {
  iteration: number;
  samples: number;
  /** Training examples of the update: DPO pairs, or GRPO samples. */
  pairs: number;
  steps: number;
  /** Absent when this iteration was not evaluated (eval_every). */
  eval?: EvalSummary;
}

/** The train problems of iteration `it` (journaled by the source, so a resumed run gets the same ones). */
export type ProblemSource = (ctx: RunContext, it: number) => Promise<Problem[]>;
export const fixedProblems: ProblemSource = async (ctx) => ctx.problems.train;

export async function selfPlay(ctx: RunContext, source: ProblemSource = fixedProblems): Promise<{ before: EvalSummary; iterations: IterationResult[] }> {
  const { cfg, timer } = ctx;
  const algorithm = algorithmFor(cfg.train.algorithm);
  const before = await timer.time("evaluate", () => evaluateStage(ctx, 0));
  const iterations: IterationResult[] = [];
  let globalStep = 0;
  for (let it = 1; it <= cfg.iterations; it++) {
    const itx: RunContext = { ...ctx, problems: { ...ctx.problems, train: await source(ctx, it) } };
    const batch = await algorithm.buildBatch(itx, it);
    const update = await timer.time("train", () => algorithm.update(itx, it, batch, globalStep));
    const steps = update ? update.global_step - globalStep : 0;
    if (update) {
      globalStep = update.global_step;
      await timer.time("sync", () => syncWeights(ctx, it));
    }
    const due = it === cfg.iterations || (cfg.eval_every > 0 && it % cfg.eval_every === 0);
    const evalNow = due ? await timer.time("evaluate", () => evaluateStage(ctx, it)) : undefined;
    applyRetention(ctx); // checkpoints.keep_last / keep_best
    iterations.push({ iteration: it, samples: ctx.journal.count("rollout", it), pairs: batch.size, steps, eval: evalNow });
  }
  return { before, iterations };
}
