// The deterministic sample of test/data-plane.test.ts, shared with its child writer process.
import type { UnitRow } from "../src/experiment/journal.js";

export function sample(i: number): UnitRow {
  const p = i % 4;
  return {
    id: `it001/rollout/t${String(p).padStart(4, "0")}/${String(i).padStart(5, "0")}`,
    stage: "rollout",
    iteration: 1,
    result: {
      prompt_id: `t${p}`, sample: i, seed: 1000 + i,
      text: `sample ${i}: ${"the answer is \\boxed{" + i + "} ".repeat(1 + (i % 7))}ünï`,
      token_ids: Array.from({ length: 20 + (i % 13) }, (_, k) => (k * 7919 + i) % 151_000),
      prompt_token_ids: [1, 2, 3, 100_000 + p],
      finish_reason: i % 5 === 0 ? "length" : "stop",
      prompt_opens_think: i % 2 === 0,
    },
  };
}
