// Completion validity filters (PromptCoT 2.0): reasons per completion, counts per reason, and what the
// pair rule does with an invalid completion (never chosen; dropped from the pool by default).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadExperiment } from "../src/config/load.js";
import type { RunContext } from "../src/experiment/context.js";
import { unitId } from "../src/experiment/ids.js";
import { Journal } from "../src/experiment/journal.js";
import { PairsSchema } from "../src/config/schema.js";
import { countableGroups, passRatePairs, type SampleOutcome } from "../src/selfplay/pairs.js";
import { gradingCounts, pairsStage } from "../src/selfplay/stages.js";
import { invalidReasons, type ValidityOptions } from "../src/selfplay/validity.js";

const all: ValidityOptions = { require_think_close: true, forbid_cjk: true, require_boxed: true, require_code_block: true };
const math = { task: "math" as const, promptOpensThink: false };
const thinking = { task: "math" as const, promptOpensThink: true };

describe("invalidReasons", () => {
  it("accepts a boxed answer, with or without a closed think block", () => {
    expect(invalidReasons("2+3=5, so \\boxed{5}.", math, all)).toEqual([]);
    expect(invalidReasons("let me see</think>The answer is \\boxed{5}.", thinking, all)).toEqual([]);
    expect(invalidReasons("<think>hm</think>\\boxed{5}", math, all)).toEqual([]);
  });

  it("a think block the template opened must be closed and followed by an answer", () => {
    expect(invalidReasons("still thinking \\boxed{5}", thinking, all)).toEqual(["unclosed_think", "no_boxed"]);
    expect(invalidReasons("\\boxed{5}</think>   \n", thinking, all)).toEqual(["empty_after_think", "no_boxed"]);
    expect(invalidReasons("<think>never closed \\boxed{5}", math, all)).toEqual(["unclosed_think", "no_boxed"]);
    // the same text without the template's open block is an ordinary answer
    expect(invalidReasons("still thinking \\boxed{5}", math, all)).toEqual([]);
  });

  it("CJK and Hangul runs are invalid in an English task; Latin, Greek and math are not", () => {
    expect(invalidReasons("所以答案是 \\boxed{5}", math, all)).toEqual(["cjk"]);
    expect(invalidReasons("따라서 \\boxed{5}", math, all)).toEqual(["cjk"]);
    expect(invalidReasons("カタカナ \\boxed{5}", math, all)).toEqual(["cjk"]);
    expect(invalidReasons("Soit α ≤ β, ∑ x² → \\boxed{5}. Ça va, naïve café", math, all)).toEqual([]);
    expect(invalidReasons("所以 \\boxed{5}", math, { ...all, forbid_cjk: false })).toEqual([]);
  });

  it("math needs a box after the thinking; code needs a fenced block", () => {
    expect(invalidReasons("\\boxed{4}</think>The answer is 5.", thinking, all)).toEqual(["no_boxed"]);
    expect(invalidReasons("The answer is 5.", math, { ...all, require_boxed: false })).toEqual([]);
    const code = { task: "code" as const, promptOpensThink: false };
    expect(invalidReasons("```python\nprint(input())\n```", code, all)).toEqual([]);
    expect(invalidReasons("print(input())", code, all)).toEqual(["no_code_block"]);
    expect(invalidReasons("```python\n\n```", code, all)).toEqual(["no_code_block"]);
    expect(invalidReasons("print(input())", code, { ...all, require_code_block: false })).toEqual([]);
  });
});

describe("invalid completions in the pair rule", () => {
  const o = (i: number, verdict: SampleOutcome["verdict"], text: string, finishReason = "stop"): SampleOutcome => ({
    id: `p/s${i}`, promptId: "p", text, verdict, finishReason, invalid: invalidReasons(text, math, all),
  });
  // graded correct but written in Chinese, correct and unboxed (the grader read "answer is 5"), one valid
  // correct, three valid wrong, one cut at max_tokens
  const outcomes = [
    o(0, "correct", "答案 \\boxed{5}"),
    o(1, "correct", "the answer is 5"),
    o(2, "correct", "\\boxed{5}"),
    o(3, "incorrect", "\\boxed{6}"),
    o(4, "incorrect", "\\boxed{7}"),
    o(5, "incorrect", "\\boxed{8}"),
    o(6, "no_answer", "cut", "length"),
  ];
  const opts = { min_pass_rate: 0, max_pass_rate: 0.5 };

  it("drop (PromptCoT 2.0): out of the pool and the pass rate, counted by reason", () => {
    const { groups, validity, excluded } = countableGroups(outcomes, "drop");
    expect(groups[0]!.samples.map((s) => s.id)).toEqual(["p/s2", "p/s3", "p/s4", "p/s5"]);
    expect(validity).toEqual({ invalid: 2, unclosed_think: 0, empty_after_think: 0, cjk: 1, no_boxed: 1, no_code_block: 0 });
    expect(excluded.truncated).toBe(1); // counted there, not again as invalid
    const pairs = passRatePairs(groups, opts); // rate 1/4
    expect(pairs.map((p) => [p.chosen, p.rejected])).toEqual([["p/s2", "p/s3"]]);
    expect(gradingCounts(outcomes).validity.invalid).toBe(2);
  });

  it("reject: kept as failures, so never chosen, and the pass rate counts them", () => {
    const { groups } = countableGroups(outcomes, "reject");
    expect(groups[0]!.samples.filter((s) => s.passed).map((s) => s.id)).toEqual(["p/s2"]);
    const pairs = passRatePairs(groups, opts); // rate 1/6
    expect(pairs.map((p) => [p.chosen, p.rejected])).toEqual([["p/s2", "p/s0"]]);
    expect(pairs.map((p) => p.chosen)).not.toContain("p/s0");
    expect(pairs.map((p) => p.chosen)).not.toContain("p/s1");
  });

  it("config defaults: every filter on, invalid completions dropped", () => {
    expect(PairsSchema.parse({}).validity).toEqual({ ...all, invalid: "drop" });
    expect(() => PairsSchema.parse({ validity: { forbid_chinese: true } })).toThrow();
  });
});

describe("the pairs stage applies pairs.validity", () => {
  function context(invalid: "drop" | "reject") {
    const dir = mkdtempSync(join(tmpdir(), "pcot-validity-"));
    const journal = new Journal(join(dir, "journal.sqlite"));
    const cfg = loadExperiment("test/fixtures/tiny-selfplay.yaml", [`pairs.validity.invalid=${invalid}`]).config;
    const written: Record<string, unknown>[] = [];
    const logs: string[] = [];
    // correct-but-unclosed (the prompt opened <think>), correct and valid, two wrong
    const samples = [
      ["still thinking \\boxed{5}", "correct"], ["ok</think>\\boxed{5}", "correct"], ["x</think>\\boxed{6}", "incorrect"], ["y</think>\\boxed{7}", "incorrect"],
    ] as const;
    journal.record(samples.flatMap(([text, verdict], i) => [
      { id: unitId(1, "rollout", "t0000", i), stage: "rollout", iteration: 1,
        result: { prompt_id: "t0000", sample: i, seed: i, text, token_ids: [], prompt_token_ids: [], finish_reason: "stop", prompt_opens_think: true } },
      { id: unitId(1, "grade", "t0000", i), stage: "grade", iteration: 1, result: { verdict, extracted: null, sample_id: unitId(1, "rollout", "t0000", i) } },
    ]));
    const ctx = { cfg, runDir: dir, configDir: "test/fixtures", journal, metrics: { write: (r: Record<string, unknown>) => written.push(r) }, log: (m: string) => logs.push(m) };
    return { ctx: ctx as unknown as RunContext, written, logs, journal };
  }

  it("drop: the unclosed correct sample is neither chosen nor counted; metrics carry the reason", async () => {
    const { ctx, written, logs, journal } = context("drop");
    const pairs = await pairsStage(ctx, 1); // rate 1/3 over the valid samples
    expect(pairs.map((p) => p.chosen)).toEqual([unitId(1, "rollout", "t0000", 1)]);
    expect(written[0]).toMatchObject({ kind: "grading", iteration: 1, validity: { invalid: 1, unclosed_think: 1, no_boxed: 1 } });
    expect(logs.join("\n")).toMatch(/1 invalid completions \(unclosed_think 1, no_boxed 1\), dropped/);
    journal.close();
  });

  it("reject: the unclosed correct sample becomes a rejected one", async () => {
    const { ctx, journal } = context("reject");
    const pairs = await pairsStage(ctx, 1); // rate 1/4
    expect(pairs.map((p) => [p.chosen, p.rejected])).toEqual([[unitId(1, "rollout", "t0000", 1), unitId(1, "rollout", "t0000", 0)]]);
    journal.close();
  });
});
