// DPO for one iteration: reference log-probs (the iteration's starting weights), then optimizer steps,
// then a checkpoint. The update is one journaled unit: its step metrics and checkpoint path are
// recorded together after the checkpoint is on disk, so a crash mid-update redoes it from the last
// checkpoint instead of training twice on the same pairs; with train.resume_every_steps a long update
// also journals a resumable point every N steps (update-points.ts) and a crash redoes at most N steps.
// GRPO (grpo.ts) uses the same update unit.
import { join } from "node:path";
import { WorkerRestartedError } from "../cluster/pool.js";
import type { Experiment } from "../config/schema.js";
import type { RunContext } from "../experiment/context.js";
import type { Journal } from "../experiment/journal.js";
import { iterTag, shuffled, unitId, unitSeed } from "../experiment/ids.js";
import { LossKind, type TrainExample, type TrainHyper } from "../rpc/gen/promptcot_worker.js";
import type { SampleRecord } from "../rollout/generate-stage.js";
import type { Pair } from "../selfplay/pairs.js";
import { Progress } from "../telemetry/progress.js";
import { optimizerHyper, totalStepsOf } from "./schedule.js";
import { planIdentity, prunePoints, saveTrainerCheckpoint, UpdatePoints, type PassStart } from "./update-points.js";
import { pairIds, scoreItemOf, workerReadsShards } from "./worker-reads.js";

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
  const refs = await workerReadsShards(ctx, TRAINER);
  const progress = new Progress("reference log-probs", todo.length);
  const BATCH = 8;
  for (let i = 0; i < todo.length; i += BATCH) {
    const batch = todo.slice(i, i + BATCH);
    const items = batch.flatMap((p) => [p.chosen, p.rejected].map((sid) => scoreItemOf(sid, samples.get(sid)!, refs)));
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

function examplesFor(ctx: RunContext, iteration: number, pairs: Pair[], refs: boolean): TrainExample[] {
  const samples = samplesById(ctx, iteration);
  return pairs.map((p) => {
    const ref = ctx.journal.get<RefRecord>(unitId(iteration, "ref", p.id))!;
    return {
      ...pairIds(samples.get(p.chosen)!, samples.get(p.rejected)!, refs),
      refChosenLogp: ref.chosen_logp,
      refRejectedLogp: ref.rejected_logp,
      advantage: 0,
      weight: 1,
      oldLogprobs: [],
      refLogprobs: [],
    };
  });
}

/** Runs the iteration's DPO steps and saves a checkpoint; returns the journaled update record. */
export async function dpoUpdateStage(ctx: RunContext, iteration: number, pairs: Pair[], globalStep: number): Promise<UpdateRecord> {
  const done = ctx.journal.get<UpdateRecord>(`${iterTag(iteration)}/update`);
  if (done) return done;
  const t = ctx.cfg.train;
  const hyper: Partial<TrainHyper> = { beta: t.beta, labelSmoothing: t.label_smoothing };
  const record = await updateUnit(ctx, iteration, { label: "DPO", loss: LossKind.DPO, hyper, batches: epochBatches(ctx, iteration, examplesFor(ctx, iteration, pairs, await workerReadsShards(ctx, TRAINER))) }, globalStep);
  reportFirstStep(ctx, iteration, record);
  return record;
}

/** Nats of |policy - reference| per completion above which the first step's offset is reported as a problem. */
export const FIRST_STEP_OFFSET_NATS = 0.05;

/**
 * The update's first step, where the policy is the reference: its rewards (beta * (policy - reference)) and
 * margin should be ~0, whatever the scoring and training batch shapes; anything else is an offset between the
 * two forwards (padding, positions, dtype), which would bias the whole update. Written as its own metrics row.
 */
function reportFirstStep(ctx: RunContext, iteration: number, record: UpdateRecord): void {
  const first = record.steps[0];
  if (!first) return;
  const pick = ["rewards/margin", "rewards/chosen", "rewards/rejected", "rewards/abs_max"].filter((k) => first[k] !== undefined);
  ctx.metrics.write({ iteration, kind: "dpo_first_step", step: first.step, ...Object.fromEntries(pick.map((k) => [k, first[k]!])) });
  const offset = (first["rewards/abs_max"] ?? Math.abs(first["rewards/margin"] ?? 0)) / ctx.cfg.train.beta;
  const line = `iteration ${iteration}: DPO first step (policy = reference) margin ${(first["rewards/margin"] ?? NaN).toExponential(2)}, largest |policy - reference| ${offset.toExponential(2)} nats`;
  ctx.log(offset > FIRST_STEP_OFFSET_NATS ? `${line}: above ${FIRST_STEP_OFFSET_NATS}, the reference and training forwards disagree (docs/ARCHITECTURE.md, "DPO's first step")` : line);
}

/** train.epochs passes over `examples`, each in its own seeded order, cut into train.batch_size steps. */
export function epochBatches(ctx: RunContext, iteration: number, examples: TrainExample[]): TrainExample[][] {
  const t = ctx.cfg.train;
  const order: TrainExample[] = [];
  for (let e = 0; e < t.epochs; e++) order.push(...shuffled(examples, unitSeed(ctx.cfg.seed, "shuffle", iteration, e)));
  const batches: TrainExample[][] = [];
  for (let i = 0; i < order.length; i += t.batch_size) batches.push(order.slice(i, i + t.batch_size));
  return batches;
}

/** One update: its loss, the loss's own hyperparameters (the shared ones come from train.*) and its steps. */
export interface UpdatePlan {
  label: string;
  loss: LossKind;
  hyper: Partial<TrainHyper>;
  batches: TrainExample[][];
  /** Another role's update (the proposer): its own journal unit and checkpoint directory; default the policy's. */
  unit?: { id: string; stage: string };
  checkpointDir?: string;
}

/** Runs an update's steps and saves a checkpoint as one journaled unit (see the file comment). */
export async function updateUnit(ctx: RunContext, iteration: number, plan: UpdatePlan, globalStep: number): Promise<UpdateRecord> {
  const id = plan.unit?.id ?? `${iterTag(iteration)}/update`;
  const checkpointDir = plan.checkpointDir ?? join(ctx.runDir, "checkpoints");
  const done = ctx.journal.get<UpdateRecord>(id);
  if (done) {
    prunePoints(checkpointDir, done.global_step); // a crash between the journal row and the pruning left them
    return done;
  }
  const { batches } = plan;

  // A trainer restart anywhere in the update (a step, the save) loses the steps since the newest resumable
  // point (update-points.ts; train.resume_every_steps), and the restarted process holds that point's state
  // (or the update's starting checkpoint with its optimizer state: the base model and a fresh optimizer in
  // iteration 1). So the pass is abandoned at once and taken up again from there: continuing, or replaying
  // on top, would train on the wrong weights.
  const step = globalStep + batches.length;
  const checkpoint = join(checkpointDir, `step-${step}`);
  const points = new UpdatePoints({
    journal: ctx.journal, pool: ctx.pool, log: ctx.log, unit: { id, iteration }, every: ctx.cfg.train.resume_every_steps,
    checkpointDir, startStep: globalStep, steps: batches.length,
    plan: () => planIdentity([id, globalStep, plan.loss, plan.hyper, { ...ctx.cfg.train, resume_every_steps: undefined }, ...batches]),
  });
  for (;;) {
    try {
      const from = await points.resume();
      if (from.checkpoint) ctx.log(`${id}: continuing after step ${from.done} of ${batches.length} from resumable point ${from.checkpoint}`);
      const steps = await runSteps(ctx, iteration, plan, globalStep, id, from, points);
      await saveTrainerCheckpoint(ctx.pool, checkpoint);
      const record: UpdateRecord = { steps, checkpoint, global_step: step };
      ctx.journal.record([{ id, stage: plan.unit?.stage ?? "update", iteration, result: record }]);
      // Only the pass that counted reaches metrics.jsonl (and TensorBoard): one value per step.
      for (const m of steps) ctx.metrics.write({ iteration, kind: "train", ...(plan.unit ? { update: plan.unit.id } : {}), ...m });
      ctx.pool.advance(checkpoint, step, TRAINER);
      prunePoints(checkpointDir, step);
      return record;
    } catch (err) {
      if (!(err instanceof WorkerRestartedError)) throw err; // the restart budget bounds this loop
      ctx.log(`trainer restarted during the update of ${iterTag(iteration)}; abandoned the pass, taking it up again from its newest resumable point or its start`);
    }
  }
}

/** A TrainStep's hyperparameters at a global step: the update's own (its loss's), the LR schedule and AdamW's,
 *  and train.*'s shared ones. */
export function stepHyper(cfg: Experiment, own: Partial<TrainHyper>, step: number): Partial<TrainHyper> {
  const t = cfg.train;
  return {
    ...own,
    ...optimizerHyper(cfg, step, totalStepsOf(cfg)), // LR schedule, AdamW betas/eps
    microBatchSize: t.micro_batch_size,
    maxTokensPerMicroBatch: t.max_tokens_per_micro_batch,
    dpoPairPasses: t.dpo_pair_passes, // read by DPO steps only
    maxGradNorm: t.max_grad_norm,
    weightDecay: t.weight_decay,
  };
}

async function runSteps(
  ctx: RunContext,
  iteration: number,
  plan: UpdatePlan,
  globalStep: number,
  unit: string,
  from: PassStart,
  points: UpdatePoints,
): Promise<Record<string, number>[]> {
  const steps: Record<string, number>[] = [...from.steps];
  const progress = new Progress(`${plan.label} update (${plan.batches.length} steps)`, plan.batches.length);
  if (from.done > 0) progress.tick(from.done, "done before a restart");
  for (let b = from.done; b < plan.batches.length; b++) {
    const batch = plan.batches[b]!;
    const res = await ctx.pool.run(TRAINER, (rpc) =>
      rpc.trainStep(
        {
          stepId: `${unit}/step-${b}`,
          loss: plan.loss,
          examples: batch,
          hyper: stepHyper(ctx.cfg, plan.hyper, globalStep + b + 1),
        },
        CALL_DEADLINE_MS,
      ),
      { onRestart: "abandon" },
    );
    // weights_version counts the trainer's steps since the base model: the run's global step, which the
    // checkpoint carries to the rollout workers. Anything else means the trainer holds other weights.
    if (res.weightsVersion !== globalStep + b + 1) {
      throw new Error(`internal error: the trainer reports weights_version ${res.weightsVersion} after global step ${globalStep + b + 1}`);
    }
    const metrics: Record<string, number> = { ...res.metrics, step: globalStep + b + 1 };
    steps.push(metrics); // written to metrics.jsonl once the update is journaled (an abandoned pass never is)
    progress.tick(1, `loss ${(metrics.loss ?? NaN).toFixed(4)}`);
    if (points.due(b + 1)) await points.save(b + 1, steps);
  }
  progress.finish();
  return steps;
}
