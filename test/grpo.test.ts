// GRPO in the controller: advantages against hand-worked numbers, group building (dynamic sampling,
// overlong filter, grader failures), the config switch, and the weight-sync guard on real workers: a
// worker that missed a sync refuses Generate (FAILED_PRECONDITION) and is re-synced before it is used.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { WorkerPool } from "../src/cluster/pool.js";
import { ExperimentSchema } from "../src/config/schema.js";
import { arithmeticSplits } from "../src/data/problems.js";
import type { RunContext } from "../src/experiment/context.js";
import { Journal } from "../src/experiment/journal.js";
import { LossKind } from "../src/rpc/gen/promptcot_worker.js";
import { generateStage } from "../src/rollout/generate-stage.js";
import type { SampleOutcome } from "../src/selfplay/pairs.js";
import { MetricsSink, StageTimer } from "../src/telemetry/metrics.js";
import { buildGroups, groupAdvantages } from "../src/train/grpo.js";
import { syncWeights } from "../src/train/weight-sync.js";

describe("group advantages", () => {
  it("mean_std, mean and leave-one-out on rewards 1, 0, 0, 1", () => {
    const r = [1, 0, 0, 1];
    // mean 1/2; sample std sqrt((4 * 1/4) / 3) = 1/sqrt(3); (1 - 1/2) * sqrt(3) = 0.8660
    const s = groupAdvantages(r, "mean_std");
    expect(s[0]).toBeCloseTo(Math.sqrt(3) / 2, 5);
    expect(s[1]).toBeCloseTo(-Math.sqrt(3) / 2, 5);
    expect(groupAdvantages(r, "mean")).toEqual([0.5, -0.5, -0.5, 0.5]);
    // leave-one-out: 1 - (0 + 0 + 1) / 3 = 2/3;  0 - (1 + 0 + 1) / 3 = -2/3
    const loo = groupAdvantages(r, "loo");
    expect(loo[0]).toBeCloseTo(2 / 3, 12);
    expect(loo[1]).toBeCloseTo(-2 / 3, 12);
  });
  it("a group with equal rewards or one sample carries no signal", () => {
    for (const kind of ["mean_std", "mean", "loo"] as const) {
      expect(groupAdvantages([1, 1, 1], kind)).toEqual([0, 0, 0]);
      expect(groupAdvantages([1], kind)).toEqual([0]);
    }
  });
});

const o = (promptId: string, i: number, verdict: SampleOutcome["verdict"], finishReason = "stop"): SampleOutcome => ({
  id: `it001/rollout/${promptId}/00${i}`, promptId, text: "", verdict, finishReason,
});

describe("building groups", () => {
  const outcomes = [
    o("t0", 0, "correct"), o("t0", 1, "incorrect"), o("t0", 2, "timeout"), // the timeout says nothing: out
    o("t1", 0, "correct"), o("t1", 1, "correct"), // all right: no signal
    o("t2", 0, "correct", "length"), o("t2", 1, "incorrect"), o("t2", 2, "correct"),
  ];
  const opts = { advantage: "mean" as const, overlong_filter: true, dynamic_sampling: true };

  it("dynamic sampling drops all-right groups; the overlong filter takes truncated samples out", () => {
    const { kept, dropped } = buildGroups(outcomes, ["t0", "t1", "t2"], opts);
    expect(dropped).toBe(1);
    expect(kept.map((g) => g.promptId)).toEqual(["t0", "t2"]);
    expect(kept[0]!.samples.map((s) => [s.id.slice(-3), s.reward, s.advantage])).toEqual([["000", 1, 0.5], ["001", 0, -0.5]]);
    expect(kept[1]!.samples.map((s) => s.id.slice(-3))).toEqual(["001", "002"]);
  });
  it("without the filters a truncated sample counts as wrong and zero-signal groups stay", () => {
    const { kept, dropped } = buildGroups(outcomes, ["t0", "t1", "t2"], { ...opts, overlong_filter: false, dynamic_sampling: false });
    expect(dropped).toBe(0);
    expect(kept.map((g) => g.promptId)).toEqual(["t0", "t1", "t2"]);
    expect(kept[1]!.samples.every((s) => s.advantage === 0)).toBe(true);
    // t2: rewards 0 (cut at max_tokens, even with a box), 0, 1 -> mean 1/3
    expect(kept[2]!.samples.map((s) => s.reward)).toEqual([0, 0, 1]);
    expect(kept[2]!.samples[2]!.advantage).toBeCloseTo(2 / 3, 12);
  });
  it("pairs.validity: an invalid completion leaves its group with drop and counts as wrong with reject", () => {
    const withInvalid = [o("t0", 0, "correct"), { ...o("t0", 1, "correct"), invalid: ["no_boxed" as const] }, o("t0", 2, "incorrect")];
    const drop = buildGroups(withInvalid, ["t0"], { ...opts, invalid: "drop" }).kept[0]!;
    expect(drop.samples.map((s) => [s.id.slice(-3), s.reward])).toEqual([["000", 1], ["002", 0]]);
    const reject = buildGroups(withInvalid, ["t0"], { ...opts, invalid: "reject" }).kept[0]!;
    expect(reject.samples.map((s) => s.reward)).toEqual([1, 0, 0]);
    // Without the option (callers that do not filter) the reasons are ignored.
    expect(buildGroups(withInvalid, ["t0"], opts).kept[0]!.samples.map((s) => s.reward)).toEqual([1, 1, 0]);
  });
});

describe("config", () => {
  it("train.algorithm switches to grpo with the documented defaults; bad values name the key", () => {
    const cfg = ExperimentSchema.parse({ name: "x", train: { algorithm: "grpo" } });
    expect(cfg.train.grpo).toMatchObject({
      advantage: "mean_std", clip_low: 0.2, clip_high: 0.28, clip_ratio_c: 3, kl_coef: 0, kl_estimator: "k3", loss_aggregation: "token",
      dynamic_sampling: true, overlong_filter: true, reward: "verdict",
    });
    const bad = ExperimentSchema.safeParse({ name: "x", train: { grpo: { advantage: "median" } } });
    expect(bad.success).toBe(false);
    expect(JSON.stringify(bad.error!.issues[0]!.path)).toBe('["train","grpo","advantage"]');
    // dual clip: the cap must lie above the ratio's upper clip (verl asserts clip_ratio_c > 1)
    const dual = ExperimentSchema.safeParse({ name: "x", train: { grpo: { clip_ratio_c: 1 } } });
    expect(dual.success).toBe(false);
    expect(JSON.stringify(dual.error!.issues[0]!.path)).toBe('["train","grpo","clip_ratio_c"]');
  });
});

describe("weight sync on real workers", () => {
  it("a rollout worker that missed a sync refuses to generate, is re-synced to the confirmed version, then used", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pcot-grpo-sync-"));
    const spec = { modelSource: "tiny-random-llama", dtype: "float32", device: "cpu", trainableLayers: 0, decodeWidth: 2, seed: 1, threads: 1, startupTimeoutS: 300, logDir: join(dir, "logs") };
    const pool = new WorkerPool(2, spec, 3);
    const cfg = ExperimentSchema.parse({ name: "sync", model: { decode_width: 2 }, data: { few_shot: [] } });
    const problems = arithmeticSplits(1, 4, 2);
    const logs: string[] = [];
    const ctx: RunContext = {
      cfg, runDir: dir, configDir: dir, journal: new Journal(join(dir, "journal.sqlite")), pool, grader: undefined as never,
      metrics: new MetricsSink(join(dir, "metrics.jsonl"), null), timer: new StageTimer(), problems, log: (m) => logs.push(m),
    };
    const sampling = { ...cfg.rollout, samples_per_prompt: 2, max_tokens: 4, prompts_per_request: 1 };
    const generate = (iteration: number) =>
      generateStage(ctx, { label: "g", stage: "rollout", iteration, problems: problems.train, sampling, toRows: async (_p, s, id) => [{ id, stage: "rollout", iteration, result: s }] });
    try {
      await pool.start();
      // One real step on the trainer, saved: weights_version 1 in step-1.
      const ex = { promptTokenIds: [5, 6, 7], completionTokenIds: [8, 9], advantage: 1, weight: 1 };
      const step = await pool.run(0, (rpc) => rpc.trainStep({ stepId: "s", loss: LossKind.GRPO, examples: [ex], hyper: { learningRate: 1e-2 } }, 60_000));
      expect(step.weightsVersion).toBe(1);
      const ckpt = join(dir, "step-1");
      await pool.run(0, (rpc) => rpc.saveCheckpoint({ path: ckpt, includeOptimizer: true }, 60_000));
      pool.advance(ckpt, 1, 0);
      // Worker 1 was not synced. Generation still completes: it refuses, is re-synced and retried.
      await generate(1);
      expect(ctx.journal.list("rollout", 1)).toHaveLength(8);
      expect(logs.some((l) => /worker-1 refused to generate .*holds weights_version 0, the request expects 1/.test(l))).toBe(true);
      expect(pool.workers[1]!.heldStep).toBe(1);
      const versions = await Promise.all([0, 1].map((w) => pool.run(w, (rpc) => rpc.health(5_000))));
      expect(versions.map((h) => h.weightsVersion)).toEqual([1, 1]);
      const metrics = readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(metrics.filter((m) => m.kind === "sync").map((m) => [m.reason, m.weights_version])).toEqual([["refused", 1]]);
      // The regular path: a sync after the next checkpoint loads it everywhere it is missing, timed.
      pool.advance(ckpt, 1, 0); // superseded or equal steps are ignored: nothing to sync
      await syncWeights(ctx, 1);
      expect(readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n")).toHaveLength(1);
    } finally {
      await pool.stop();
      ctx.journal.close();
    }
  }, 300_000);
});
