// The learning-rate schedule, computed in the controller for each global step and sent with the step as
// TrainHyper.learning_rate. Its whole state is the global step, which the journal holds (the update's
// record), so a resumed run continues the schedule exactly where the journaled updates left it.
import { ConfigError } from "../config/errors.js";
import type { Experiment } from "../config/schema.js";
import type { TrainHyper } from "../rpc/gen/promptcot_worker.js";

export interface LrSchedule {
  kind: "constant" | "cosine";
  warmup_steps: number;
  /** 0 = derived by the caller (known step counts only). */
  total_steps: number;
  /** The cosine's floor as a fraction of the peak. */
  min_lr_ratio: number;
}

/**
 * The learning rate of global step `step` (1-based: the first optimizer step is 1). Linear warm-up from
 * peak/warmup to the peak over `warmup_steps`; then the peak (constant) or a half cosine from the peak to
 * peak × min_lr_ratio at `totalSteps`, staying at the floor after it.
 */
export function learningRateAt(step: number, peak: number, s: LrSchedule, totalSteps: number): number {
  if (!Number.isInteger(step) || step < 1) throw new Error(`learningRateAt: step must be an integer >= 1, got ${step}`);
  if (step <= s.warmup_steps) return (peak * step) / s.warmup_steps;
  if (s.kind === "constant") return peak;
  const span = Math.max(1, totalSteps - s.warmup_steps);
  const progress = Math.min(1, (step - s.warmup_steps) / span);
  return peak * (s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + Math.cos(Math.PI * progress)));
}

/**
 * train.lr_schedule.total_steps, or, when it is 0, `derived` (the run's step count where it is known in
 * advance, as for SFT). A cosine without a known length is refused: a self-play iteration's step count
 * depends on how many pairs or groups its rollouts make.
 */
export function totalStepsOf(cfg: Experiment, derived?: number): number {
  const s = cfg.train.lr_schedule;
  if (s.total_steps > 0) return s.total_steps;
  if (s.kind === "constant") return 0;
  if (derived !== undefined) return derived;
  throw new ConfigError(
    `a cosine schedule needs its length: task ${cfg.task} does not know its step count in advance; ` +
      "set it, e.g. to iterations × expected steps per iteration",
    undefined,
    undefined,
    "train.lr_schedule.total_steps",
  );
}

/** The per-step TrainHyper fields the schedule and the optimizer settings own. */
export function optimizerHyper(cfg: Experiment, step: number, totalSteps: number): Pick<TrainHyper, "learningRate" | "adamBeta1" | "adamBeta2" | "adamEps"> {
  const t = cfg.train;
  return {
    learningRate: learningRateAt(step, t.learning_rate, t.lr_schedule, totalSteps),
    adamBeta1: t.adam_beta1,
    adamBeta2: t.adam_beta2,
    adamEps: t.adam_eps,
  };
}
