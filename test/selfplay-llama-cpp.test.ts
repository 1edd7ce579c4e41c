// Self-play with llama.cpp as the rollout engine, for real: the quickstart model served by a real llama-server
// (parallel slots), the worker tokenizing, scoring and training, the server re-served on each update's
// checkpoint (GGUF export + restart) before it samples again. The controller is SIGKILLed inside the second
// iteration's rollout; the rerun re-syncs the fresh server to the latest checkpoint before sampling, redoes
// only the missing samples and finishes. Skips (saying so) only when llama-server is not built here.
import { readFileSync, readdirSync, rmSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { findLlamaServer } from "../src/rollout/llama-cpp.js";
import { countUnits, startRun, units, waitFor } from "./helpers/run-harness.js";

const binary = await findLlamaServer();
if (!binary) console.warn("SKIPPED selfplay-llama-cpp: llama-server is not built; run 'bash scripts/llama-server.sh' (~8 min once per machine)");

const TRAIN = 4;
const K = 4;
const MAX_TOKENS = 24;
const ARGS = [
  "experiments/quickstart.yaml",
  ...["data.train_size=4", "data.heldout_size=2", `rollout.samples_per_prompt=${K}`, `rollout.max_tokens=${MAX_TOKENS}`,
    "eval.samples_per_prompt=2", "eval.max_tokens=16", "iterations=2", "train.batch_size=4", "train.micro_batch_size=2", "train.epochs=1",
    // pairs whatever the model answers, so every iteration updates (and syncs) in a test-sized run
    "pairs.builder=../test/fixtures/pairs-by-length.ts#shortVsLong",
    "engine.type=llama_cpp", "engine.max_concurrency=4", "engine.llama_cpp.parallel=4", "engine.llama_cpp.ctx_size=512",
    "engine.llama_cpp.threads=1", "engine.llama_cpp.auto_build=false"].flatMap((s) => ["--set", s]),
];

interface Sample { prompt_id: string; token_ids: number[]; prompt_token_ids: number[]; finish_reason: string; text: string }

function syncRows(dir: string): { weights_version: number; export_s: number }[] {
  return readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l))
    .filter((r) => r.kind === "sync" && r.reason === "engine");
}

/** llama-server processes serving this run's GGUFs or started for it (their log dir is in the run). */
function serversOf(dir: string): number[] {
  return readdirSync("/proc").filter((p) => /^\d+$/.test(p)).map(Number).filter((pid) => {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      return cmd.includes("llama-server") && cmd.includes(dir);
    } catch {
      return false;
    }
  });
}

describe.skipIf(!binary)("self-play on the llama.cpp engine (real llama-server)", () => {
  it("samples through the server, re-serves each update's checkpoint, and resumes after a SIGKILL inside the rollout", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pcot-sp-llama-"));
    const first = startRun([...ARGS, "--run-dir", dir]);
    // iteration 1's rollout is TRAIN*K units; some of iteration 2's mean the server was synced and sampling
    await waitFor(() => countUnits(dir, "rollout") >= TRAIN * K + 2, 900_000, "iteration 2's rollout to start");
    first.child.kill("SIGKILL");
    await first.done;
    expect(countUnits(dir, "rollout")).toBeLessThan(2 * TRAIN * K);
    await waitFor(() => serversOf(dir).length === 0, 15_000, "the orphaned llama-server to exit");
    expect(syncRows(dir).map((r) => r.weights_version)).toHaveLength(1); // synced once, before iteration 2

    const second = await startRun([...ARGS, "--run-dir", dir]).done;
    expect(second.code, second.out).toBe(0);
    expect(second.out).toContain("resuming run");
    // the rerun's fresh server starts on the base GGUF: re-synced to iteration 1's checkpoint before sampling,
    // then to iteration 2's before the final eval
    const versions = syncRows(dir).map((r) => r.weights_version);
    expect(versions).toHaveLength(3);
    expect(versions[1]).toBe(versions[0]);
    expect(versions[2]!).toBeGreaterThan(versions[0]!);
    expect(versions[0]!).toBeGreaterThan(0);

    const rollout = [...units(dir, "rollout").values()].map((r) => JSON.parse(r) as Sample);
    expect(rollout).toHaveLength(2 * TRAIN * K);
    for (const s of rollout) {
      expect(s.token_ids.length, s.text).toBeGreaterThan(0);
      expect(s.token_ids.length).toBeLessThanOrEqual(MAX_TOKENS + 1);
      if (s.finish_reason === "length") expect(s.token_ids).toHaveLength(MAX_TOKENS);
    }
    // a stopped sample ends with the model's end-of-turn token, as the worker's own samples do
    const ends = new Set(rollout.filter((s) => s.finish_reason === "stop").map((s) => s.token_ids.at(-1)));
    expect(ends.size).toBeLessThanOrEqual(1);
    // the prompt the trainer sees is the worker's chat-templated prompt, the same for a prompt's samples
    const byPrompt = new Map<string, string>();
    for (const s of rollout) {
      const ids = JSON.stringify(s.prompt_token_ids);
      expect(s.prompt_token_ids.length).toBeGreaterThan(10);
      expect(byPrompt.get(s.prompt_id) ?? ids).toBe(ids);
      byPrompt.set(s.prompt_id, ids);
    }
    expect(countUnits(dir, "eval")).toBe(2 * 2 * 2);
    expect(readFileSync(join(dir, "report.md"), "utf8")).toContain("held-out");
    expect(serversOf(dir)).toEqual([]);
    rmSync(dir, { recursive: true, force: true }); // ~1.7 GB of checkpoints and GGUFs; kept when the test fails
  }, 1_500_000);
});
