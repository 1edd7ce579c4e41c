// A small GRPO run (tiny random model, 2 iterations, KL on) where the trainer reads prompts, completions
// and behaviour log-probs from the shards (the default for local workers) against the same run with
// PROMPTCOT_WORKER_READS=inline: the same units and the same final weights and optimizer state.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { compareCheckpoints, lastCheckpoint, normalizedUnit, shardReadLines, startRun, units, VALIDITY_OFF_FOR_RANDOM_MODEL } from "./helpers/run-harness.js";

const EXP = "test/fixtures/tiny-selfplay.yaml";
const ARGS = [
  "--set", "train.algorithm=grpo", "--set", "train.grpo.reward=grpo-reward-by-length.ts#shortIsRight", "--set", 'rollout.stop=["ing"]',
  "--set", "iterations=2", "--set", "eval_every=0", "--set", "train.grpo.prompts_per_iteration=4", "--set", "train.grpo.kl_coef=0.05",
  "--set", "train.batch_size=8", "--set", "train.learning_rate=0.001", ...VALIDITY_OFF_FOR_RANDOM_MODEL,
];
const root = mkdtempSync(join(tmpdir(), "pcot-reads-run-"));

async function runWith(reads: "auto" | "inline"): Promise<string> {
  const dir = join(root, reads);
  const r = await startRun([EXP, ...ARGS, "--run-dir", dir], { PROMPTCOT_WORKER_READS: reads }).done;
  expect(r.code, r.out).toBe(0);
  return dir;
}

describe("GRPO with the trainer reading shards vs token ids inline", () => {
  it("gives the same units and final weights", async () => {
    const [refs, inline] = await Promise.all([runWith("auto"), runWith("inline")]);
    expect(shardReadLines(inline)).toEqual([]);
    expect(shardReadLines(refs).filter((l) => l.includes("train step:")).length).toBeGreaterThan(0);
    expect(shardReadLines(refs).filter((l) => l.includes("score:")).length).toBeGreaterThan(0);
    const [a, b] = [units(refs), units(inline)];
    expect([...a.keys()]).toEqual([...b.keys()]);
    expect([...a.keys()].some((id) => id.includes("/old/"))).toBe(true);
    for (const [id, result] of b) expect(normalizedUnit(a.get(id)!, refs), id).toEqual(normalizedUnit(result, inline));
    const cmp = compareCheckpoints(lastCheckpoint(inline), lastCheckpoint(refs));
    for (const part of [cmp.weights, cmp.optimizer]) {
      expect(part.mismatch).toBeUndefined();
      expect(part.tensors).toBeGreaterThan(0);
      expect(part.max_abs_diff, part.worst_key).toBe(0);
    }
  }, 900_000);
});
