import { describe, expect, it } from "vitest";
import { ExperimentSchema } from "../src/config/schema.js";
import { ConfigError } from "../src/config/errors.js";
import { learningRateAt, optimizerHyper, totalStepsOf, type LrSchedule } from "../src/train/schedule.js";

const sched = (s: Partial<LrSchedule>): LrSchedule => ({ kind: "constant", warmup_steps: 0, total_steps: 0, min_lr_ratio: 0, ...s });

describe("learning-rate schedule (per global step)", () => {
  it("constant without warm-up is the peak at every step", () => {
    expect([1, 2, 1000].map((s) => learningRateAt(s, 1e-5, sched({}), 0))).toEqual([1e-5, 1e-5, 1e-5]);
  });

  it("warms up linearly to the peak at step warmup_steps, then holds (constant)", () => {
    const lr = (s: number) => learningRateAt(s, 4e-4, sched({ warmup_steps: 4 }), 0);
    const want = [1e-4, 2e-4, 3e-4, 4e-4, 4e-4, 4e-4];
    [1, 2, 3, 4, 5, 50].forEach((s, i) => expect(lr(s)).toBeCloseTo(want[i]!, 15));
    expect(lr(4)).toBe(4e-4);
  });

  it("cosine: peak after warm-up, half the range at mid-way, the floor at total_steps and after", () => {
    const s = sched({ kind: "cosine", warmup_steps: 2, min_lr_ratio: 0.1 });
    const lr = (step: number) => learningRateAt(step, 1.0, s, 12);
    expect(lr(1)).toBeCloseTo(0.5, 12);
    expect(lr(2)).toBeCloseTo(1.0, 12);
    expect(lr(7)).toBeCloseTo(0.1 + 0.9 * 0.5, 12); // (7 - 2) / (12 - 2) = 1/2
    expect(lr(12)).toBeCloseTo(0.1, 12);
    expect(lr(40)).toBeCloseTo(0.1, 12);
    for (let step = 3; step <= 12; step++) expect(lr(step)).toBeLessThan(lr(step - 1));
  });

  it("refuses step 0 (steps are 1-based: the first optimizer step is 1)", () => {
    expect(() => learningRateAt(0, 1, sched({}), 0)).toThrow(/>= 1/);
  });

  it("total_steps 0 takes the derived count; a self-play cosine without one is a config error naming the key", () => {
    const cfg = (lr_schedule: object, task = "selfplay") => ExperimentSchema.parse({ name: "x", task, train: { lr_schedule } });
    expect(totalStepsOf(cfg({ kind: "cosine", total_steps: 30 }), 7)).toBe(30);
    expect(totalStepsOf(cfg({ kind: "cosine" }, "sft"), 7)).toBe(7);
    expect(() => totalStepsOf(cfg({ kind: "cosine" }))).toThrow(ConfigError);
    expect(() => totalStepsOf(cfg({ kind: "cosine" }))).toThrow(/cosine schedule needs its length/);
    expect(totalStepsOf(cfg({ kind: "constant" }))).toBe(0);
  });

  it("betas and eps travel with the step's learning rate", () => {
    const cfg = ExperimentSchema.parse({ name: "x", train: { learning_rate: 1e-3, adam_beta1: 0.8, adam_beta2: 0.95, adam_eps: 1e-6, lr_schedule: { warmup_steps: 2 } } });
    expect(optimizerHyper(cfg, 1, 0)).toEqual({ learningRate: 5e-4, adamBeta1: 0.8, adamBeta2: 0.95, adamEps: 1e-6 });
  });
});
