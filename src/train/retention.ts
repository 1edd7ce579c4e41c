// Checkpoint retention: checkpoints.keep_last and checkpoints.keep_best. A pure function decides what to
// delete; the run applies it after each update and eval. It never deletes the newest journaled update's
// checkpoint (where a resume, a restarted worker and the next sync start) nor the best by the metric.
import { existsSync, rmSync } from "node:fs";
import type { RunContext } from "../experiment/context.js";
import type { Journal } from "../experiment/journal.js";
import { summarizeRecords, type EvalRecord, type EvalSummary } from "../eval/heldout.js";

export interface CheckpointInfo {
  iteration: number;
  step: number;
  path: string;
  /** The keep_best metric of the eval of these weights; absent when they were not evaluated. */
  metric?: number;
}

export interface RetentionPolicy {
  /** 0 = keep all. */
  keep_last: number;
  keep_best?: { metric: string; mode: "max" | "min" };
}

/** The checkpoints to delete: all but the newest keep_last, the newest, and the best by metric. */
export function checkpointsToDelete(ckpts: readonly CheckpointInfo[], policy: RetentionPolicy): CheckpointInfo[] {
  if (policy.keep_last <= 0 || ckpts.length === 0) return [];
  const byStep = [...ckpts].sort((a, b) => a.step - b.step);
  const keep = new Set(byStep.slice(-Math.max(1, policy.keep_last)).map((c) => c.step));
  const best = policy.keep_best ? bestOf(byStep, policy.keep_best.mode) : undefined;
  if (best) keep.add(best.step);
  return byStep.filter((c) => !keep.has(c.step));
}

/** The best evaluated checkpoint; on a tie the newer one (it had more training for the same score). */
export function bestOf(ckpts: readonly CheckpointInfo[], mode: "max" | "min"): CheckpointInfo | undefined {
  let best: CheckpointInfo | undefined;
  for (const c of ckpts) {
    if (c.metric === undefined || Number.isNaN(c.metric)) continue;
    const better = !best || (mode === "max" ? c.metric >= best.metric! : c.metric <= best.metric!);
    if (better) best = c;
  }
  return best;
}

/** Every journaled update's checkpoint, with its eval's metric where that iteration was evaluated. */
export function journaledCheckpoints(journal: Journal, metricOf: (iteration: number) => number | undefined): CheckpointInfo[] {
  const iterations = journal.countsByStage().filter((r) => r.stage === "update").map((r) => r.iteration);
  return iterations.flatMap((it) =>
    journal
      .list<{ checkpoint: string; global_step: number }>("update", it)
      .map((u) => ({ iteration: it, step: u.result.global_step, path: u.result.checkpoint, metric: metricOf(it) })),
  );
}

/** A metric of an eval summary: avg_at_k (the report's score) or pass_at_K. */
export function metricValue(summary: EvalSummary, metric: string): number {
  if (metric === "avg_at_k") return summary.score;
  const m = /^pass_at_(\d+)$/.exec(metric);
  const p = m ? summary.pass_at.find((x) => x.k === Number(m[1])) : undefined;
  if (!p) throw new Error(`checkpoints.keep_best.metric '${metric}': use avg_at_k or pass_at_K for a reported K (${summary.pass_at.map((x) => `pass_at_${x.k}`).join(", ")})`);
  return p.value;
}

/** Applies the policy to the run's checkpoints (idempotent: safe to call again after a crash). */
export function applyRetention(ctx: RunContext): void {
  const policy = ctx.cfg.checkpoints;
  if (policy.keep_last <= 0) return;
  const metricOf = (it: number): number | undefined => {
    if (!policy.keep_best) return undefined;
    const records = ctx.journal.list<EvalRecord>("eval", it).map((r) => r.result);
    if (records.length < ctx.problems.heldout.length * ctx.cfg.eval.samples_per_prompt) return undefined; // not (fully) evaluated
    const summary = summarizeRecords(records, ctx.problems.heldout.map((p) => p.id), ctx.cfg.eval.samples_per_prompt, it, ctx.cfg.seed);
    return metricValue(summary, policy.keep_best.metric);
  };
  for (const c of checkpointsToDelete(journaledCheckpoints(ctx.journal, metricOf), policy)) {
    if (!existsSync(c.path)) continue;
    rmSync(c.path, { recursive: true, force: true });
    ctx.journal.event("checkpoint_deleted", { step: c.step, path: c.path, reason: "retention" });
    ctx.log(`deleted checkpoint step-${c.step} (checkpoints.keep_last ${policy.keep_last}${policy.keep_best ? `, keep_best ${policy.keep_best.metric}` : ""})`);
  }
}
