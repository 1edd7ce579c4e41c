// The proposer's config surface: the dry-run plan of experiments/selfplay-synth.yaml, and bad seed rows
// named by file and line with the fix.
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ExperimentSchema } from "../src/config/schema.js";
import { readSeeds } from "../src/synthesis/proposer-seeds.js";

describe("proposer config", () => {
  it("dry-runs experiments/selfplay-synth.yaml with the proposer's plan", () => {
    const out = execFileSync("node", ["bin/promptcot.mjs", "run", "experiments/selfplay-synth.yaml", "--dry-run"], { encoding: "utf8" });
    expect(out).toContain("proposer: prompt model smollm2-135m-instruct");
    expect(out).toContain("teacher: smollm2-135m-instruct, 4 samples per problem");
    expect(out).toMatch(/iteration 2 problems: 4 concept sets × 4 problems .* proposer DPO/);
    expect(out).toContain("iteration 3 problems: 4 concept sets × 4 problems");
    expect(out).toContain("no proposer update: nothing follows");
    expect(out).toContain("twin: the same self-play on as many seed problems");
  }, 300_000); // the dry-run templates the first prompt with the model's tokenizer (a Python start, ~10 s of CPU)

  it("refuses a seed row without concepts, naming file:line and the fix", () => {
    const dir = mkdtempSync(join(tmpdir(), "pcot-seeds-"));
    writeFileSync(join(dir, "s.jsonl"), '{"prompt": "Add 1 and 2.", "answer": "3", "concepts": ["sums"], "rationale": "r"}\n{"prompt": "x", "answer": "1", "rationale": "r"}\n');
    const cfg = ExperimentSchema.parse({ name: "t", proposer: { enabled: true, seeds_path: "s.jsonl" } });
    expect(() => readSeeds(cfg, dir)).toThrow(/'concepts' must be a non-empty array of strings.*each line/);
    try {
      readSeeds(cfg, dir);
    } catch (e) {
      expect((e as { line?: number }).line).toBe(2);
    }
    const none = ExperimentSchema.parse({ name: "t", proposer: { enabled: true } });
    expect(() => readSeeds(none, dir)).toThrow(/set proposer.seeds_path/);
  });
});
