// The placement planner's trainer-memory formulas against a measured DPO step of the real worker backend.
//
//   npx tsx bench/planner-memory.ts [--tokens 4096] [--device cpu|cuda]
//
// bench/worker-memory.py measures what one DPO step adds on top of the loaded model (tiny-random-qwen3 with a
// 151,936-token vocabulary, float32, one pair of two rows of --tokens tokens, log-probs in 256-token chunks,
// blocks checkpointed): gradients, AdamW's moments (allocated at the first step), activations and logits. The
// planner predicts the same parts for the same shape (trainerMemory, one rank, no reserve). One step, one
// shape, dominated by the logits chunk: a check that the formulas are of the right size, not a calibration.
import { spawnSync } from "node:child_process";
import { MODEL_PRESETS, paramCounts } from "../src/cluster/model-shape.js";
import { trainerMemory } from "../src/cluster/planner.js";
import { pythonPath } from "../src/cluster/python-env.js";

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const tokens = Number(arg("--tokens", "4096"));
const device = arg("--device", "cpu");
const vocab = 151_936;
const MiB = 2 ** 20;

const shape = { ...MODEL_PRESETS["tiny-random-qwen3"]!, vocab, from: "bench" };
// Two rows (chosen, rejected), each the 256-token prompt and its completion: `tokens` tokens per row.
const m = trainerMemory(shape, paramCounts(shape), { dtypeBytes: 4, genContext: 1, genConcurrency: 1, trainTokens: 2 * tokens }, 1);
const predicted = m.grads + m.optimizer + m.activations + m.logits;

const run = spawnSync(
  pythonPath(),
  ["bench/worker-memory.py", "--tokens", String(tokens), "--vocab", String(vocab), "--repeats", "1", "--device", device,
    "--skip", "old:score", "--skip", "new:score", "--skip", "old:dpo_step"],
  { encoding: "utf8" },
);
const line = run.stdout.split("\n").find((l) => l.startsWith("dpo_step   new"));
if (run.status !== 0 || !line) {
  process.stderr.write(`bench/worker-memory.py failed (exit ${run.status}):\n${run.stderr.slice(-2000)}\n`);
  process.exit(1);
}
const measured = Number(line.split(/\s+/)[2]);
const parts = [["gradients", m.grads], ["AdamW moments", m.optimizer], ["activations", m.activations], ["logits chunk", m.logits]] as const;
process.stdout.write(
  `DPO step, tiny-random-qwen3 with vocab ${vocab}, 2 rows × ${tokens} tokens, float32, ${device}\n` +
    `planner:  ${(predicted / MiB).toFixed(0)} MiB (${parts.map(([k, v]) => `${k} ${(v / MiB).toFixed(0)}`).join(", ")})\n` +
    `measured: ${measured.toFixed(0)} MiB added by the step (bench/worker-memory.py)\n` +
    `planner / measured: ${(predicted / MiB / measured).toFixed(2)}\n`,
);
