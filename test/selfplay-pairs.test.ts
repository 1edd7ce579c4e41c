import { describe, expect, it } from "vitest";
import { passRatePairs, type PromptGroup } from "../src/selfplay/pairs.js";
import { arithmeticSplits } from "../src/data/problems.js";
import { pairedComparison } from "../src/eval/stats.js";

const group = (id: string, passed: boolean[], texts?: string[]): PromptGroup => ({
  promptId: id,
  samples: passed.map((p, i) => ({ id: `${id}/s${i}`, text: texts?.[i] ?? `${id}-${i}`, passed: p })),
});
const opts = { min_pass_rate: 0, max_pass_rate: 0.5 };

describe("PromptCoT 2.0 pair building", () => {
  it("keeps prompts with 0 < pass rate <= 1/2 only", () => {
    const pairs = passRatePairs(
      [group("none", [false, false, false, false]), group("quarter", [true, false, false, false]), group("half", [true, true, false, false]),
        group("most", [true, true, true, false]), group("all", [true, true, true, true])],
      opts,
    );
    expect(pairs.map((p) => p.prompt_id)).toEqual(["quarter", "half", "half"]);
  });

  it("pairs n = min(#chosen, #rejected) after de-duplicating by text, in sample order", () => {
    const pairs = passRatePairs([group("p", [true, false, false, true, false, false, false, false], ["A", "x", "x", "B", "y", "y", "y", "z"])], opts);
    expect(pairs.map((p) => [p.chosen, p.rejected])).toEqual([["p/s0", "p/s1"], ["p/s3", "p/s4"]]);
    const dup = passRatePairs([group("q", [true, true, false, false], ["A", "A", "x", "y"])], opts);
    expect(dup).toHaveLength(1);
  });

  it("respects max_pairs_per_prompt", () => {
    expect(passRatePairs([group("p", [true, true, false, false])], { ...opts, max_pairs_per_prompt: 1 })).toHaveLength(1);
  });
});

describe("data and statistics", () => {
  it("arithmetic splits are seeded, disjoint and answerable", () => {
    const a = arithmeticSplits(7, 30, 30);
    expect(arithmeticSplits(7, 30, 30)).toEqual(a);
    const train = new Set(a.train.map((p) => p.prompt));
    expect(a.heldout.some((p) => train.has(p.prompt))).toBe(false);
    const m = /^What is (\d+) \+ (\d+)\?$/.exec(a.train[0]!.prompt)!;
    expect(Number(a.train[0]!.answer)).toBe(Number(m[1]) + Number(m[2]));
  });

  it("paired comparison flags a consistent gain and not a null one", () => {
    const before = Array.from({ length: 40 }, (_, i) => (i % 2 ? 0.25 : 0.5));
    expect(pairedComparison(before, before.map((x) => x + 0.25)).significant).toBe(true);
    const noisy = before.map((x, i) => (i % 4 < 2 ? x + 0.25 : x - 0.25));
    const c = pairedComparison(before, noisy);
    expect(c.significant).toBe(false);
    expect(c.improved).toBe(20);
  });
});
