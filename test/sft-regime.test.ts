// The SFT regime end to end on the tiny random model, through the real CLI and a real worker: trajectories
// are filtered, tokenized by the worker, trained with a falling loss under the configured LR schedule, the
// held-out set is evaluated before and after, retention keeps the newest checkpoint, and a rerun resumes
// without training again; changed trajectories are refused.
import { appendFileSync, copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { learningRateAt } from "../src/train/schedule.js";
import { events, startRun, units } from "./helpers/run-harness.js";

const root = mkdtempSync(join(tmpdir(), "pcot-sft-"));
const exp = join(root, "tiny-sft.yaml");
const runDir = join(root, "run");
const ARGS = ["--set", "train.epochs=2", "--run-dir", runDir];
let first: { code: number | null; out: string };

const trainSteps = () =>
  readFileSync(join(runDir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number | string>).filter((m) => m.kind === "train");

beforeAll(async () => {
  for (const f of ["tiny-sft.yaml", "arithmetic-trajectories.jsonl"]) copyFileSync(join("test/fixtures/sft", f), join(root, f));
  first = await startRun([exp, ...ARGS]).done;
}, 300_000);

describe("task: sft on tiny-random-llama", () => {
  it("filters the trajectories as the paper does and journals each one", () => {
    expect(first.code, first.out).toBe(0);
    const data = [...units(runDir, "sft-data").values()].map((r) => JSON.parse(r) as { kept: boolean; reason?: string; prompt_token_ids: number[]; completion_token_ids: number[] });
    expect(data).toHaveLength(41);
    const reasons = data.filter((d) => !d.kept).map((d) => d.reason).sort();
    expect(reasons).toEqual(["empty_completion", "no_boxed_answer", "no_boxed_answer", "too_long"]);
    const kept = data.filter((d) => d.kept);
    // completions end with the model's EOS (Tokenize append_eos); prompts share the chat template's system turn
    expect(new Set(kept.map((d) => d.completion_token_ids.at(-1))).size).toBe(1);
    expect(kept[0]!.prompt_token_ids.slice(0, 20)).toEqual(kept[1]!.prompt_token_ids.slice(0, 20));
    expect(kept.every((d) => d.completion_token_ids.length <= 64)).toBe(true);
  });

  it("trains with a falling loss and the cosine schedule's learning rate at every global step", () => {
    const steps = trainSteps();
    const perIteration = Math.ceil((37 * 2) / 8);
    expect(steps.map((s) => s.step)).toEqual(Array.from({ length: 2 * perIteration }, (_, i) => i + 1));
    const sched = { kind: "cosine" as const, warmup_steps: 1, total_steps: 0, min_lr_ratio: 0.1 };
    for (const s of steps) expect(s.learning_rate as number).toBeCloseTo(learningRateAt(s.step as number, 3e-3, sched, 2 * perIteration), 12);
    const loss = steps.map((s) => s.loss as number);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(loss.slice(-3))).toBeLessThan(0.8 * mean(loss.slice(0, 3)));
  });

  it("evaluates the held-out set before and after, and keeps only the newest checkpoint (keep_last 1)", () => {
    expect(first.out).toMatch(/^before\s+3\s+6\s/m);
    expect(first.out).toMatch(/^after it 2\s+3\s+6\s/m);
    expect(readdirSync(join(runDir, "checkpoints"))).toEqual([`step-${2 * Math.ceil(74 / 8)}`]);
    expect(events(runDir, "checkpoint_deleted")).toBe(1);
    expect([...units(runDir, "update").keys()]).toEqual(["it001/update", "it002/update"]);
  });

  it("a rerun resumes from the journal without training again", async () => {
    const before = trainSteps().length;
    const r = await startRun([exp, ...ARGS]).done;
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain("resuming run");
    expect(trainSteps().length).toBe(before);
    expect(r.out.split("\n").filter((l) => /^(before|after it)/.test(l))).toEqual(first.out.split("\n").filter((l) => /^(before|after it)/.test(l)));
  }, 300_000);

  it("refuses to resume on changed trajectories (exit 2, names the file)", async () => {
    appendFileSync(join(root, "arithmetic-trajectories.jsonl"), '{"prompt":"What is 1 + 1?","completion":"\\\\boxed{2}"}\n');
    const r = await startRun([exp, ...ARGS]).done;
    expect(r.code, r.out).toBe(2);
    expect(r.out).toMatch(/arithmetic-trajectories\.jsonl changed since this run started/);
    expect(existsSync(join(runDir, "checkpoints"))).toBe(true);
  }, 300_000);
});
