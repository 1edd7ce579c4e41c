// Resumable points inside an update (train.resume_every_steps). Every N optimizer steps the trainer saves its
// whole state (weights, fp32 masters, optimizer, every RNG, weights_version) with SaveCheckpoint into
// <checkpoints>/points/step-G, written to a temp dir and renamed; only then does the journal record "steps
// 1..k of this update are done" (a unit `<update>/point/<k>` holding the metrics rows since the previous
// point). The controller's side of a step is a pure function of the update's plan and the global step (the
// data order is a seeded shuffle, the learning rate follows the journaled global step), so an update that goes
// on from step k+1 of a point ends with the weights of one that never stopped, bit for bit.
//
// Where a pass continues: a trainer restart inside the update brings the trainer back at the newest point
// (the pool's holdPoint); a controller restart finds the newest point of the unfinished update here and loads
// it into the trainer (LoadCheckpoint with the optimizer). Only the newest point is kept on disk; the others
// and, once the update is journaled, the whole update's points are removed.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { status as GrpcStatus } from "@grpc/grpc-js";
import type { WorkerPool } from "../cluster/pool.js";
import type { Journal } from "../experiment/journal.js";

const CALL_DEADLINE_MS = 60 * 60 * 1000;
const TRAINER = 0; // worker index that holds the optimizer
export const POINT_STAGE = "update_point";

export interface PointRecord {
  /** The update's plan identity (planIdentity): a point of another plan is never loaded. */
  plan: string;
  /** Steps 1..steps_done of the update are in this point. */
  steps_done: number;
  global_step: number;
  checkpoint: string;
  /** Metrics rows of the steps since the previous point: the update's rows are every point's, in order. */
  steps: Record<string, number>[];
}

/** Where a pass starts: steps done so far and their metrics rows (0 and [] at the update's start). */
export interface PassStart {
  done: number;
  steps: Record<string, number>[];
  checkpoint?: string;
}

export interface PointsOptions {
  journal: Journal;
  pool: WorkerPool;
  log: (msg: string) => void;
  /** The update's journal unit; its points are `<id>/point/<k>`. */
  unit: { id: string; iteration: number };
  /** Save a point after every `every` steps; 0 = never. */
  every: number;
  /** The role's checkpoint directory; points go to `<checkpointDir>/points/step-G`. */
  checkpointDir: string;
  /** The global step before the update's first step, and its number of steps. */
  startStep: number;
  steps: number;
  /** planIdentity of everything a step depends on besides the trainer's state; called only where points
   *  exist or are written (it hashes every batch). */
  plan: () => string;
}

/** A hash of an update's plan (batches, loss, hyperparameters, first global step, ...), fed part by part. */
export function planIdentity(parts: Iterable<unknown>): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(JSON.stringify(p) ?? "undefined").update("\n");
  return h.digest("hex").slice(0, 32);
}

export const pointsDir = (checkpointDir: string) => join(checkpointDir, "points");

/**
 * The journaled points of an update that can be continued from, oldest first: those of `plan` whose
 * steps run on without a gap from step 1. A point of another plan, and every point after it, is left out.
 */
export function usablePoints(rows: readonly { id: string; result: PointRecord }[], unitId: string, plan: string): PointRecord[] {
  const mine = rows.filter((r) => r.id.startsWith(`${unitId}/point/`)).map((r) => r.result).sort((a, b) => a.steps_done - b.steps_done);
  const out: PointRecord[] = [];
  for (const p of mine) {
    const before = out.at(-1)?.steps_done ?? 0;
    if (p.plan !== plan || p.steps.length !== p.steps_done - before) break;
    out.push(p);
  }
  return out;
}

export class UpdatePoints {
  private savedThrough = 0;
  private passes = 0;
  private planId: string | undefined;

  constructor(private readonly o: PointsOptions) {}

  private plan(): string {
    return (this.planId ??= this.o.plan());
  }

  /** A point is due after step `done` (1-based) when it is a multiple of `every` and not the update's last. */
  due(done: number): boolean {
    return this.o.every > 0 && done % this.o.every === 0 && done < this.o.steps;
  }

  /**
   * Where this pass starts, with the trainer brought there: the newest usable point whose directory is on
   * disk, or the update's start. The trainer holds the point already after a pool restart; after a controller
   * restart it holds the update's start and the point is loaded into it.
   */
  async resume(): Promise<PassStart> {
    const { journal, pool, unit } = this.o;
    const rows = journal.list<PointRecord>(POINT_STAGE, unit.iteration).filter((r) => r.id.startsWith(`${unit.id}/point/`));
    const points = rows.length > 0 ? usablePoints(rows, unit.id, this.plan()) : [];
    const ignored = rows.length - points.length;
    if (ignored > 0) this.o.log(`${unit.id}: ${ignored} journaled resumable point(s) belong to another plan of this update (changed batches or hyperparameters); not loaded`);
    const last = points.at(-1);
    const held = pool.workers[TRAINER]!.heldStep;
    const first = this.passes++ === 0;
    if (!last || !existsSync(last.checkpoint)) {
      if (last) this.o.log(`${unit.id}: resumable point ${last.checkpoint} is gone; the update starts over`);
      if (!first || last) this.expectHeld(held, this.o.startStep, "the update's start"); // after a restart: where did it come back?
      this.savedThrough = 0;
      return { done: 0, steps: [] };
    }
    if (held !== last.global_step) {
      this.expectHeld(held, this.o.startStep, `the update's start or its point at step ${last.global_step}`);
      const res = await pool.run(TRAINER, (rpc) => rpc.loadCheckpoint({ path: last.checkpoint, loadOptimizer: true }, CALL_DEADLINE_MS), { onRestart: "abandon" });
      if (res.weightsVersion !== last.global_step) {
        throw new Error(`resumable point ${last.checkpoint} holds weights_version ${res.weightsVersion}, its journal row says step ${last.global_step}; was it replaced?`);
      }
      pool.holdPoint(TRAINER, last.checkpoint, last.global_step);
    }
    this.savedThrough = last.steps_done;
    return { done: last.steps_done, steps: points.flatMap((p) => p.steps), checkpoint: last.checkpoint };
  }

  /** Saves the trainer's state after step `done` (durable first, journaled second), then drops older points. */
  async save(done: number, steps: Record<string, number>[]): Promise<void> {
    const { journal, pool, unit } = this.o;
    const global = this.o.startStep + done;
    const path = join(pointsDir(this.o.checkpointDir), `step-${global}`);
    await saveTrainerCheckpoint(pool, path);
    const record: PointRecord = { plan: this.plan(), steps_done: done, global_step: global, checkpoint: path, steps: steps.slice(this.savedThrough, done) };
    journal.record([{ id: `${unit.id}/point/${String(done).padStart(6, "0")}`, stage: POINT_STAGE, iteration: unit.iteration, result: record }]);
    pool.holdPoint(TRAINER, path, global);
    this.savedThrough = done;
    prunePoints(this.o.checkpointDir, global - 1);
  }

  private expectHeld(held: number, want: number, what: string): void {
    if (held !== want) {
      throw new Error(`internal error: the trainer holds step ${held}, but ${this.o.unit.id} continues from ${what} (step ${want}); refusing to train on other weights`);
    }
  }
}

/** Removes points (and temp dirs of interrupted point saves) at global steps up to `upTo`. */
export function prunePoints(checkpointDir: string, upTo: number): void {
  const dir = pointsDir(checkpointDir);
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) {
    const m = /^step-(\d+)(\.tmp-\d+)?$/.exec(f);
    if (m && Number(m[1]) <= upTo) rmSync(join(dir, f), { recursive: true, force: true });
  }
  if (readdirSync(dir).length === 0) rmSync(dir, { recursive: true, force: true });
}

/** SaveCheckpoint of the trainer's weights and optimizer at `path`; a dead trainer's leftovers there (the dir
 *  without its journal row, temp dirs) go first. A trainer restart abandons the save (WorkerRestartedError). */
export async function saveTrainerCheckpoint(pool: WorkerPool, path: string): Promise<void> {
  const parent = dirname(path);
  const stale = existsSync(parent) ? readdirSync(parent).filter((f) => f.startsWith(`${basename(path)}.tmp-`)) : [];
  for (const f of [path, ...stale.map((f) => join(parent, f))]) rmSync(f, { recursive: true, force: true });
  let calls = 0;
  await pool.run(
    TRAINER,
    async (rpc) => {
      const retried = calls++ > 0;
      try {
        await rpc.saveCheckpoint({ path, includeOptimizer: true }, CALL_DEADLINE_MS);
      } catch (err) {
        // A retry on the same live worker (no restart in between, or the pass would have been abandoned)
        // whose first attempt finished after all: the checkpoint is complete (written to a temp dir, renamed).
        if (!(retried && (err as { code?: number }).code === GrpcStatus.ALREADY_EXISTS)) throw err;
      }
    },
    { onRestart: "abandon" },
  );
}
