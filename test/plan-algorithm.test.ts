import { describe, expect, it } from "vitest";
import { loadExperiment } from "../src/config/load.js";
import { planText } from "../src/cli/run.js";

// The dry-run plan names what each algorithm really does: GRPO has no pairs, no reference log-probs and no β.
describe("dry-run plan per train.algorithm", () => {
  it("quickstart with DPO: pairs, reference log-probs, β", () => {
    const { config } = loadExperiment("experiments/quickstart.yaml");
    const plan = planText(config, "/tmp/r");
    expect(plan).toContain("→ pairs (pass rate in (0, 0.5]) → reference log-probs → DPO (batch 8, lr 0.00003, β 0.1)");
  });

  it("quickstart --set train.algorithm=grpo: groups, behaviour log-probs, clip range", () => {
    const { config } = loadExperiment("experiments/quickstart.yaml", ["train.algorithm=grpo", "train.grpo.kl_coef=0.01", "train.grpo.clip_low=0.3"]);
    const plan = planText(config, "/tmp/r");
    expect(plan).toContain(
      "→ groups (mean_std advantages, dynamic sampling, overlong filter) → behaviour log-probs (T=0.8) → " +
        "KL reference log-probs → GRPO (batch 8 samples, lr 0.00003, clip [0.7, 1.28], token-level, KL k3 × 0.01 in the loss to the base model (frozen)) → checkpoint",
    );
    expect(plan).not.toContain("pairs (pass rate");
    expect(plan).not.toContain("β");
  });
});
