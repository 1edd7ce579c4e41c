// A journaled SFT update: optimizer steps over a set of examples, then a checkpoint, recorded as one unit
// after the checkpoint is on disk. A crash mid-update redoes it from the update's starting checkpoint.
// A trainer restart inside the update abandons the pass (the restarted worker holds the starting weights,
// so continuing would train the rest of the pass on the wrong weights) and redoes it from the start. The
// check sits inside each call: when the pool reruns a call on a restarted worker, the call refuses to run
// (nothing is applied to the fresh weights) and the whole pass starts over.
class PassAbandoned extends Error {
  constructor() {
    super("the trainer restarted inside the update");
  }
}
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { WorkerPool } from "../cluster/pool.js";
import { shuffled } from "../experiment/ids.js";
import type { Journal } from "../experiment/journal.js";
import { LossKind, type TrainExample, type TrainHyper } from "../rpc/gen/promptcot_worker.js";
import type { MetricsSink } from "../telemetry/metrics.js";
import { Progress } from "../telemetry/progress.js";

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
}

/** Runs (or returns the journaled result of) one SFT update and advances the pool to its checkpoint. */
export async function sftUpdate(o: SftUpdateOptions): Promise<SftUpdateRecord> {
  const done = o.journal.get<SftUpdateRecord>(o.unit.id);
  if (done) return done;
  if (o.exampleIds.length === 0) throw new Error(`${o.label}: no training examples (unit ${o.unit.id})`);
  const batches = o.batches ?? batchesOf(o);
  const start = o.pool.checkpointStep;
  const step = start + batches.length;
  const checkpoint = join(o.checkpointDir, `step-${step}`);
  const trainer = o.pool.workers[TRAINER]!;
  for (let redone = 0; ; redone++) {
    const restartsBefore = trainer.restarts;
    const guard = () => {
      if (trainer.restarts !== restartsBefore) throw new PassAbandoned();
    };
    try {
      const steps = await runSteps(o, batches, start, guard);
      // A checkpoint without its journal row is an orphan of a crash between the two; it is redone.
      if (existsSync(checkpoint)) rmSync(checkpoint, { recursive: true, force: true });
      await o.pool.run(TRAINER, (rpc) => (guard(), rpc.saveCheckpoint({ path: checkpoint, includeOptimizer: true }, CALL_DEADLINE_MS)));
      guard();
      const record: SftUpdateRecord = { steps, checkpoint, global_step: step, examples: o.exampleIds.length, redone };
      o.journal.record([{ ...o.unit, result: record }]);
      // Only the pass that counted reaches metrics.jsonl (and TensorBoard): one value per step.
      for (const m of steps) o.metrics?.write({ iteration: o.unit.iteration, kind: "train", update: o.unit.id, ...m });
      o.pool.advance(checkpoint, step, TRAINER);
      return record;
    } catch (err) {
      if (!(err instanceof PassAbandoned)) throw err;
    }
    o.log(`${o.label}: trainer restarted inside the update; redoing it from ${o.pool.checkpoint ?? "the base model"}`);
  }
}

function batchesOf(o: SftUpdateOptions): string[][] {
  const order: string[] = [];
  for (let e = 0; e < o.hyper.epochs; e++) order.push(...shuffled(o.exampleIds, o.seed + e));
  const out: string[][] = [];
  for (let i = 0; i < order.length; i += o.hyper.batch_size) out.push(order.slice(i, i + o.hyper.batch_size));
  return out;
}

async function runSteps(o: SftUpdateOptions, batches: string[][], start: number, guard: () => void): Promise<Record<string, number>[]> {
  const h = o.hyper;
  const steps: Record<string, number>[] = [];
  const progress = new Progress(`${o.label} (${batches.length} steps)`, batches.length);
  for (const [b, ids] of batches.entries()) {
    const examples = await o.load(ids);
    const res = await o.pool.run(TRAINER, (rpc) => {
      guard();
      const hyper = { learningRate: h.learning_rate, microBatchSize: h.micro_batch_size, maxTokensPerMicroBatch: h.max_tokens_per_micro_batch ?? 0, maxGradNorm: h.max_grad_norm, weightDecay: h.weight_decay, ...o.hyperAt?.(start + b + 1) };
      return rpc.trainStep({ stepId: `${o.unit.id}/step-${b}`, loss: LossKind.SFT, examples, hyper }, CALL_DEADLINE_MS);
    });
    const metrics: Record<string, number> = { ...res.metrics, step: start + b + 1 };
    steps.push(metrics); // written to metrics.jsonl once the update is journaled (an abandoned pass never is)
    progress.tick(1, `loss ${(metrics.loss ?? NaN).toFixed(4)}`);
  }
  progress.finish();
  return steps;
}
