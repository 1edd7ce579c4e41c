// The update-algorithm seam: the self-play loop asks the configured algorithm (train.algorithm) what to
// build from the iteration's graded rollouts and how to update on it; rollout rounds, grading and
// scoring live with each algorithm, since GRPO's dynamic sampling decides how many prompts to roll out.
import type { RunContext } from "../experiment/context.js";
import { generateStage } from "../rollout/generate-stage.js";
import type { Pair } from "../selfplay/pairs.js";
import { gradeStage, pairsStage } from "../selfplay/stages.js";
import { dpoUpdateStage, referenceStage, type UpdateRecord } from "./dpo.js";
import { groupsStage, grpoUpdateStage, klReferenceStage, oldLogprobsStage, type GrpoGroup } from "./grpo.js";

export interface Batch<T> {
  data: T;
  /** Training examples it holds: DPO pairs, or GRPO samples. */
  size: number;
}

export interface UpdateAlgorithm<T> {
  /** Rollout, grading and whatever the update needs that is computed before it (journaled, resumable). */
  buildBatch(ctx: RunContext, it: number): Promise<Batch<T>>;
  /** The iteration's update unit; undefined when the batch is empty (no step, no checkpoint). */
  update(ctx: RunContext, it: number, batch: Batch<T>, globalStep: number): Promise<UpdateRecord | undefined>;
}

const dpo: UpdateAlgorithm<Pair[]> = {
  async buildBatch(ctx, it) {
    const { cfg, timer } = ctx;
    await timer.time("generate", () =>
      generateStage(ctx, {
        label: `rollout ${it}/${cfg.iterations}`, stage: "rollout", iteration: it, problems: ctx.problems.train, sampling: cfg.rollout,
        toRows: async (_p, sample, id) => [{ id, stage: "rollout", iteration: it, result: sample }],
      }),
    );
    await timer.time("grade", () => gradeStage(ctx, it));
    const pairs = await pairsStage(ctx, it);
    ctx.log(`iteration ${it}: ${pairs.length} pairs from ${ctx.problems.train.length} prompts`);
    if (pairs.length > 0) await timer.time("train", () => referenceStage(ctx, it, pairs));
    return { data: pairs, size: pairs.length };
  },
  update: async (ctx, it, batch, globalStep) => (batch.size > 0 ? dpoUpdateStage(ctx, it, batch.data, globalStep) : undefined),
};

const grpo: UpdateAlgorithm<GrpoGroup[]> = {
  async buildBatch(ctx, it) {
    const { groups } = await groupsStage(ctx, it);
    if (groups.length > 0) {
      await ctx.timer.time("train", async () => {
        await oldLogprobsStage(ctx, it, groups);
        await klReferenceStage(ctx, it, groups);
      });
    }
    return { data: groups, size: groups.reduce((n, g) => n + g.samples.length, 0) };
  },
  update: async (ctx, it, batch, globalStep) => (batch.size > 0 ? grpoUpdateStage(ctx, it, batch.data, globalStep) : undefined),
};

export function algorithmFor(name: "dpo" | "grpo"): UpdateAlgorithm<unknown> {
  return (name === "grpo" ? grpo : dpo) as UpdateAlgorithm<unknown>;
}
