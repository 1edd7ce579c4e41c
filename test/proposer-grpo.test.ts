// proposer.algorithm: grpo end to end on a tiny random-weight prompt model and a real worker: constructed
// generations and pass rates → R-Zero rewards and advantages per concept set (journaled) → p's old per-token
// log-probs (journaled per set) → p's GRPO update through the proposer's update unit (steps, checkpoint).
// The update raises the log-prob gap between a set's higher- and lower-reward texts, and a rerun returns the
// journaled update without asking the worker again.
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { WorkerPool } from "../src/cluster/pool.js";
import { ExperimentSchema } from "../src/config/schema.js";
import type { RunContext } from "../src/experiment/context.js";
import { unitId } from "../src/experiment/ids.js";
import { Journal } from "../src/experiment/journal.js";
import { MetricsSink, StageTimer } from "../src/telemetry/metrics.js";
import type { UpdateRecord } from "../src/train/dpo.js";
import {
  P_GENERATE, P_GROUPS, P_OLD, P_UPDATE, PASSRATE, generationUnit, proposerGroupsStage, proposerGrpoUpdateStage, screenStage,
  type PassRateRecord, type ProposerContext, type ProposerGroupsRecord,
} from "../src/synthesis/proposer-stages.js";
import { VOTE_STAGE, voteUnit, type VoteRecord } from "../src/synthesis/references.js";
import { problemId, type GenerationRecord } from "../src/synthesis/provenance.js";
import { promptInput } from "../src/synthesis/templates.js";

const text = (problem: string) => `<!-- BEGIN RATIONALE -->\nadd\n<!-- END RATIONALE -->\n<!-- BEGIN PROBLEM -->\n${problem}\n<!-- END PROBLEM -->`;
// per set: [problem, pass rate] (null: never reached the policy)
const SETS: [string, number | null][][] = [
  [["What is 12 + 30?", 0.5], ["Find the area of a square with side 7.", 1]],
  [["Name a prime below 20.", null], ["How many days are in 3 weeks?", 0.25]],
  [["Solve 2x = 8.", 1], ["Compute 9 * 9.", 1]], // equal rewards: no signal, dropped
];

function journalIteration(ctx: RunContext): void {
  const { journal } = ctx;
  SETS.forEach((set, s) => set.forEach(([problem, rate], j) => {
    const g: GenerationRecord = {
      index: s, concepts: ["addition"], concept_seed: s, sampling_seed: j, synthesizer: { checkpoint: null, step: 0, em_iteration: 0 },
      text: text(problem), finish_reason: "stop", ok: true, id: problemId(problem), rationale: "add", problem,
    };
    journal.record([{ id: generationUnit(1, s, j), stage: P_GENERATE, iteration: 1, result: g }]);
    if (rate === null) return;
    const v: VoteRecord = { problem_id: g.id!, answer: "1", agreement: 1, samples: 2, classes: [{ answer: "1", count: 2 }], kept: true, teacher: "rule" };
    const r: PassRateRecord = { problem_id: g.id!, pass_rate: rate, correct: rate * 4, counted: 4, samples: 4 };
    journal.record([
      { id: voteUnit(g.id!), stage: VOTE_STAGE, iteration: 0, result: v },
      { id: unitId(1, PASSRATE, g.id!), stage: PASSRATE, iteration: 1, result: r },
    ]);
  }));
  screenStage(ctx, 1, []);
}

describe("GRPO proposer update (tiny model, real worker)", () => {
  it("journals rewards, old log-probs and the update; the higher-reward text gains log-prob; a rerun reuses it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pcot-proposer-grpo-"));
    const cfg = ExperimentSchema.parse({
      name: "proposer-grpo", seed: 3, model: { source: "tiny-random-llama", trainable_layers: 0, decode_width: 2 }, data: { few_shot: [] },
      proposer: {
        enabled: true, algorithm: "grpo", generate: { sets: 3, samples_per_set: 2, sampling: { temperature: 1, max_tokens: 32 } },
        train: { learning_rate: 1e-3, batch_size: 2, micro_batch_size: 2, epochs: 1 },
      },
    });
    const spec = { modelSource: "tiny-random-llama", dtype: "float32", device: "cpu", trainableLayers: 0, decodeWidth: 2, seed: 1, threads: 1, startupTimeoutS: 300, logDir: join(dir, "logs") };
    const pool = new WorkerPool(1, spec, 3);
    const journal = new Journal(join(dir, "journal.sqlite"));
    const ctx: RunContext = {
      cfg, runDir: dir, configDir: dir, journal, pool, grader: undefined as never,
      metrics: new MetricsSink(join(dir, "metrics.jsonl"), null), timer: new StageTimer(), problems: { train: [], heldout: [] }, log: () => {},
    };
    const px: ProposerContext = { pool, teacher: undefined as never, seeds: [] };
    journalIteration(ctx);
    // log p(text | concepts) of set 0's two texts under p's current weights
    const gap = async () => {
      const prompt = promptInput(cfg.synthesis.templates, ["addition"]);
      const tok = await pool.run(0, (rpc) => rpc.tokenize({ items: SETS[0]!.map(([p], j) => ({ id: String(j), text: prompt, completion: text(p), appendEos: true })) }, 60_000));
      const items = tok.items.map((t) => ({ id: t.id, promptTokenIds: t.promptTokenIds, completionTokenIds: t.completionTokenIds }));
      const res = await pool.run(0, (rpc) => rpc.score({ items }, 60_000));
      const lp = new Map(res.results.map((r) => [r.id, r.sumLogprob]));
      return lp.get("0")! - lp.get("1")!;
    };
    try {
      await pool.start();
      const before = await gap();
      const rec = await proposerGrpoUpdateStage(ctx, px, 1);
      const groups = journal.get<ProposerGroupsRecord>(unitId(1, P_GROUPS))!;
      expect(groups.dropped).toBe(1);
      expect(groups.groups.map((g) => g.samples.map((x) => Math.sign(x.advantage)))).toEqual([[1, -1], [-1, 1]]);
      expect(proposerGroupsStage(ctx, 1)).toEqual(groups);
      expect(journal.list(P_OLD, 1).map((r) => r.id)).toEqual([unitId(1, P_OLD, "set-000"), unitId(1, P_OLD, "set-001")]);
      expect(rec!.steps).toHaveLength(2); // 4 samples, batch 2, 1 epoch
      expect(rec!.checkpoint).toBe(join(dir, "checkpoints", "proposer", "step-2"));
      expect(existsSync(rec!.checkpoint)).toBe(true);
      expect(journal.get<UpdateRecord>(unitId(1, P_UPDATE))).toEqual(rec);
      expect(pool.checkpointStep).toBe(2);
      const after = await gap();
      expect(after).toBeGreaterThan(before); // the set's higher-reward text (advantage > 0) gained on the other
      await pool.stop();
      // resumed: the journaled update is returned; the stopped worker is not asked for anything
      expect(await proposerGrpoUpdateStage(ctx, px, 1)).toEqual(rec);
    } finally {
      await pool.stop();
      journal.close();
    }
  }, 300_000);
});
