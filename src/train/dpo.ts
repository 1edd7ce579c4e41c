// DPO for one iteration: reference log-probs (the iteration's starting weights), then optimizer steps,
// then a checkpoint. The update is one journaled unit: its step metrics and checkpoint path are
// recorded together after the checkpoint is on disk, so a crash mid-update redoes it from the last
// checkpoint instead of training twice on the same pairs.
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { RunContext } from "../experiment/context.js";
import type { Journal } from "../experiment/journal.js";
import { iterTag, shuffled, unitId, unitSeed } from "../experiment/ids.js";
import { LossKind, type TrainExample } from "../rpc/gen/promptcot_worker.js";
import type { SampleRecord } from "../selfplay/generate-stage.js";
import type { Pair } from "../selfplay/pairs.js";
import { Progress } from "../telemetry/progress.js";

const CALL_DEADLINE_MS = 60 * 60 * 1000;
const TRAINER = 0; // worker index that holds the optimizer

interface RefRecord {
  chosen_logp: number;
  rejected_logp: number;
}

export interface UpdateRecord {
  steps: Record<string, number>[];
  checkpoint: string;
  global_step: number;
}

/** The newest journaled update (its checkpoint is where workers start on resume), if any. */
export function latestUpdate(journal: Journal): UpdateRecord | undefined {
  const last = journal.countsByStage().filter((r) => r.stage === "update").at(-1);
  return last ? journal.get<UpdateRecord>(`${iterTag(last.iteration)}/update`) : undefined;
}

function samplesById(ctx: RunContext, iteration: number): Map<string, SampleRecord> {
  return new Map(ctx.journal.list<SampleRecord>("rollout", iteration).map((s) => [s.id, s.result]));
}

/** Scores chosen and rejected completions under the current (pre-update) weights. */
export async function referenceStage(ctx: RunContext, iteration: number, pairs: Pair[]): Promise<void> {
  const todo = pairs.filter((p) => !ctx.journal.has(unitId(iteration, "ref", p.id)));
  if (todo.length === 0) return;
  const samples = samplesById(ctx, iteration);
  const progress = new Progress("reference log-probs", todo.length);
  const BATCH = 8;
  for (let i = 0; i < todo.length; i += BATCH) {
    const batch = todo.slice(i, i + BATCH);
    const items = batch.flatMap((p) =>
      [p.chosen, p.rejected].map((sid) => {
        const s = samples.get(sid)!;
        return { id: sid, promptTokenIds: s.prompt_token_ids, completionTokenIds: s.token_ids };
      }),
    );
    const res = await ctx.pool.run(TRAINER, (rpc) => rpc.score({ items }, CALL_DEADLINE_MS));
    const logp = new Map(res.results.map((r) => [r.id, r.sumLogprob]));
    ctx.journal.record(
      batch.map((p) => ({
        id: unitId(iteration, "ref", p.id),
        stage: "ref",
        iteration,
        result: { chosen_logp: logp.get(p.chosen)!, rejected_logp: logp.get(p.rejected)! } satisfies RefRecord,
      })),
    );
    progress.tick(batch.length);
  }
  progress.finish();
}

function examplesFor(ctx: RunContext, iteration: number, pairs: Pair[]): TrainExample[] {
  const samples = samplesById(ctx, iteration);
  return pairs.map((p) => {
    const c = samples.get(p.chosen)!;
    const r = samples.get(p.rejected)!;
    const ref = ctx.journal.get<RefRecord>(unitId(iteration, "ref", p.id))!;
    return {
      promptTokenIds: c.prompt_token_ids,
      completionTokenIds: [],
      chosenTokenIds: c.token_ids,
      rejectedTokenIds: r.token_ids,
      refChosenLogp: ref.chosen_logp,
      refRejectedLogp: ref.rejected_logp,
      advantage: 0,
      weight: 1,
    };
  });
}

/** Runs the iteration's DPO steps and saves a checkpoint; returns the journaled update record. */
export async function dpoUpdateStage(ctx: RunContext, iteration: number, pairs: Pair[], globalStep: number): Promise<UpdateRecord> {
  const id = `${iterTag(iteration)}/update`;
  const done = ctx.journal.get<UpdateRecord>(id);
  if (done) return done;
  const t = ctx.cfg.train;
  const examples = examplesFor(ctx, iteration, pairs);
  const order: TrainExample[] = [];
  for (let e = 0; e < t.epochs; e++) order.push(...shuffled(examples, unitSeed(ctx.cfg.seed, "shuffle", iteration, e)));
  const batches: TrainExample[][] = [];
  for (let i = 0; i < order.length; i += t.batch_size) batches.push(order.slice(i, i + t.batch_size));

  // If the trainer restarts mid-update it comes back from the last checkpoint, so the steps already
  // taken are gone: redo the whole update rather than continue on the wrong weights.
  // If the trainer restarts mid-update (or mid-save) it comes back from the last checkpoint, so the steps
  // already taken are gone: redo the whole update rather than continue or save the wrong weights.
  const trainer = ctx.pool.workers[TRAINER]!;
  const step = globalStep + batches.length;
  const checkpoint = join(ctx.runDir, "checkpoints", `step-${step}`);
  let steps: Record<string, number>[];
  for (;;) {
    const restartsBefore = trainer.restarts;
    steps = await runSteps(ctx, iteration, batches, globalStep, id);
    // A checkpoint without its journal row is an orphan of a crash between the two; it is redone.
    if (existsSync(checkpoint)) rmSync(checkpoint, { recursive: true, force: true });
    await ctx.pool.run(TRAINER, (rpc) => rpc.saveCheckpoint({ path: checkpoint, includeOptimizer: true }, CALL_DEADLINE_MS));
    if (trainer.restarts === restartsBefore) break;
    ctx.log(`trainer restarted during the update of ${iterTag(iteration)}; redoing it from ${ctx.pool.checkpoint ?? "the base model"}`);
  }
  const record: UpdateRecord = { steps, checkpoint, global_step: step };
  ctx.journal.record([{ id, stage: "update", iteration, result: record }]);
  ctx.pool.advance(checkpoint, step, TRAINER);
  return record;
}

async function runSteps(
  ctx: RunContext,
  iteration: number,
  batches: TrainExample[][],
  globalStep: number,
  unit: string,
): Promise<Record<string, number>[]> {
  const t = ctx.cfg.train;
  const steps: Record<string, number>[] = [];
  const progress = new Progress(`DPO update (${batches.length} steps)`, batches.length);
  for (const [b, batch] of batches.entries()) {
    const res = await ctx.pool.run(TRAINER, (rpc) =>
      rpc.trainStep(
        {
          stepId: `${unit}/step-${b}`,
          loss: LossKind.DPO,
          examples: batch,
          hyper: {
            learningRate: t.learning_rate,
            beta: t.beta,
            labelSmoothing: t.label_smoothing,
            microBatchSize: t.micro_batch_size,
            maxGradNorm: t.max_grad_norm,
            weightDecay: t.weight_decay,
          },
        },
        CALL_DEADLINE_MS,
      ),
    );
    const metrics: Record<string, number> = { ...res.metrics, step: globalStep + b + 1 };
    steps.push(metrics);
    ctx.metrics.write({ iteration, kind: "train", ...metrics });
    progress.tick(1, `loss ${(metrics.loss ?? NaN).toFixed(4)}`);
  }
  progress.finish();
  return steps;
}

/** Brings every worker that holds older weights to the current checkpoint (the trainer already has them). */
export async function syncWeights(ctx: RunContext): Promise<void> {
  const { pool } = ctx;
  for (const [w, worker] of pool.workers.entries()) {
    if (worker.heldStep >= pool.checkpointStep || !pool.checkpoint) continue;
    const path = pool.checkpoint;
    await pool.run(w, (rpc) => rpc.loadCheckpoint({ path, loadOptimizer: false }, CALL_DEADLINE_MS));
    worker.heldStep = pool.checkpointStep;
  }
}
