// A tiny bf16 self-play DPO run (LR warm-up, checkpoints.keep_last 1), then `promptcot export`: the exported
// directory is a plain HF model that transformers loads, with exactly the logits of the worker that loads
// the run's checkpoint (the bf16 weights the run served), and without the trainer's state.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { pythonPath } from "../src/cluster/python-env.js";
import { events, startRun } from "./helpers/run-harness.js";

const root = mkdtempSync(join(tmpdir(), "pcot-export-"));
const runDir = join(root, "run");
const ARGS = [
  "test/fixtures/tiny-selfplay.yaml", "--run-dir", runDir, "--set", "pairs.builder=pairs-by-length.ts#shortVsLong", "--set", 'rollout.stop=["ing"]',
  "--set", "iterations=2", "--set", "eval_every=0", "--set", "train.batch_size=4", "--set", "train.learning_rate=0.001", "--set", "model.dtype=bfloat16",
  "--set", "train.lr_schedule.warmup_steps=3", "--set", "checkpoints.keep_last=1",
  // a random model writes no boxed answers: without these, every sample is invalid and no pair is made
  "--set", "pairs.validity.require_boxed=false", "--set", "pairs.validity.forbid_cjk=false",
];
let out = "";

const exportCli = (...args: string[]) => spawnSync("node", ["bin/promptcot.mjs", "export", ...args], { encoding: "utf8" });

beforeAll(async () => {
  const r = await startRun(ARGS).done;
  out = r.out;
  expect(r.code, r.out).toBe(0);
}, 300_000);

// Loads the export with transformers and the run's checkpoint the way a worker does; prints both logits' max difference.
const COMPARE = `
import json, sys, torch
from transformers import AutoModelForCausalLM
from promptcot_worker.backend_transformers import TransformersBackend
from promptcot_worker.models import load_source
exported, ckpt = sys.argv[1], sys.argv[2]
hf = AutoModelForCausalLM.from_pretrained(exported)
worker = TransformersBackend(load_source("tiny-random-llama", 11, torch.bfloat16), torch.device("cpu"), "tiny-random-llama")
worker.load_checkpoint(__import__("pathlib").Path(ckpt), load_optimizer=False)
ids = torch.tensor([[1, 415, 2000, 37, 9, 1200, 5, 77]])
with torch.no_grad():
    a, b = hf(ids).logits, worker.model(ids).logits
print(json.dumps({"dtype": str(hf.dtype), "equal": bool(torch.equal(a, b)), "max_diff": float((a.float() - b.float()).abs().max())}))
`;

describe("checkpoints of a self-play run, and promptcot export", () => {
  it("the DPO steps follow the LR warm-up per global step", () => {
    const lrs = readFileSync(join(runDir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((m) => m.kind === "train");
    expect(lrs.length).toBeGreaterThanOrEqual(4);
    expect(lrs.slice(0, 4).map((m) => m.learning_rate)).toEqual([0.001 / 3, 0.002 / 3, 0.001, 0.001]);
  });

  it("reports every update's first step with margin ~0 (bf16; reference scored in other batches than training's)", () => {
    const rows = readFileSync(join(runDir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    const first = rows.filter((m) => m.kind === "dpo_first_step");
    const updates = new Set(rows.filter((m) => m.kind === "train").map((m) => m.iteration));
    expect(first.map((m) => m.iteration)).toEqual([...updates]);
    for (const m of first) {
      const step1 = rows.find((r) => r.kind === "train" && r.iteration === m.iteration)!;
      expect(m.step).toBe(step1.step);
      expect(m["rewards/margin"]).toBe(step1["rewards/margin"]);
      // bf16 tolerance as python-workers/tests/test_dpo_first_step.py: 2e-2 nats per completion, times beta 0.1
      expect(m["rewards/abs_max"]).toBeLessThanOrEqual(0.1 * 2e-2);
      expect(Math.abs(m["rewards/margin"])).toBeLessThanOrEqual(0.1 * 2e-2);
    }
    expect(out).toMatch(/DPO first step \(policy = reference\) margin/);
  });

  it("keeps only the newest checkpoint (keep_last 1)", () => {
    expect(readdirSync(join(runDir, "checkpoints"))).toHaveLength(1);
    expect(events(runDir, "checkpoint_deleted")).toBe(1);
    expect(out).toMatch(/deleted checkpoint step-\d+ \(checkpoints\.keep_last 1\)/);
  });

  it("exports a plain HF directory that transformers loads with the worker's logits, bit for bit (bf16)", () => {
    const dest = join(root, "hf");
    const r = exportCli(runDir, "--out", dest);
    expect(r.status, r.stderr).toBe(0);
    const files = readdirSync(dest);
    expect(files).toEqual(expect.arrayContaining(["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]));
    for (const f of ["optimizer.pt", "rng.pt", "master_fp32.pt", "worker_meta.json"]) expect(files).not.toContain(f);
    const ckpt = join(runDir, "checkpoints", readdirSync(join(runDir, "checkpoints"))[0]!);
    const env = { ...process.env, PYTHONPATH: "python-workers", TOKENIZERS_PARALLELISM: "false" };
    const res = JSON.parse(execFileSync(pythonPath(), ["-c", COMPARE, dest, ckpt], { encoding: "utf8", env }).trim().split("\n").at(-1)!);
    expect(res).toEqual({ dtype: "torch.bfloat16", equal: true, max_diff: 0 });
  }, 120_000);

  it("refuses a non-empty --out, an unknown step and a deleted checkpoint (exit 2, with the reason)", () => {
    const busy = join(root, "busy");
    mkdirSync(busy);
    writeFileSync(join(busy, "x"), "");
    let r = exportCli(runDir, "--out", busy);
    expect([r.status, r.stderr]).toEqual([2, expect.stringMatching(/exists and is not an empty directory/)]);
    expect(readdirSync(busy)).toEqual(["x"]);
    r = exportCli(runDir, "--step", "999", "--out", join(root, "x1"));
    expect([r.status, r.stderr]).toEqual([2, expect.stringMatching(/--step 999: no journaled update at that step .*\(steps: \d+, \d+\)/)]);
    const oldest = /\(steps: (\d+),/.exec(r.stderr)![1]!; // deleted by retention
    r = exportCli(runDir, "--step", oldest, "--out", join(root, "x2"));
    expect([r.status, r.stderr]).toEqual([2, expect.stringMatching(/is gone: removed by checkpoints\.keep_last/)]);
    expect(readdirSync(root).filter((f) => f.includes(".tmp-"))).toEqual([]);
  });
});
