import { describe, expect, it } from "vitest";
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExperimentSchema } from "../src/config/schema.js";
import { Journal } from "../src/experiment/journal.js";
import { applyRetention, bestOf, checkpointsToDelete, type CheckpointInfo } from "../src/train/retention.js";

const ck = (step: number, metric?: number): CheckpointInfo => ({ iteration: step, step, path: `/r/checkpoints/step-${step}`, metric });
const steps = (cs: CheckpointInfo[]) => cs.map((c) => c.step);

describe("checkpoint retention (pure decision)", () => {
  it("keep_last 0 keeps everything", () => {
    expect(checkpointsToDelete([ck(1), ck(2), ck(3)], { keep_last: 0 })).toEqual([]);
  });

  it("keep_last N deletes all but the newest N, whatever the input order", () => {
    expect(steps(checkpointsToDelete([ck(4), ck(1), ck(3), ck(2)], { keep_last: 2 }))).toEqual([1, 2]);
  });

  it("never deletes the newest (the resume point), even with keep_last 1 and a better older one", () => {
    const cs = [ck(1, 0.9), ck(2, 0.1), ck(3, 0.2)];
    const del = checkpointsToDelete(cs, { keep_last: 1, keep_best: { metric: "avg_at_k", mode: "max" } });
    expect(steps(del)).toEqual([2]);
  });

  it("keep_best keeps the best by mode (max or min); unevaluated checkpoints are never best", () => {
    const cs = [ck(1, 0.5), ck(2), ck(3, 0.2), ck(4, 0.3), ck(5)];
    expect(steps(checkpointsToDelete(cs, { keep_last: 1, keep_best: { metric: "avg_at_k", mode: "max" } }))).toEqual([2, 3, 4]);
    expect(steps(checkpointsToDelete(cs, { keep_last: 1, keep_best: { metric: "avg_at_k", mode: "min" } }))).toEqual([1, 2, 4]);
  });

  it("a tie for best keeps the newer checkpoint; NaN metrics are ignored", () => {
    expect(bestOf([ck(1, 0.5), ck(2, NaN), ck(3, 0.5), ck(4, 0.25)], "max")?.step).toBe(3);
    expect(bestOf([ck(1), ck(2, NaN)], "max")).toBeUndefined();
  });

  it("the newest and the best always survive, for every keep_last and every arrangement", () => {
    for (let n = 1; n <= 6; n++) {
      for (let keep = 1; keep <= n + 1; keep++) {
        const cs = Array.from({ length: n }, (_, i) => ck(i + 1, ((i * 7) % 5) / 5));
        const del = new Set(steps(checkpointsToDelete(cs, { keep_last: keep, keep_best: { metric: "avg_at_k", mode: "max" } })));
        expect(del.has(n)).toBe(false);
        expect(del.has(bestOf(cs, "max")!.step)).toBe(false);
        expect(n - del.size).toBe(Math.min(n, keep + (bestOf(cs, "max")!.step > n - keep ? 0 : 1)));
      }
    }
  });
});

describe("applyRetention on a run's journal (real Journal, real directories)", () => {
  it("deletes per policy, with the metric from each iteration's journaled eval; a partial eval never makes a best", () => {
    const dir = mkdtempSync(join(tmpdir(), "retention-"));
    const journal = new Journal(join(dir, "journal.sqlite"));
    const heldout = ["h0", "h1"].map((id) => ({ id, prompt: id, answer: "1", source: "t" }));
    // iteration: steps, and correct samples out of 2 problems × 2 samples (undefined = no eval; 9 = partial eval)
    const plan: [number, number | undefined][] = [[1, 3], [2, 9], [3, undefined], [4, 1], [5, 0]];
    for (const [it, correct] of plan) {
      const path = join(dir, "checkpoints", `step-${it * 10}`);
      mkdirSync(path, { recursive: true });
      journal.record([{ id: `it00${it}/update`, stage: "update", iteration: it, result: { checkpoint: path, global_step: it * 10, steps: [] } }]);
      if (correct === undefined) continue;
      const slots = correct === 9 ? [["h0", 0]] : heldout.flatMap((p) => [0, 1].map((s) => [p.id, s]));
      journal.record(slots.map(([pid, s], i) => ({
        id: `it00${it}/eval/${pid}/${s}`, stage: "eval", iteration: it,
        result: { prompt_id: pid, sample: s, seed: 0, text: "", finish_reason: "stop", prompt_opens_think: false, verdict: correct === 9 || i < correct ? "correct" : "incorrect" },
      })));
    }
    const cfg = ExperimentSchema.parse({ name: "x", eval: { samples_per_prompt: 2, temperature: 1, max_tokens: 4 }, checkpoints: { keep_last: 1, keep_best: { metric: "avg_at_k", mode: "max" } } });
    const logs: string[] = [];
    const ctx = { cfg, journal, problems: { train: [], heldout }, log: (m: string) => logs.push(m), runDir: dir } as unknown as Parameters<typeof applyRetention>[0];
    applyRetention(ctx);
    const left = [10, 20, 30, 40, 50].filter((s) => existsSync(join(dir, "checkpoints", `step-${s}`)));
    expect(left).toEqual([10, 50]); // the best (3 of 4 correct; the partial eval of it 2 is all-correct but not complete) and the newest
    expect(journal.events("checkpoint_deleted").map((e) => e.data.step)).toEqual([20, 30, 40]);
    applyRetention(ctx); // idempotent
    expect(journal.events("checkpoint_deleted")).toHaveLength(3);
    journal.close();
  });
});
