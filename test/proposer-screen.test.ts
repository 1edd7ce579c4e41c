// The proposer's screening unit on constructed generations: a synthesized problem that copies (or nearly
// copies) a seed the prompt model was trained on is dropped as `seed_duplicate`, counted by kind, and the
// screen row (what `trace` prints) names the seed; template arithmetic with new numbers is kept.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { RunContext } from "../src/experiment/context.js";
import { Journal } from "../src/experiment/journal.js";
import { P_GENERATE, candidates, dedupCounts, generationUnit, screenStage } from "../src/synthesis/proposer-stages.js";
import type { SeedRow } from "../src/synthesis/proposer-seeds.js";
import { problemId, type GenerationRecord } from "../src/synthesis/provenance.js";

const seed = (id: string, prompt: string): SeedRow => ({ id, prompt, answer: "1", concepts: ["addition"], rationale: "r" });
const SEEDS = [seed("seed0000", "What is 7 + 5?"), seed("seed0001", "Omar has 11 books and gets 4 more books from the library. How many books does Omar have now?")];

function context(dir: string, heldout: string[]): RunContext {
  const journal = new Journal(join(dir, "journal.sqlite"));
  return {
    journal, cfg: { proposer: { dedup: { threshold: 0.8, against_seeds: true } } },
    problems: { train: [], heldout: heldout.map((prompt, i) => ({ id: `h${i}`, prompt, answer: "0" })) },
  } as unknown as RunContext;
}

function generate(ctx: RunContext, it: number, problems: string[]): void {
  ctx.journal.record(problems.map((problem, j) => {
    const g: GenerationRecord = {
      index: 0, concepts: ["addition"], concept_seed: 1, sampling_seed: j, synthesizer: { checkpoint: null, step: 0, em_iteration: 0 },
      text: problem, finish_reason: "stop", ok: true, id: problemId(problem), rationale: "r", problem,
    };
    return { id: generationUnit(it, 0, j), stage: P_GENERATE, iteration: it, result: g };
  }));
}

describe("proposer screening against the seeds", () => {
  it("drops copies of a seed as seed_duplicate with a count by kind; trace's row names the seed", () => {
    const ctx = context(mkdtempSync(join(tmpdir(), "proposer-screen-")), ["What is 6 + 8?"]);
    generate(ctx, 1, [
      "what is 7+5?", // the seed re-spaced: near (same tokens), not exact
      "What is 7 + 5?", // the seed verbatim
      "Omar has 11 books and gets 4 more books from his sister. How many books does Omar have now?", // reworded seed
      "What is 9 + 4?", // same template, other numbers: a new problem
      "What is 6 + 8?", // the held-out problem
      "What is 9 + 4 ?", // an earlier synthesized problem again
    ]);
    const rows = screenStage(ctx, 1, SEEDS);
    expect(rows.map((r) => [r.kept, r.dedup?.kind ?? "kept", r.dedup?.duplicate_of])).toEqual([
      [false, "seed_duplicate", "seed:seed0000"],
      [false, "seed_duplicate", "seed:seed0000"],
      [false, "seed_duplicate", "seed:seed0001"],
      [true, "kept", undefined],
      [false, "contaminated", undefined],
      [false, "near_duplicate", generationUnit(1, 0, 3)],
    ]);
    expect(rows[0]!.dedup!.detail).toBe("Jaccard 1.000");
    expect(rows[1]!.dedup!.detail).toBe("exact");
    expect(dedupCounts(rows)).toEqual({ seed_duplicate: 3, contaminated: 1, near_duplicate: 1 });
    // for the proposer's pairs a seed copy is a duplicate, with the reason kept as its detail
    expect(candidates(ctx, 1).map((c) => [c.outcome, c.detail ?? ""])).toEqual([
      ["duplicate", "seed_duplicate"], ["duplicate", "seed_duplicate"], ["duplicate", "seed_duplicate"],
      ["kept", ""], ["contaminated", "contaminated"], ["duplicate", "near_duplicate"],
    ]);
    // the next iteration screens against the seeds and iteration 1's kept problems, from the journal
    generate(ctx, 2, ["What is 7 + 5 ?", "What is 9+4?", "What is 10 + 4?"]);
    expect(screenStage(ctx, 2, SEEDS).map((r) => r.dedup?.kind ?? "kept")).toEqual(["seed_duplicate", "near_duplicate", "kept"]);
    expect(() => screenStage(ctx, 3)).toThrow(/no seeds/);
    // proposer.dedup.against_seeds: false (a test whose prompt model memorises its seeds on purpose)
    ctx.cfg.proposer.dedup.against_seeds = false;
    generate(ctx, 3, ["What is 7 + 5?"]);
    expect(screenStage(ctx, 3, SEEDS).map((r) => r.kept)).toEqual([true]);
    ctx.journal.close();
  });
});
