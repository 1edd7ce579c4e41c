// End to end with a real worker and a tiny random Qwen3-shaped model whose chat template opens <think>
// (python-workers/promptcot_worker/models.py, "tiny-random-qwen3"): the worker says the prompt opened a
// think block, every sample record carries that and its finish reason, the graders are told (a cut
// completion is no_answer because the block never closed), truncated samples are set aside from pairs and
// counted in metrics.jsonl and report.md, and both evals drew the same seeds (paired).
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { startRun, units } from "./helpers/run-harness.js";

const EXP = "test/fixtures/tiny-qwen3-think.yaml";
const dir = join(mkdtempSync(join(tmpdir(), "pcot-think-")), "run");
let journal: Map<string, string>;
let out = "";

const results = (stage: string) => [...units(dir, stage)].map(([id, r]) => ({ id, ...JSON.parse(r) }));

beforeAll(async () => {
  const r = await startRun([EXP, "--run-dir", dir]).done;
  out = r.out;
  expect(r.code, r.out).toBe(0);
  journal = units(dir);
}, 600_000);

describe("a thinking model's template, end to end", () => {
  it("records prompt_opens_think and finish_reason on every rollout and eval sample", () => {
    const samples = [...results("rollout"), ...results("eval")];
    expect(samples).toHaveLength(4 * 2 + 2 * 3 * 2);
    for (const s of samples) {
      expect(s.prompt_opens_think, s.id).toBe(true);
      expect(["stop", "length"], s.id).toContain(s.finish_reason);
    }
    expect(samples.filter((s) => s.finish_reason === "length").length).toBeGreaterThan(0);
  });

  it("grades a completion that never closes the prompt's <think> as no_answer", () => {
    const rollout = new Map(results("rollout").map((s) => [s.id, s]));
    const graded = results("grade");
    expect(graded).toHaveLength(8);
    for (const g of graded) {
      const text: string = rollout.get(g.sample_id)!.text;
      if (text.includes("</think>")) continue;
      expect(g, g.id).toMatchObject({ verdict: "no_answer", reason: expect.stringMatching(/prompt opened <think>/) });
    }
    for (const e of results("eval")) {
      if (!e.text.includes("</think>")) expect(e.verdict, e.id).toBe("no_answer");
    }
  });

  it("never pairs a truncated sample, and counts what it set aside in the journal, metrics.jsonl and report.md", () => {
    const { pairs, counts } = JSON.parse(journal.get("it001/pairs")!);
    const truncated = new Set(results("rollout").filter((s) => s.finish_reason === "length").map((s) => s.id));
    for (const p of pairs) expect(truncated.has(p.chosen) || truncated.has(p.rejected), p.id).toBe(false);
    expect(counts).toMatchObject({ samples: 8, truncated: truncated.size });
    const metrics = readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(metrics.find((m) => m.kind === "grading")).toMatchObject({ iteration: 1, truncated: truncated.size, timeout: 0, error: 0 });
    expect(metrics.filter((m) => m.kind === "eval").map((m) => m.iteration)).toEqual([0, 1]);
    expect(existsSync(join(dir, "report.md"))).toBe(true);
    const report = readFileSync(join(dir, "report.md"), "utf8");
    expect(report).toMatch(/grader timeout\s+grader error\s+cut at max_tokens\s+set aside/);
    expect(out).toContain(`cut at max_tokens ${truncated.size}`);
  });

  it("draws the same sample seeds in the eval before training and after it (paired), under different unit ids", () => {
    const seeds = (it: string) =>
      new Map([...journal].filter(([id]) => id.startsWith(`${it}/eval/`)).map(([id, r]) => [id.slice(it.length), JSON.parse(r).seed]));
    const before = seeds("it000");
    const after = seeds("it001");
    expect(before.size).toBe(6);
    expect(after).toEqual(before);
  });
});
