// One self-play run: evaluate the base model, then per iteration
// generate -> grade -> build pairs -> reference log-probs -> update -> sync -> evaluate (the update saves).
import type { RunContext } from "../experiment/context.js";
import { evaluateStage, type EvalSummary } from "../eval/heldout.js";
import { referenceStage, dpoUpdateStage, syncWeights } from "../train/dpo.js";
import { generateStage } from "./generate-stage.js";
import { gradeStage, pairsStage } from "./stages.js";

export interface IterationResult {
  iteration: number;
  samples: number;
  pairs: number;
  steps: number;
  /** Absent when this iteration was not evaluated (eval_every). */
  eval?: EvalSummary;
}

export async function selfPlay(ctx: RunContext): Promise<{ before: EvalSummary; iterations: IterationResult[] }> {
  const { cfg, timer } = ctx;
  const before = await timer.time("evaluate", () => evaluateStage(ctx, 0));
  const iterations: IterationResult[] = [];
  let globalStep = 0;
  for (let it = 1; it <= cfg.iterations; it++) {
    await timer.time("generate", () =>
      generateStage(ctx, {
        label: `rollout ${it}/${cfg.iterations}`, stage: "rollout", iteration: it, problems: ctx.problems.train, sampling: cfg.rollout,
        toRows: async (_p, sample, id) => [{ id, stage: "rollout", iteration: it, result: sample }],
      }),
    );
    await timer.time("grade", () => gradeStage(ctx, it));
    const pairs = await pairsStage(ctx, it);
    ctx.log(`iteration ${it}: ${pairs.length} pairs from ${ctx.problems.train.length} prompts`);
    let steps = 0;
    if (pairs.length > 0) {
      await timer.time("train", () => referenceStage(ctx, it, pairs));
      const update = await timer.time("train", () => dpoUpdateStage(ctx, it, pairs, globalStep));
      steps = update.global_step - globalStep;
      globalStep = update.global_step;
      await timer.time("sync", () => syncWeights(ctx));
    }
    const due = it === cfg.iterations || (cfg.eval_every > 0 && it % cfg.eval_every === 0);
    const evalNow = due ? await timer.time("evaluate", () => evaluateStage(ctx, it)) : undefined;
    iterations.push({ iteration: it, samples: ctx.journal.list("rollout", it).length, pairs: pairs.length, steps, eval: evalNow });
  }
  return { before, iterations };
}
