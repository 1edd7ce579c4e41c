// Paired evals: every eval draws the same per-sample seeds, so before/after differ only by the weights;
// rollouts draw fresh seeds each iteration. Unit ids always carry the iteration.
import { describe, expect, it } from "vitest";
import type { Sampling } from "../src/config/schema.js";
import type { Problem } from "../src/data/problems.js";
import type { RunContext } from "../src/experiment/context.js";
import { unitId } from "../src/experiment/ids.js";
import { sampleSeeds } from "../src/rollout/generate-stage.js";

const ctx = { cfg: { seed: 5 } } as unknown as RunContext;
const sampling = { samples_per_prompt: 4 } as Sampling;
const p = { id: "p007" } as Problem;

describe("sample seeds", () => {
  it("paired seeds are the same at every iteration, distinct per sample and problem", () => {
    const at = (iteration: number) => sampleSeeds(ctx, { stage: "eval", iteration, sampling, pairedSeeds: true }, p);
    expect(at(0)).toEqual(at(3));
    expect(new Set(at(0)).size).toBe(4);
    expect(sampleSeeds(ctx, { stage: "eval", iteration: 0, sampling, pairedSeeds: true }, { id: "p008" } as Problem)).not.toEqual(at(0));
    const other = { cfg: { seed: 6 } } as unknown as RunContext;
    expect(sampleSeeds(other, { stage: "eval", iteration: 0, sampling, pairedSeeds: true }, p)).not.toEqual(at(0));
  });
  it("unpaired (rollout) seeds change with the iteration", () => {
    const at = (iteration: number) => sampleSeeds(ctx, { stage: "rollout", iteration, sampling }, p);
    expect(at(1)).not.toEqual(at(2));
  });
  it("unit ids keep the iteration either way", () => {
    expect(unitId(0, "eval", p.id, 1)).not.toBe(unitId(1, "eval", p.id, 1));
  });
});
