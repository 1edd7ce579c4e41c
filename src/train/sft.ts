// A journaled SFT update: optimizer steps over a set of examples, then a checkpoint, recorded as one unit
// after the checkpoint is on disk. A crash mid-update redoes it from the newest resumable point
// (update-points.ts; resumeEverySteps) or the update's starting checkpoint.
// A trainer restart inside the update abandons the pass (the restarted worker holds that point's or the
// starting weights, so continuing would train the rest of the pass on the wrong weights) and takes it up
// again from there. The check sits inside each call: when the pool reruns a call on a restarted worker, the
// call refuses to run (nothing is applied to the fresh weights) and the pass is taken up again.
class PassAbandoned extends Error {
  constructor() {
    super("the trainer restarted inside the update");
  }
}
import { join } from "node:path";
import { WorkerRestartedError, type WorkerPool } from "../cluster/pool.js";
import { shuffled } from "../experiment/ids.js";
import type { Journal } from "../experiment/journal.js";
import { LossKind, type TrainExample, type TrainHyper } from "../rpc/gen/promptcot_worker.js";
import type { MetricsSink } from "../telemetry/metrics.js";
import { Progress } from "../telemetry/progress.js";
import { planIdentity, prunePoints, saveTrainerCheckpoint, UpdatePoints, type PassStart } from "./update-points.js";

const CALL_DEADLINE_MS = 60 * 60 * 1000;
const TRAINER = 0; // worker index that holds the optimizer

export interface SftHyper {
  learning_rate: number;
  batch_size: number;
  micro_batch_size: number;
  /** 0 or absent = rows only. */
  max_tokens_per_micro_batch?: number;
  epochs: number;
  max_grad_norm: number;
  weight_decay: number;
}

export interface SftUpdateRecord {
  steps: Record<string, number>[];
  checkpoint: string;
  global_step: number;
  examples: number;
  /** Passes abandoned because the trainer restarted inside them. */
  redone: number;
}

export interface SftUpdateOptions {
  journal: Journal;
  pool: WorkerPool;
  metrics?: MetricsSink;
  log: (msg: string) => void;
  /** The update's own journal unit. */
  unit: { id: string; stage: string; iteration: number };
  /** Ids of the examples, shuffled per epoch by `seed`; only one batch of examples is loaded at a time. */
  exampleIds: string[];
  load: (ids: string[]) => Promise<TrainExample[]>;
  hyper: SftHyper;
  seed: number;
  /** Where this role's checkpoints live: <dir>/step-N. */
  checkpointDir: string;
  label: string;
  /** Step batches of ids to use instead of `epochs` seeded shuffles cut into batch_size (e.g. length-grouped). */
  batches?: string[][];
  /** TrainHyper fields that vary by global step (1-based): the learning-rate schedule, AdamW's betas. */
  hyperAt?: (globalStep: number) => Partial<TrainHyper>;
  /** train.resume_every_steps: a resumable point every N steps (update-points.ts); 0 or absent = none. */
  resumeEverySteps?: number;
}

/** Runs (or returns the journaled result of) one SFT update and advances the pool to its checkpoint. */
export async function sftUpdate(o: SftUpdateOptions): Promise<SftUpdateRecord> {
  const done = o.journal.get<SftUpdateRecord>(o.unit.id);
  if (done) {
    prunePoints(o.checkpointDir, done.global_step); // a crash between the journal row and the pruning left them
    return done;
  }
  if (o.exampleIds.length === 0) throw new Error(`${o.label}: no training examples (unit ${o.unit.id})`);
  const batches = o.batches ?? batchesOf(o);
  const start = o.pool.checkpointStep;
  const step = start + batches.length;
  const checkpoint = join(o.checkpointDir, `step-${step}`);
  const trainer = o.pool.workers[TRAINER]!;
  const points = new UpdatePoints({
    journal: o.journal, pool: o.pool, log: o.log, unit: o.unit, every: o.resumeEverySteps ?? 0, checkpointDir: o.checkpointDir,
    startStep: start, steps: batches.length,
    plan: () => planIdentity([o.unit.id, start, o.hyper, o.seed, batches.map((_, b) => o.hyperAt?.(start + b + 1) ?? null), ...batches]),
  });
  for (let redone = 0; ; redone++) {
    const restartsBefore = trainer.restarts;
    const guard = () => {
      if (trainer.restarts !== restartsBefore) throw new PassAbandoned();
    };
    try {
      const from = await points.resume();
      if (from.checkpoint) o.log(`${o.label}: continuing after step ${from.done} of ${batches.length} from resumable point ${from.checkpoint}`);
      const steps = await runSteps(o, batches, start, guard, from, points);
      guard();
      await saveTrainerCheckpoint(o.pool, checkpoint); // a checkpoint dir without its journal row is an orphan: redone
      const record: SftUpdateRecord = { steps, checkpoint, global_step: step, examples: o.exampleIds.length, redone };
      o.journal.record([{ ...o.unit, result: record }]);
      // Only the pass that counted reaches metrics.jsonl (and TensorBoard): one value per step.
      for (const m of steps) o.metrics?.write({ iteration: o.unit.iteration, kind: "train", update: o.unit.id, ...m });
      o.pool.advance(checkpoint, step, TRAINER);
      prunePoints(o.checkpointDir, step);
      return record;
    } catch (err) {
      if (!(err instanceof PassAbandoned || err instanceof WorkerRestartedError)) throw err;
    }
    o.log(`${o.label}: trainer restarted inside the update; taking it up again from its newest resumable point or its start`);
  }
}

function batchesOf(o: SftUpdateOptions): string[][] {
  const order: string[] = [];
  for (let e = 0; e < o.hyper.epochs; e++) order.push(...shuffled(o.exampleIds, o.seed + e));
  const out: string[][] = [];
  for (let i = 0; i < order.length; i += o.hyper.batch_size) out.push(order.slice(i, i + o.hyper.batch_size));
  return out;
}

async function runSteps(
  o: SftUpdateOptions, batches: string[][], start: number, guard: () => void, from: PassStart, points: UpdatePoints,
): Promise<Record<string, number>[]> {
  const h = o.hyper;
  const steps: Record<string, number>[] = [...from.steps];
  const progress = new Progress(`${o.label} (${batches.length} steps)`, batches.length);
  if (from.done > 0) progress.tick(from.done, "done before a restart");
  for (let b = from.done; b < batches.length; b++) {
    const ids = batches[b]!;
    const examples = await o.load(ids);
    const res = await o.pool.run(TRAINER, (rpc) => {
      guard();
      const hyper = { learningRate: h.learning_rate, microBatchSize: h.micro_batch_size, maxTokensPerMicroBatch: h.max_tokens_per_micro_batch ?? 0, maxGradNorm: h.max_grad_norm, weightDecay: h.weight_decay, ...o.hyperAt?.(start + b + 1) };
      return rpc.trainStep({ stepId: `${o.unit.id}/step-${b}`, loss: LossKind.SFT, examples, hyper }, CALL_DEADLINE_MS);
    });
    const metrics: Record<string, number> = { ...res.metrics, step: start + b + 1 };
    steps.push(metrics); // written to metrics.jsonl once the update is journaled (an abandoned pass never is)
    progress.tick(1, `loss ${(metrics.loss ?? NaN).toFixed(4)}`);
    if (points.due(b + 1)) await points.save(b + 1, steps);
  }
  progress.finish();
  return steps;
}
