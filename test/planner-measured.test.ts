// The planner's per-rank trainer memory against real ranks (issue 17 item 7). bench/sharded-memory.py starts
// the trainer as `workers.trainer_ranks` 1, 2 and 4 would (1: the single-rank worker backend; 2 and 4: FSDP2
// ranks over gloo on CPU, meta start, rows read from the safetensors), on a random Qwen3-MoE written as an HF
// directory in fp32, and records each rank's peak RSS at start-up and over two DPO steps (the second has
// AdamW's state). The planner's prediction comes from the real config path (loadExperiment → planExperiment)
// for the same model directory, dtype, rank count and micro-batch.
//
// The baseline is measured, not modelled: each rank first starts and steps a twin of the model a few MB in
// size twice (the first time absorbs what the runtime allocates once per process), then measures the twin a
// second time exactly as the model. Both sides subtract the twin: measured(model) - measured(twin) against
// predicted(model) - predicted(twin), which removes the process's own per-start costs (tokenizer, skeleton)
// and the terms that do not depend on the model's size (the same batch's logits).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { planExperiment } from "../src/cluster/plan-config.js";
import { pythonPath } from "../src/cluster/python-env.js";
import { loadExperiment } from "../src/config/load.js";

const RANKS = [1, 2, 4];
const TOKENS = 32; // per row: a DPO pair is 2 rows of 32 tokens, one micro-batch
const TOLERANCE = 0.25;

interface Peaks {
  start_added: number;
  start_resident: number;
  step_added: number;
}
interface RankRecord extends Peaks {
  world: number;
  rank: number;
  backend: string;
  twin: Peaks;
}

const stepPeak = (p: Peaks) => p.start_resident + p.step_added;

function predicted(dir: string, model: string, ranks: number): { start: number; step: number } {
  const { plan } = planExperiment(loadExperiment(join(dir, "experiment.yaml"), [`model.source=${model}`, `workers.trainer_ranks=${ranks}`]).config);
  return { start: plan.trainerStartup.total, step: plan.trainer.total };
}

describe("the planner's per-rank trainer memory, measured", () => {
  it("the peak rank's start-up and step memory at 1, 2 and 4 ranks is within 25% of the plan", () => {
    const dir = mkdtempSync(join(tmpdir(), "pcot-plan-measured-"));
    const model = join(dir, "model");
    const r = spawnSync("nice", ["-n", "10", pythonPath(), "bench/sharded-memory.py", "--ranks", RANKS.join(","), "--steps", "1",
      "--pairs", "1", "--tokens", String(TOKENS), "--layers", "2", "--experts", "16", "--expert-width", "1024", "--hidden", "256",
      "--model-dir", model, "--warm-up", "--no-old-start", "--json", join(dir, "measured.json")], { encoding: "utf8", timeout: 540_000 });
    expect(r.status, `${r.stdout.slice(-2000)}\n${r.stderr.slice(-3000)}`).toBe(0);
    writeFileSync(join(dir, "experiment.yaml"), [
      "name: plan-measured", "task: selfplay",
      "model: { source: model, dtype: float32, device: cpu }",
      "train: { algorithm: dpo, micro_batch_size: 1 }",
      `parallel: { micro_batch_tokens: ${2 * TOKENS} }`, "",
    ].join("\n"));
    const measured = JSON.parse(readFileSync(join(dir, "measured.json"), "utf8")) as { params: number; ranks: RankRecord[] };
    expect(measured.params).toBeGreaterThan(30e6); // the model's bytes, not the process, are what is compared

    const rows: string[] = [];
    for (const ranks of RANKS) {
      const [m, twin] = [predicted(dir, model, ranks), predicted(dir, `${model}-warm`, ranks)];
      const want = { start: m.start - twin.start, step: m.step - twin.step };
      const recs = measured.ranks.filter((x) => x.world === ranks);
      expect(recs.map((x) => x.backend)).toEqual(Array(ranks).fill(ranks === 1 ? "single" : "sharded"));
      const got = { start: 0, step: 0 };
      for (const rec of recs) {
        const mine = { start: rec.start_added - rec.twin.start_added, step: stepPeak(rec) - stepPeak(rec.twin) };
        rows.push(`ranks ${ranks} rank ${rec.rank}: start ${mib(mine.start)} vs plan ${mib(want.start)} MiB (${(mine.start / want.start).toFixed(2)}), ` +
          `step ${mib(mine.step)} vs plan ${mib(want.step)} MiB (${(mine.step / want.step).toFixed(2)})`);
        got.start = Math.max(got.start, mine.start);
        got.step = Math.max(got.step, mine.step);
      }
      // The group's largest rank: the peak one device must hold, which the plan's per-rank figure is for.
      for (const k of ["start", "step"] as const) {
        expect(Math.abs(got[k] / want[k] - 1), `${k} peak at ${ranks} rank(s):\n${rows.join("\n")}`).toBeLessThanOrEqual(TOLERANCE);
      }
    }
    process.stdout.write(`${rows.join("\n")}\n`);
  }, 600_000);
});

const mib = (b: number) => (b / 2 ** 20).toFixed(0);
