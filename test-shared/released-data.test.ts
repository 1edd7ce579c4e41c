// PromptCoT's released benchmark files (MIT; chat template baked into the prompts): every row loads with the
// template and the boxed instruction gone, and decontamination catches a reworded GSM8K test problem.
import { describe, expect, it } from "vitest";
import { loadBenchmark } from "../src/eval/benchmarks.js";
import { Deduplicator, loadBenchmarks } from "../src/synthesis/dedup/index.js";
import { sharedDataFile } from "./shared-data.js";

const EXPECTED_ROWS: Record<string, number> = { aime24: 30, aime25: 30, hmmt25: 30, math500: 500, gsm8k: 1319, codeforces: 408 };

describe("released benchmarks", () => {
  it("load every row with the template and the boxed instruction gone", () => {
    for (const [name, rows] of Object.entries(EXPECTED_ROWS)) {
      const b = loadBenchmark(sharedDataFile(`benchmarks/${name}.jsonl`));
      expect(b.problems.length + b.skipped.length, name).toBe(rows);
      for (const p of b.problems) {
        expect(p.text, `${name} ${p.id}`).not.toMatch(/<\|im_|<｜|\\boxed\{\}|<think>/);
        if (p.kind === "math") expect(p.answer, `${name} ${p.id}`).toBeTruthy();
        else expect(p.tests!.length, `${name} ${p.id}`).toBeGreaterThan(0);
      }
      // AIME answers are integers (aime25's row 19 is released as "336^\circ", so only aime24 is checked)
      if (name === "aime24") expect(b.problems.filter((p) => !/^\d+$/.test(p.answer!))).toEqual([]);
    }
    const gsm = loadBenchmark(sharedDataFile("benchmarks/gsm8k.jsonl"));
    expect(gsm.problems[0]).toMatchObject({ id: "0", answer: "18", text: expect.stringMatching(/^Janet’s ducks lay 16 eggs/) });
  });

  it("decontamination catches a reworded GSM8K test problem in the released file (template baked in)", async () => {
    const index = await loadBenchmarks([sharedDataFile("benchmarks/gsm8k.jsonl")]);
    const d = new Deduplicator({ benchmarks: index });
    const reworded = "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four. She sells what is left at the market for $2 per egg. How much does she earn daily?";
    expect(d.check(reworded, { index: 0, line: 1 })).toMatchObject({ keep: false, reason: "contaminated", match: "ngram", item: { line: 1, id: "0" } });
    expect(d.check("Janet's cats sleep sixteen hours per day; how many hours are they awake in a week?", { index: 1, line: 2 })).toEqual({ keep: true });
  });
});
