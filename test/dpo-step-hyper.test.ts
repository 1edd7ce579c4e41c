// What each TrainStep of an update asks the trainer for, from the config (src/train/dpo.ts stepHyper): the
// update's own values, the schedule's learning rate, and train.*'s shared ones, among them how a DPO pair runs.
import { describe, expect, it } from "vitest";
import { loadExperiment } from "../src/config/load.js";
import { stepHyper } from "../src/train/dpo.js";

const cfgOf = (...sets: string[]) => loadExperiment("experiments/quickstart.yaml", sets).config;

describe("a TrainStep's hyperparameters", () => {
  it("carry train.dpo_pair_passes (joint by default, split when set) with the shared micro-batch settings", () => {
    const joint = stepHyper(cfgOf(), { beta: 0.3 }, 1);
    expect(joint).toMatchObject({ beta: 0.3, dpoPairPasses: "joint", microBatchSize: cfgOf().train.micro_batch_size });
    const split = stepHyper(cfgOf("train.dpo_pair_passes=split", "train.max_tokens_per_micro_batch=4096"), {}, 1);
    expect(split).toMatchObject({ dpoPairPasses: "split", maxTokensPerMicroBatch: 4096 });
  });

  it("refuses an unknown mode at load, naming the key", () => {
    expect(() => cfgOf("train.dpo_pair_passes=halves")).toThrow(expect.objectContaining({
      keyPath: "train.dpo_pair_passes", message: expect.stringMatching(/expected one of "joint"\|"split"/),
    }));
  });
});
