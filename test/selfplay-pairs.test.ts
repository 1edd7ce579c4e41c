import { describe, expect, it } from "vitest";
import { countableGroups, passRatePairs, type PromptGroup, type SampleOutcome } from "../src/selfplay/pairs.js";
import { gradingCounts } from "../src/selfplay/stages.js";
import type { MathVerdictKind } from "../src/verify/types.js";
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

describe("samples that cannot be counted", () => {
  const o = (promptId: string, i: number, verdict: MathVerdictKind, finishReason = "stop"): SampleOutcome => ({
    id: `${promptId}/s${i}`, promptId, text: `${promptId}-${i}`, verdict, finishReason,
  });

  it("grader timeouts and errors enter neither pool nor the pass rate, and are counted", () => {
    // 1 correct, 1 incorrect, 2 the grader could not judge: the rate is 1/2 over the judged samples
    const { groups, excluded } = countableGroups([o("p", 0, "timeout"), o("p", 1, "correct"), o("p", 2, "error"), o("p", 3, "incorrect")]);
    expect(excluded).toEqual({ timeout: 1, error: 1, truncated: 0, excluded: 2 });
    const pairs = passRatePairs(groups, opts);
    expect(pairs.map((p) => [p.chosen, p.rejected])).toEqual([["p/s1", "p/s3"]]);
    // 3 right answers sympy was slow on must not make a 1-of-4 prompt whose timeouts are rejected
    const slow = countableGroups([o("q", 0, "correct"), o("q", 1, "timeout"), o("q", 2, "timeout"), o("q", 3, "timeout")]);
    expect(passRatePairs(slow.groups, opts)).toEqual([]);
  });

  it("a sample cut at max_tokens is never chosen, never rejected, never counted", () => {
    const outcomes = [o("p", 0, "correct", "length"), o("p", 1, "incorrect"), o("p", 2, "no_answer", "length"), o("p", 3, "correct"), o("p", 4, "incorrect")];
    const { groups, excluded } = countableGroups(outcomes);
    expect(excluded).toEqual({ timeout: 0, error: 0, truncated: 2, excluded: 2 });
    const pairs = passRatePairs(groups, opts);
    expect(pairs.map((p) => [p.chosen, p.rejected])).toEqual([["p/s3", "p/s1"]]);
    expect(pairs.flatMap((p) => [p.chosen, p.rejected])).not.toContain("p/s0");
  });

  it("counts verdicts and set-aside samples per iteration (metrics.jsonl, report.md)", () => {
    const outcomes = [o("p", 0, "timeout"), o("p", 1, "correct", "length"), o("p", 2, "error", "length"), o("q", 0, "incorrect"), o("q", 1, "no_answer")];
    expect(gradingCounts(outcomes)).toEqual({
      samples: 5, correct: 1, incorrect: 1, no_answer: 1, timeout: 1, error: 1, truncated: 2, excluded: 3,
      validity: { invalid: 0, unclosed_think: 0, empty_after_think: 0, cjk: 0, no_boxed: 0, no_code_block: 0 },
      by_kind: {
        math: { samples: 5, correct: 1, incorrect: 1, no_answer: 1, timeout: 1, error: 1 },
        code: { samples: 0, AC: 0, WA: 0, TLE: 0, MLE: 0, RE: 0, OLE: 0, no_code: 0, error: 0 },
      },
    });
  });

  it("a prompt with nothing countable keeps its (empty) group and gives no pairs", () => {
    const { groups } = countableGroups([o("p", 0, "timeout", "length"), o("p", 1, "correct", "length")]);
    expect(groups).toEqual([{ promptId: "p", samples: [] }]);
    expect(passRatePairs(groups, opts)).toEqual([]);
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
